#!/usr/bin/env bash
# Sets up a fresh machine for RoleUp: Debian packages the tests need, then a virtualenv in
# .venv with the project and its extras (dev and demo unless --extras says which: scripts/demo.sh
# asks for demo alone). Safe to run again; it only does what is missing.
# Usage: scripts/setup.sh [--with-test-services] [--extras dev,demo]
set -euo pipefail
cd "$(dirname "$0")/.."

want_services=0
extras=dev,demo
while [ $# -gt 0 ]; do
  case "$1" in
    --with-test-services) want_services=1 ;;
    --extras) extras=${2:?--extras needs a list such as demo or dev,demo}; shift ;;
    *) echo "usage: scripts/setup.sh [--with-test-services] [--extras dev,demo]" >&2; exit 2 ;;
  esac
  shift
done

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi
}

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install $* (this script knows Debian's apt-get only)" >&2
    return 1
  fi
  echo "setup: installing $* from Debian's packages"
  if [ "$apt_updated" = 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  # Through env, because sudo drops the caller's environment.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$@" >/dev/null
}

# Python 3.11+ with venv (Debian splits ensurepip into python3-venv).
PYTHON=${PYTHON:-python3}
python_missing=()
command -v "$PYTHON" >/dev/null 2>&1 || python_missing+=(python3)
"$PYTHON" -c "import ensurepip" >/dev/null 2>&1 || python_missing+=(python3-venv)
if [ ${#python_missing[@]} -gt 0 ]; then
  apt_install "${python_missing[@]}"
fi
if ! "$PYTHON" -c "import sys; sys.exit(sys.version_info < (3, 11))"; then
  echo "setup: RoleUp needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi

if [ "$want_services" = 1 ]; then
  missing=()
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
  # Debian creates and starts a cluster on install; the tests start their own throwaway one
  # on a free port (as the postgres user when run as root), so stop every running cluster.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r version cluster _port status _rest; do
      if [ "${status%%,*}" = online ]; then
        echo "setup: stopping Debian's PostgreSQL cluster $version/$cluster (the tests run their own)"
        as_root pg_ctlcluster "$version" "$cluster" stop || true
      fi
    done
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The stamp holds pyproject.toml's hash and the extras installed. Extras only add up: a .venv
# set up for the tests already runs the demo, and one set up for the demo gets dev added.
stamp=.venv/.roleup-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
had_hash='' had_extras=''
if [ -f "$stamp" ]; then read -r had_hash had_extras < "$stamp" || true; fi
all=$(printf '%s\n' ${extras//,/ } ${had_extras//,/ } | sort -u | paste -sd, -)
if [ "$had_hash" != "$want" ] || [ "$all" != "$had_extras" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$all]"
  echo "$want $all" > "$stamp"
fi
