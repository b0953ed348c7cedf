#!/bin/sh
# Set up what `make test` and `make demo` need on a fresh machine: unixODBC's libodbc.so.2 (pyodbc
# cannot be imported without it), a .venv with the package and its test dependencies.
# Idempotent: a second run changes nothing.
set -eu
cd "$(dirname "$0")/.."

have_libodbc() { ldconfig -p 2>/dev/null | grep -q 'libodbc\.so\.2'; }

if ! have_libodbc; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing unixODBC (libodbc2) with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libodbc2 >/dev/null
  else
    echo "bootstrap: pyodbc needs unixODBC's libodbc.so.2, which is missing." >&2
    echo "  Debian/Ubuntu: sudo apt-get install libodbc2   RHEL/Fedora: sudo dnf install unixODBC" >&2
    echo "  macOS: brew install unixodbc" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
