"""A vendored slice of fastapi/full-stack-fastapi-template (MIT, see LICENSE here), commit
68adb40d37425f6f8668ec7e5a054500d045e43e, ``backend/app``: the end-to-end test installs pgpulse into it with the
README's two lines and checks findings, route labels and source lines there.

Vendored unchanged except where marked ``# pgpulse:``: ``app/models.py``, ``app/api/deps.py``,
``app/api/routes/items.py``. Written for the test (the template's versions need its settings, e-mail and
password-hashing stack, which the items routes never touch): ``app/core/config.py``, ``app/core/db.py``,
``app/core/security.py`` (the token half of the original), ``app/api/main.py`` and ``app/main.py`` (the
original's router wiring and app, without Sentry, CORS and the frontend). The package is imported as ``app``,
as in the template, with this directory on ``sys.path``.
"""
