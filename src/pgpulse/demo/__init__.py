"""The demo (extra ``[demo]``): CitizenApp, the reference API — our demo, benchmark subject and integration
test bed — with its models, routes, migrations and seed; the embedded PostgreSQL (``embedded``), the marked
demo database that is the only one the demo ever writes to (``database``), and the planted problems the
doctor finds on it (``problems``)."""
