#!/usr/bin/env bash
# Sets up a fresh machine for RoleUp: Debian packages the tests need, then a virtualenv in
# .venv with the project and its dev extras. Safe to run again; it only does what is missing.
# Usage: scripts/setup.sh [--with-test-services]
set -euo pipefail
cd "$(dirname "$0")/.."

want_services=0
[ "${1:-}" = "--with-test-services" ] && want_services=1

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi
}

if [ "$want_services" = 1 ]; then
  missing=()
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} from Debian's packages"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  # Debian starts a default cluster on install; the tests start their own, so stop it.
  if command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters -h 2>/dev/null | grep -q online; then
    as_root pg_ctlcluster "$(pg_lsclusters -h | awk 'NR==1{print $1}')" \
      "$(pg_lsclusters -h | awk 'NR==1{print $2}')" stop || true
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.roleup-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
