#!/bin/sh
# Set up what `make test` and `make demo` need on a fresh machine: unixODBC's libodbc.so.2 (pyodbc
# cannot be imported without it), FreeTDS's ODBC driver (tdsodbc; the suite reaches the lab's SQL Server
# through it, as an estate's) and its `tsql` client (freetds-bin), a .venv with the package and its test
# dependencies, and Microsoft's ODBC Driver 18 for SQL Server (the inventory's default) from the
# mssql-python-odbc wheel, registered for the project only (below) when no such driver is installed.
# Idempotent: a second run changes nothing.
set -eu
cd "$(dirname "$0")/.."

have_libodbc() { ldconfig -p 2>/dev/null | grep -q 'libodbc\.so\.2'; }
have_freetds() { odbcinst -q -d -n FreeTDS >/dev/null 2>&1 && command -v tsql >/dev/null 2>&1; }
have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
have_node() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }

# System packages: unixODBC for pyodbc (needed to run at all), FreeTDS's ODBC driver and tsql (the lab's
# SQL Server is reached through them), Chromium for the selftest that opens the report in a real browser
# and Node.js with npm for the foreign-client selftests' tedious (both needed by `make test` only).
missing=""
have_libodbc || missing="$missing libodbc2"
have_freetds || missing="$missing odbcinst tdsodbc freetds-bin"
have_chromium || missing="$missing chromium"
have_node || missing="$missing nodejs npm"
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
  elif ! have_freetds; then
    echo "bootstrap: FreeTDS's ODBC driver or tsql is missing: the lab's SQL Server cannot be reached." >&2
    echo "  Debian/Ubuntu: sudo apt-get install odbcinst tdsodbc freetds-bin" >&2
    exit 1
  else
    have_chromium || echo "bootstrap: chromium is missing: the report's browser selftest will fail." >&2
    have_chromium || echo "  Debian/Ubuntu: sudo apt-get install chromium" >&2
    have_node || echo "bootstrap: node/npm are missing: the tedious selftests will be skipped." >&2
    have_node || echo "  Debian/Ubuntu: sudo apt-get install nodejs npm" >&2
  fi
fi

# Debian's tdsodbc registers the driver as "FreeTDS" in /etc/odbcinst.ini (its postinst runs odbcinst);
# a system where it did not gets the same entry here
if ! odbcinst -q -d -n FreeTDS >/dev/null 2>&1; then
  lib=$(ls /usr/lib/*/odbc/libtdsodbc.so /usr/lib64/libtdsodbc.so* 2>/dev/null | head -n 1 || true)
  if [ -n "$lib" ] && [ "$(id -u)" = 0 ]; then
    printf '[FreeTDS]\nDescription=FreeTDS ODBC driver\nDriver=%s\n' "$lib" | odbcinst -i -d -r >/dev/null
  else
    echo "bootstrap: the FreeTDS ODBC driver is not registered with unixODBC (odbcinst -q -d)." >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# Microsoft's ODBC Driver 18 for SQL Server for the selftests' driver matrix (scripts/odbc18.sh says how)
sh scripts/odbc18.sh .venv

# Microsoft's JavaScript TDS driver (tedious), a foreign client of the lab's SQL Server in the selftests:
# installed exactly as selftest/foreign/node/package-lock.json says (npm ci), again only when that changed
node_dir=selftest/foreign/node
if have_node; then
  if [ ! -d "$node_dir/node_modules/tedious" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
else
  echo "bootstrap: node/npm are missing: tedious is not installed, its selftests are skipped." >&2
fi
