"""The web dashboard: an ASGI app over one database (and its history store), read-only, GET only.

``pgpulse dashboard URL`` serves it on 127.0.0.1; ``pgpulse.dashboard.app(url, auth=...)`` returns it for a
user's own app to mount.
"""

from pgpulse.dashboard.app import MISSING_EXTRA, DashboardError, app
from pgpulse.dashboard.requests import RequestRing

__all__ = ["MISSING_EXTRA", "DashboardError", "RequestRing", "app"]
