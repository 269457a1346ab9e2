"""CitizenApp: the reference API, our demo, benchmark subject and integration test bed."""
