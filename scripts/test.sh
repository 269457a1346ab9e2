#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then runs the whole suite against a
# real PostgreSQL (embedded unless PGPULSE_TEST_DATABASE_URL is set). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages some tests drive for real (PgBouncer in front of the server; a PostgreSQL 15 with HypoPG
# for the advisor's hypothetical indexes; Chromium + chromedriver for the dashboard's browser tests).
# Installed only where missing, only when we may (root + apt).
DEBS=(pgbouncer postgresql-15 postgresql-15-hypopg chromium chromium-driver valgrind)
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package starts its own cluster and pgbouncer service; the tests start their own.
  (service postgresql stop || true) >/dev/null 2>&1
  (service pgbouncer stop || true) >/dev/null 2>&1
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest's 5 means "no tests collected": with a -k/-m filter that is a valid answer, not a failure.
if [ "$rc" = 5 ]; then
  echo "no tests selected"
  exit 0
fi
exit "$rc"
