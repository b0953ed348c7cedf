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

# System packages: unixODBC for pyodbc (needed to run at all), FreeTDS's ODBC driver and tsql (the lab's
# SQL Server is reached through them), Chromium for the selftest that opens the report in a real browser
# (needed by `make test` only).
missing=""
have_libodbc || missing="$missing libodbc2"
have_freetds || missing="$missing odbcinst tdsodbc freetds-bin"
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
  elif ! have_freetds; then
    echo "bootstrap: FreeTDS's ODBC driver or tsql is missing: the lab's SQL Server cannot be reached." >&2
    echo "  Debian/Ubuntu: sudo apt-get install odbcinst tdsodbc freetds-bin" >&2
    exit 1
  else
    echo "bootstrap: chromium is missing: the report's browser selftest will fail." >&2
    echo "  Debian/Ubuntu: sudo apt-get install chromium" >&2
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

# Microsoft's ODBC Driver 18 for SQL Server, the inventory's default, for the selftests' driver matrix. An
# installed one (msodbcsql18 from Microsoft's repository, registered in the system's odbcinst.ini) is used
# as it is. Otherwise the one of the mssql-python-odbc wheel (a test dependency) is registered in the
# project's own odbcinst.ini, .venv/etc/odbcinst.ini: a copy of the system's drivers (FreeTDS) plus it.
# The system's odbcinst.ini is never written. The selftests point unixODBC at that directory (ODBCSYSINI,
# set by selftest/conftest.py when the file exists; the suite's child runs inherit it): `make demo` and
# an administrator's own runs keep the system's drivers.
D18="ODBC Driver 18 for SQL Server"
etc=.venv/etc
if env -u ODBCSYSINI -u ODBCINSTINI odbcinst -q -d -n "$D18" >/dev/null 2>&1; then
  rm -f "$etc/odbcinst.ini"  # the system has the driver: the selftests use it
else
  lib=$(.venv/bin/python - <<'PY'
import glob, os
try:
    import mssql_python_odbc
except ImportError:
    raise SystemExit(0)
release = open("/etc/os-release").read().lower() if os.path.exists("/etc/os-release") else ""
family = ("rhel" if any(w in release for w in ("rhel", "fedora", "centos", "rocky", "alma")) else
          "suse" if "suse" in release else "debian_ubuntu")
found = glob.glob(os.path.join(mssql_python_odbc.get_libs_dir(), "linux", family, os.uname().machine,
                               "lib", "libmsodbcsql-18.*.so*"))
print(found[0] if found else "")
PY
)
  if [ -z "$lib" ]; then
    echo "bootstrap: no $D18 here (mssql-python-odbc has none for this system): the driver matrix's" >&2
    echo "  Driver 18 selftests will fail. Install msodbcsql18 (Microsoft's repository) instead." >&2
  else
    # what the driver needs of the system (ldd), and OpenSSL's libssl, which it loads at run time
    need=""
    ldd "$lib" | grep -q 'libgssapi_krb5.* not found\|libkrb5\.so.* not found\|libk5crypto.* not found' \
      && need="$need libgssapi-krb5-2"
    ldd "$lib" | grep -q 'libltdl.* not found' && need="$need libltdl7"
    ldd "$lib" | grep -q 'libkeyutils.* not found' && need="$need libkeyutils1"
    ldd "$lib" | grep -q 'libstdc++.* not found' && need="$need libstdc++6"
    ldconfig -p 2>/dev/null | grep -q 'libssl\.so\.3\|libssl\.so\.1\.1' || need="$need libssl3"
    if [ -n "$need" ]; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing$need (needed by $D18) with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
      else
        echo "bootstrap: $D18 needs$need (ldd $lib): install them (Debian/Ubuntu names)." >&2
      fi
    fi
    mkdir -p "$etc"
    sysini=$(env -u ODBCSYSINI -u ODBCINSTINI odbcinst -j 2>/dev/null | sed -n 's/^DRIVERS\.*: //p')
    {
      echo "# written by scripts/bootstrap.sh: the system's drivers ($sysini) and $D18 of mssql-python-odbc;"
      echo "# the selftests' unixODBC reads this file (ODBCSYSINI=$(pwd)/$etc), nothing else does"
      if [ -n "$sysini" ] && [ -r "$sysini" ]; then cat "$sysini"; echo; fi
      printf '[%s]\nDescription=Microsoft ODBC Driver 18 for SQL Server (mssql-python-odbc)\nDriver=%s\n' \
        "$D18" "$(readlink -f "$lib")"
    } > "$etc/odbcinst.ini.tmp"
    mv "$etc/odbcinst.ini.tmp" "$etc/odbcinst.ini"
  fi
fi
