#!/bin/sh
# Set up what `make test` and `make demo` need on a fresh machine: unixODBC's libodbc.so.2 (pyodbc
# cannot be imported without it), a .venv with the package and its test dependencies.
# Idempotent: a second run changes nothing.
set -eu
cd "$(dirname "$0")/.."

have_libodbc() { ldconfig -p 2>/dev/null | grep -q 'libodbc\.so\.2'; }
have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }

# System packages: unixODBC for pyodbc (needed to run at all), Chromium for the selftest that opens the
# report in a real browser (needed by `make test` only).
missing=""
have_libodbc || missing="$missing libodbc2"
have_chromium || missing="$missing chromium"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing$missing with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  elif ! have_libodbc; then
    echo "bootstrap: pyodbc needs unixODBC's libodbc.so.2, which is missing." >&2
    echo "  Debian/Ubuntu: sudo apt-get install libodbc2   RHEL/Fedora: sudo dnf install unixODBC" >&2
    echo "  macOS: brew install unixodbc" >&2
    exit 1
  else
    echo "bootstrap: chromium is missing: the report's browser selftest will fail." >&2
    echo "  Debian/Ubuntu: sudo apt-get install chromium" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
