#!/usr/bin/env bash
# One command from a fresh machine to the whole suite: installs PostgreSQL and Chromium from
# Debian's packages when missing, the Python packages into .venv, checks lint and types, and
# runs every test on SQLite and on a real PostgreSQL (started and stopped by the tests).
# Extra arguments go to pytest, e.g. scripts/test.sh -k onboard --db sqlite
#
# scripts/test.sh --fast: the inner loop. tests/unit and tests/services on SQLite only, spread
# over the machine's cores (pytest-xdist), no PostgreSQL or Chromium installed, ruff kept (it
# takes a second), mypy left to the full run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fast" ]; then
  shift
  scripts/setup.sh
  export PATH="$PWD/.venv/bin:$PATH"
  echo "== ruff"
  ruff check .
  ruff format --check .
  echo "== pytest (fast: tests/unit tests/services, SQLite, one worker a core)"
  exec python -m pytest -p no:cacheprovider -q --db sqlite -n auto tests/unit tests/services "$@"
fi

scripts/setup.sh --with-test-services
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy
echo "== pytest"
# pytest exits 5 when it collected nothing: that is a failure here too.
exec python -m pytest -p no:cacheprovider "$@"
