"""The admin box doctor: what this machine lacks to run the suite against a given inventory.

`python -m entsso doctor [--inventory=FILE]` lists each finding with the exact command that fixes it on
Debian/Ubuntu, RHEL and Windows; every run makes the same checks first (`blocking(inventory)`), so a
missing ODBC driver or Kerberos module is named before anything connects instead of surfacing as an
odd failure in the middle of the gate. Each check probes the real thing: pyodbc's driver list, the
modules pywinrm imports for Kerberos and CredSSP, the Kerberos ticket cache (gssapi's lifetime when
installed, else `klist -s`), the CA files the inventory names (WinRM's, and SQL Server's: usable by the
driver on this platform). Nothing here connects to the estate.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Finding", "blocking", "check", "main", "render"]

DEBIAN, RHEL, WINDOWS = "Debian/Ubuntu", "RHEL", "Windows"
TICKET_MARGIN = datetime.timedelta(hours=2)  # a change window's length: a ticket that ends sooner is flagged

# Microsoft Learn, "Install the Microsoft ODBC driver for SQL Server (Linux)" and "Download ODBC Driver for
# SQL Server" (Windows, silent install of msodbcsql.msi)
def _msodbcsql(n: int) -> dict[str, str]:
    return {
        DEBIAN: ("curl -sSL -O https://packages.microsoft.com/config/$(. /etc/os-release; echo \"$ID/$VERSION_ID\")"
                 f"/packages-microsoft-prod.deb && sudo dpkg -i packages-microsoft-prod.deb && sudo apt-get update "
                 f"&& sudo ACCEPT_EULA=Y apt-get install -y msodbcsql{n}"),
        RHEL: ("sudo dnf install -y https://packages.microsoft.com/config/rhel/$(rpm -E %rhel)"
               f"/packages-microsoft-prod.rpm && sudo ACCEPT_EULA=Y dnf install -y msodbcsql{n}"),
        WINDOWS: f"msiexec /quiet /passive /qn /i msodbcsql.msi IACCEPTMSODBCSQLLICENSETERMS=YES  (ODBC Driver {n} "
                 "for SQL Server's installer from Microsoft's download page)",
    }


DRIVER_FIXES: dict[str, dict[str, str]] = {
    "ODBC Driver 18 for SQL Server": _msodbcsql(18),
    "ODBC Driver 17 for SQL Server": _msodbcsql(17),
    # Debian's tdsodbc registers the driver as "FreeTDS" in /etc/odbcinst.ini; EPEL's freetds does not
    "FreeTDS": {
        DEBIAN: "sudo apt-get install -y tdsodbc",
        RHEL: ("sudo dnf install -y epel-release && sudo dnf install -y freetds && printf '[FreeTDS]\\nDriver = "
               "/usr/lib64/libtdsodbc.so.0\\n' | sudo odbcinst -i -d -r"),
        WINDOWS: "FreeTDS is not packaged for Windows: set `sql.driver: ODBC Driver 18 for SQL Server` and install it",
    },
}
UNIXODBC_FIX = {DEBIAN: "sudo apt-get install -y libodbc2", RHEL: "sudo dnf install -y unixODBC",
                WINDOWS: "(Windows has its ODBC driver manager built in: reinstall pyodbc with pip)"}
KERBEROS_MODULE_FIX = {
    DEBIAN: "sudo apt-get install -y gcc python3-dev libkrb5-dev krb5-user && pip install 'entsso-upgrade[kerberos]'",
    RHEL: "sudo dnf install -y gcc python3-devel krb5-devel krb5-workstation && pip install 'entsso-upgrade[kerberos]'",
    WINDOWS: "pip install \"entsso-upgrade[kerberos]\"",
}
KLIST_FIX = {DEBIAN: "sudo apt-get install -y krb5-user", RHEL: "sudo dnf install -y krb5-workstation",
             WINDOWS: "(klist is part of Windows)"}
TICKET_FIX = {DEBIAN: "kinit <your account>@<REALM>", RHEL: "kinit <your account>@<REALM>",
              WINDOWS: "log on to the admin box with your domain account (klist shows the ticket)"}
CREDSSP_FIX = {DEBIAN: "pip install 'entsso-upgrade[credssp]'", RHEL: "pip install 'entsso-upgrade[credssp]'",
               WINDOWS: "pip install \"entsso-upgrade[credssp]\""}
_PEM_LINUX = ("openssl x509 -in <the CA certificate> -out /etc/entsso/ca.pem  "
              "(then winrm.ca_trust_path: /etc/entsso/ca.pem)")
CA_FIX = {
    DEBIAN: _PEM_LINUX,
    RHEL: _PEM_LINUX,
    WINDOWS: ("certutil -encode <the CA certificate>.cer C:\\entsso\\ca.pem  "
              "(then winrm.ca_trust_path: C:\\entsso\\ca.pem)"),
}


@dataclass(frozen=True)
class Finding:
    check: str  # "ODBC driver", "Kerberos module", …
    ok: bool
    detail: str  # what was found, in a sentence
    fixes: dict[str, str] = field(default_factory=dict)  # platform -> the command that fixes it
    warning: bool = False  # not ok, but the run can start (a ticket that ends soon)

    @property
    def blocks(self) -> bool:
        return not self.ok and not self.warning


# --- the checks ----------------------------------------------------------------------------------------
def _sql_through_odbc(inv: Any) -> bool:
    """Whether this inventory's SQL Server is reached through pyodbc (the lab's own SQL client needs none)."""
    lab = getattr(inv, "lab", None)
    return not (lab is not None and getattr(lab, "sql_address", None))


def odbc_findings(driver: str) -> list[Finding]:
    try:
        import pyodbc
    except ImportError as exc:
        return [Finding("ODBC driver manager", False, f"pyodbc cannot be imported ({exc}): unixODBC's libodbc.so.2 "
                                                      "is missing", UNIXODBC_FIX)]
    installed = list(pyodbc.drivers())
    if driver in installed:
        return [Finding("ODBC driver", True, f"{driver!r} is installed")]
    return [Finding("ODBC driver", False,
                    f"{driver!r} (sql.driver) is not installed; pyodbc.drivers() lists "
                    + (", ".join(repr(d) for d in installed) if installed else "none"),
                    DRIVER_FIXES.get(driver, {}))]


def _has_module(*names: str) -> str | None:
    return next((n for n in names if importlib.util.find_spec(n) is not None), None)


def kerberos_module_finding() -> Finding:
    # pywinrm's vendored requests_kerberos imports `kerberos` (pykerberos), else `winkerberos` (Windows)
    found = _has_module("kerberos", "winkerberos")
    if found:
        return Finding("Kerberos for WinRM", True, f"pywinrm's Kerberos module {found!r} is installed")
    return Finding("Kerberos for WinRM", False, "`winrm.transport: kerberos` needs pykerberos (winkerberos on "
                                                "Windows), which is not installed", KERBEROS_MODULE_FIX)


def ticket_finding(now: datetime.datetime | None = None) -> Finding:
    """The operator's Kerberos ticket: its remaining lifetime from gssapi when installed, else klist -s."""
    if sys.platform == "win32":
        return Finding("Kerberos ticket", True, "Windows uses the ticket of your logon session")
    if _has_module("gssapi"):
        import gssapi
        import gssapi.exceptions

        try:
            left = gssapi.Credentials(usage="initiate").lifetime
        except gssapi.exceptions.GSSError as exc:
            return Finding("Kerberos ticket", False, f"no usable Kerberos ticket ({exc.gen_message()})", TICKET_FIX)
        if left is None:
            return Finding("Kerberos ticket", True, "a Kerberos ticket that does not expire")
        remaining = datetime.timedelta(seconds=int(left))
        if remaining <= datetime.timedelta(0):
            return Finding("Kerberos ticket", False, "the Kerberos ticket has expired", TICKET_FIX)
        text = f"the Kerberos ticket ends in {_span(remaining)}"
        if remaining < TICKET_MARGIN:
            return Finding("Kerberos ticket", False, text + f", less than a change window ({_span(TICKET_MARGIN)}): "
                                                           "renew it before the change", TICKET_FIX, warning=True)
        return Finding("Kerberos ticket", True, text)
    klist = shutil.which("klist")
    if klist is None:
        return Finding("Kerberos ticket", False, "klist is not installed, so no ticket can be checked or made",
                       KLIST_FIX)
    # MIT klist -s: no output; exit status 0 if a credentials cache with unexpired tickets exists, else 1
    status = subprocess.run([klist, "-s"], capture_output=True, timeout=10).returncode
    if status != 0:
        return Finding("Kerberos ticket", False, "no Kerberos ticket, or only expired ones (klist -s)", TICKET_FIX)
    return Finding("Kerberos ticket", True, "a valid Kerberos ticket (klist -s; install the kerberos extra for "
                                            "its lifetime)")


def credssp_finding() -> Finding:
    if _has_module("requests_credssp"):
        return Finding("CredSSP for WinRM", True, "requests-credssp is installed")
    return Finding("CredSSP for WinRM", False, "`winrm.transport: credssp` needs requests-credssp, which is not "
                                               "installed", CREDSSP_FIX)


def ca_finding(path: str | None, now: datetime.datetime | None = None) -> Finding:
    """winrm.ca_trust_path: readable, PEM, holding at least one certificate that is in its validity period."""
    if path is None:
        return Finding("Certificate trust", True, "WinRM certificates are validated against the CA bundle requests "
                                                  "ships (public CAs): an internal CA needs winrm.ca_trust_path")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return Finding("Certificate trust", False, f"winrm.ca_trust_path {path} cannot be read ({exc.strerror})",
                       CA_FIX)
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        return Finding("Certificate trust", False, f"winrm.ca_trust_path {path} holds no PEM certificate "
                                                   "(-----BEGIN CERTIFICATE-----)", CA_FIX)
    now = now or datetime.datetime.now(datetime.UTC)
    valid = [c for c in certs if c.not_valid_before_utc <= now <= c.not_valid_after_utc]
    names = "; ".join(c.subject.rfc4514_string() for c in certs)
    if not valid:
        return Finding("Certificate trust", False, f"every certificate in winrm.ca_trust_path {path} is outside its "
                                                   f"validity period ({names})", CA_FIX)
    return Finding("Certificate trust", True, f"winrm.ca_trust_path {path}: {len(certs)} certificate(s), {names}")


SQL_ROOT_STORE_FIX = {
    WINDOWS: ("Import-Certificate -FilePath <ca.pem> -CertStoreLocation Cert:\\LocalMachine\\Root  (then remove "
              "sql.ca_file: ODBC Driver 18 on Windows trusts Windows' store only)"),
}
SQL_CA_FIX = {
    DEBIAN: "openssl x509 -in <the CA certificate> -out /etc/entsso/sql-ca.pem  (then sql.ca_file: "
            "/etc/entsso/sql-ca.pem)",
    RHEL: "openssl x509 -in <the CA certificate> -out /etc/entsso/sql-ca.pem  (then sql.ca_file: "
          "/etc/entsso/sql-ca.pem)",
    **SQL_ROOT_STORE_FIX,
}


def sql_trust_finding(sql: Any, platform: str = sys.platform, now: datetime.datetime | None = None) -> Finding:
    """How SQL Server's certificate will be validated (docs/inventory.md, "SQL Server's certificate"):
    sql.ca_file readable, PEM, a CA in its validity period, and usable by the driver on this platform."""
    check_name = "SQL Server certificate trust"
    ms = sql.driver != "FreeTDS"
    if not sql.encrypt or sql.trust_server_certificate:
        return Finding(check_name, True, "the certificate is not validated (sql.encrypt: false or "
                                         "sql.trust_server_certificate: true)")
    if sql.ca_file is None:
        if not ms:
            return Finding(check_name, False, "FreeTDS validates SQL Server's certificate only against a CA file: "
                                              "without sql.ca_file it encrypts but trusts any certificate",
                           SQL_CA_FIX, warning=True)
        where = ("Windows' certificate store (Trusted Root Certification Authorities)" if platform == "win32" else
                 "OpenSSL's trust: the system bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set")
        return Finding(check_name, True, f"{sql.driver} validates SQL Server's certificate against {where}; a "
                                         "private CA needs sql.ca_file" + (" or an import there" if platform ==
                                                                          "win32" else ""))
    if ms and platform == "win32":
        return Finding(check_name, False, f"sql.ca_file {sql.ca_file}: {sql.driver} on Windows validates against "
                                          "Windows' certificate store only and cannot use a CA file",
                       SQL_ROOT_STORE_FIX)
    try:
        data = Path(sql.ca_file).read_bytes()
    except OSError as exc:
        return Finding(check_name, False, f"sql.ca_file {sql.ca_file} cannot be read ({exc.strerror})", SQL_CA_FIX)
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        return Finding(check_name, False, f"sql.ca_file {sql.ca_file} holds no PEM certificate "
                                          "(-----BEGIN CERTIFICATE-----)", SQL_CA_FIX)
    now = now or datetime.datetime.now(datetime.UTC)

    def is_ca(c: Any) -> bool:
        try:
            return bool(c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            return False

    cas = [c for c in certs if is_ca(c)]
    valid = [c for c in cas if c.not_valid_before_utc <= now <= c.not_valid_after_utc]
    names = "; ".join(c.subject.rfc4514_string() for c in certs)
    if not cas:
        return Finding(check_name, False, f"sql.ca_file {sql.ca_file} holds no CA certificate ({names}): name the CA "
                                          "that issued SQL Server's certificate, not the certificate itself",
                       SQL_CA_FIX)
    if not valid:
        return Finding(check_name, False, f"every CA certificate in sql.ca_file {sql.ca_file} is outside its "
                                          f"validity period ({names})", SQL_CA_FIX)
    how = ("FreeTDS reads it from a freetds.conf section of the run's own (FREETDSCONF)" if not ms else
           "the run adds it to OpenSSL's trust for itself (SSL_CERT_FILE names a bundle of the run's own: the "
           "machine's trust plus this CA)")
    return Finding(check_name, True, f"sql.ca_file {sql.ca_file}: {len(cas)} CA certificate(s), {names}; {how}")


def check(inv: Any) -> list[Finding]:
    """Every finding for inventory `inv` (entsso.inventory.Inventory)."""
    out: list[Finding] = []
    if _sql_through_odbc(inv):
        out += odbc_findings(inv.sql.driver)
    w = inv.winrm
    if w.transport == "kerberos":
        out.append(kerberos_module_finding())
    if w.transport == "kerberos" or inv.sql.auth == "kerberos":
        out.append(ticket_finding())
    if w.transport == "credssp":
        out.append(credssp_finding())
    if w.https and w.server_cert_validation == "validate":
        out.append(ca_finding(w.ca_trust_path))
    out.append(sql_trust_finding(inv.sql))
    return out


def check_machine() -> list[Finding]:
    """Without an inventory: what this machine has for any inventory; a missing option is a warning."""
    out = odbc_findings("ODBC Driver 18 for SQL Server")
    if out[0].check == "ODBC driver" and not out[0].ok:
        out = [Finding("ODBC driver", False, out[0].detail + " (an inventory may name another: sql.driver)",
                       out[0].fixes, warning=True)]
    for f in (kerberos_module_finding(), credssp_finding()):
        out.append(f if f.ok else Finding(f.check, False, f.detail + " (only that transport needs it)", f.fixes,
                                          warning=True))
    return out


def blocking(inv: Any) -> list[Finding]:
    """What stops a run before it starts (the start of every run calls this: no connection, milliseconds)."""
    return [f for f in check(inv) if f.blocks]


def _span(d: datetime.timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def render(findings: list[Finding], *, only_problems: bool = False) -> str:
    lines = []
    for f in findings:
        if only_problems and f.ok:
            continue
        mark = "ok     " if f.ok else ("warning" if f.warning else "MISSING")
        lines.append(f"  {mark}  {f.check}: {f.detail}")
        if not f.ok:
            width = max(len(p) for p in f.fixes) if f.fixes else 0
            lines += [f"           {p + ':':<{width + 1}} {cmd}" for p, cmd in f.fixes.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entsso doctor",
        description="What this admin box lacks to run the suite against an inventory (ODBC driver, Kerberos, "
                    "CredSSP, certificate trust), with the command that installs each. Connects to nothing.")
    parser.add_argument("--inventory", metavar="FILE",
                        help="the inventory to check this machine for; without it, what the machine has for any")
    args = parser.parse_args(argv)
    from entsso.inventory import InventoryError, check_inventory

    machine = f"this machine ({sys.platform}, Python {sys.version.split()[0]})"
    if args.inventory:
        try:
            inv = check_inventory(args.inventory)  # the file only: its secrets are not needed here
        except InventoryError as exc:
            print(exc, file=sys.stderr)
            return 2
        findings = check(inv)
        print(f"entsso doctor: {machine} for {inv.path}")
    else:
        findings = check_machine()
        print(f"entsso doctor: {machine}, for any inventory (give --inventory=FILE to check for one)")
    print(render(findings))
    missing = [f for f in findings if f.blocks]
    warnings = [f for f in findings if not f.ok and f.warning]
    print(f"{len(missing)} missing, {len(warnings)} warning(s)" if missing or warnings
          else "nothing missing: this machine can run the suite against this inventory")
    return 1 if missing else 0
