#!/usr/bin/env bash
# The version ranges pyproject.toml declares, tested at their edges. For each edge: a throw-away venv under
# $PGPULSE_VERSIONS_DIR (default /tmp/pgpulse-versions/<edge>) with pgpulse[demo] installed from this checkout's
# tracked files (not editable: the installed package, data files included, is what runs), the edge's pins and
# the test tools; then the profiler's and CitizenApp's tests against a real PostgreSQL (embedded unless
# PGPULSE_TEST_DATABASE_URL is set). Not part of scripts/test.sh: two installs and two test runs take minutes.
#
#   bash scripts/test-versions.sh                 # both edges
#   bash scripts/test-versions.sh lowest -- -x    # one edge; arguments after -- go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

# The floors of the declared ranges (tests/test_version_ranges.py checks that they are the floors in
# pyproject.toml). FastAPI 0.110.0 itself pins Starlette to 0.36.x, so these four are one consistent set.
LOWEST=("sqlalchemy[asyncio]==2.0.30" "asyncpg==0.29.0" "fastapi==0.110.0" "starlette==0.36.3")
# The newest releases inside the ranges: nothing pinned, pip resolves the newest that the ranges allow.
HIGHEST=()
TEST_TOOLS=(pytest pytest-asyncio hypothesis httpx "psycopg[binary]" sqlmodel pyjwt)
TESTS=(tests/profiler tests/demo tests/test_cli_demo.py)

edges=()
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; pytest_args=("$@"); break ;;
    lowest | highest) edges+=("$1"); shift ;;
    *) echo "unknown edge '$1': use lowest, highest, or -- followed by pytest arguments" >&2; exit 2 ;;
  esac
done
[ ${#edges[@]} -gt 0 ] || edges=(lowest highest)

root=${PGPULSE_VERSIONS_DIR:-/tmp/pgpulse-versions}
# Install from a copy of the tracked files (with their uncommitted changes): setuptools keeps a build/ folder in
# the source tree, and a stale one could slip old files into the package under test.
source_copy="$root/source"
rm -rf "$source_copy" && mkdir -p "$source_copy"
git ls-files -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$source_copy"
failed=()
for edge in "${edges[@]}"; do
  venv="$root/$edge"
  if [ "$edge" = lowest ]; then pins=("${LOWEST[@]}"); else pins=("${HIGHEST[@]+"${HIGHEST[@]}"}"); fi
  echo "== $edge: ${pins[*]:-newest in range}"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$source_copy[demo]" "${TEST_TOOLS[@]}" \
    "${pins[@]+"${pins[@]}"}"
  "$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(sqlalchemy|asyncpg|fastapi|starlette|pydantic|alembic|sqlmodel) ' | tr -s ' ' | paste -sd ',' -
  # From the checkout's root, so the tests' own modules (tests.*) import; pgpulse itself comes from the venv.
  if "$venv/bin/python" -m pytest -q -p no:randomly "${TESTS[@]}" "${pytest_args[@]+"${pytest_args[@]}"}"; then
    echo "== $edge: passed"
  else
    echo "== $edge: FAILED"
    failed+=("$edge")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed at: ${failed[*]}"
  exit 1
fi
