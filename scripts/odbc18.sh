#!/bin/sh
# Usage: sh scripts/odbc18.sh VENV   (scripts/bootstrap.sh runs it with .venv)
# Microsoft's ODBC Driver 18 for SQL Server, the inventory's default, for the selftests' driver matrix. An
# installed one (msodbcsql18 from Microsoft's repository, registered in the system's odbcinst.ini) is used
# as it is. Otherwise the one of the mssql-python-odbc wheel (a test dependency) is registered in the
# project's own odbcinst.ini, <venv>/etc/odbcinst.ini: a copy of the system's drivers (FreeTDS) plus it.
# The system's odbcinst.ini is never written. The selftests point unixODBC at that directory (ODBCSYSINI,
# set by selftest/conftest.py when the file exists; the suite's child runs inherit it): `make demo` and
# an administrator's own runs keep the system's drivers.
set -eu
venv=${1:?usage: odbc18.sh VENV}
D18="ODBC Driver 18 for SQL Server"
etc=$venv/etc
if env -u ODBCSYSINI -u ODBCINSTINI odbcinst -q -d -n "$D18" >/dev/null 2>&1; then
  rm -f "$etc/odbcinst.ini"  # the system has the driver: the selftests use it
else
  lib=$("$venv/bin/python" - <<'PY'
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
      echo "# the selftests' unixODBC reads this file (ODBCSYSINI=$(cd "$etc" && pwd)), nothing else does"
      if [ -n "$sysini" ] && [ -r "$sysini" ]; then cat "$sysini"; echo; fi
      printf '[%s]\nDescription=Microsoft ODBC Driver 18 for SQL Server (mssql-python-odbc)\nDriver=%s\n' \
        "$D18" "$(readlink -f "$lib")"
    } > "$etc/odbcinst.ini.tmp"
    mv "$etc/odbcinst.ini.tmp" "$etc/odbcinst.ini"
  fi
fi
