#!/usr/bin/env bash
# A throw-away Debian PostgreSQL 15 cluster (pg_stat_statements preloaded, as the tests expect), for running
# the suite against a server other than the embedded 18:
#
#   bash scripts/pg15.sh > /tmp/pg15.url &        # prints the URL once the server accepts connections
#   PGPULSE_TEST_DATABASE_URL=$(cat /tmp/pg15.url) .venv/bin/python -m pytest tests/doctor
#   kill %1                                       # stops the server and deletes its data directory
#
# It is the same EmbeddedPostgres the tests use, pointed at Debian's binaries (scripts/test.sh installs
# postgresql-15 as root); as root the server runs as the dedicated system user, since PostgreSQL refuses root.
set -euo pipefail
cd "$(dirname "$0")/.."
BINS=${PG15_BINS:-/usr/lib/postgresql/15/bin}
if [ ! -x "$BINS/postgres" ]; then
  echo "no PostgreSQL 15 at $BINS: apt-get install postgresql-15 (or set PG15_BINS)" >&2
  exit 2
fi
exec .venv/bin/python - "$BINS" <<'PY'
import signal
import sys
import threading
from pathlib import Path

from pgpulse.demo.embedded import ephemeral_server

stop = threading.Event()
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda *_: stop.set())
with ephemeral_server(bins=Path(sys.argv[1])) as server:
    print(server.url(), flush=True)
    stop.wait()
PY
