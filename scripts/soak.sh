#!/usr/bin/env bash
# Soak test (pgpulse issue 7): 10 minutes of mixed load against CitizenApp with the profiler on, in its own
# process over loopback. Writes the app's RSS curve and latency summary to soak-results/ (CSV + JSON).
#   PGPULSE_SOAK_SECONDS=60 scripts/soak.sh      # shorter run
#   PGPULSE_SOAK_OUT=/tmp/soak scripts/soak.sh   # elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."
export PGPULSE_SOAK_SECONDS="${PGPULSE_SOAK_SECONDS:-600}"
exec .venv/bin/python -m pytest tests/faults/test_soak.py -m soak -q -s -p no:cacheprovider "$@"
