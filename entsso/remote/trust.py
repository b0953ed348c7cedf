"""How a CA file reaches each ODBC driver (`sql.ca_file` means one thing for every driver): FreeTDS through a
freetds.conf section of this process's own (FREETDSCONF), Microsoft's ODBC Driver 17/18 on Linux through a CA
bundle of this process's own (SSL_CERT_FILE: the trust it had plus the CA file)."""
from __future__ import annotations

import os
import ssl
import tempfile
import threading
from typing import Protocol

from entsso.remote.errors import SqlError


class TrustSettings(Protocol):
    """What the trust needs of a server's settings (entsso.remote.sql.SqlSettings meets it)."""

    @property
    def server(self) -> str: ...
    @property
    def instance(self) -> str | None: ...
    @property
    def ca_file(self) -> str | None: ...
    @property
    def host(self) -> str: ...
    @property
    def tcp_port(self) -> int | None: ...
    def freetds_section(self) -> str | None: ...
    def openssl_ca_file(self) -> str | None: ...


class FreeTdsConf:
    """This process's freetds.conf: one section per server connected to with a CA file (FreeTDS reads it
    at each connect). FREETDSCONF points at it; a FREETDSCONF naming another file is refused, since FreeTDS
    would not see these sections."""

    MARK = "# written by entsso-upgrade (entsso/remote/sql.py): one section per SQL Server with sql.ca_file\n"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sections: dict[str, str] = {}
        self._path: str | None = None

    @property
    def path(self) -> str | None:
        return self._path

    def _file(self) -> str:
        """The file: freetds.conf in a private temporary directory, made with the first section."""
        if self._path is None:
            self._path = os.path.join(tempfile.mkdtemp(prefix="entsso-freetds-"), "freetds.conf")
        return self._path

    def ensure(self, s: TrustSettings) -> str:
        name = s.freetds_section()
        assert name
        with self._lock:
            current = os.environ.get("FREETDSCONF")
            if current and current != self._path:
                try:
                    with open(current, encoding="utf-8") as f:
                        ours = f.readline() == self.MARK
                except OSError:
                    ours = False
                if not ours:
                    raise SqlError(f"SQL Server {s.server}: FREETDSCONF names {current}, so FreeTDS would not read "
                                   "the section that carries sql.ca_file: unset FREETDSCONF, or remove sql.ca_file "
                                   f"and set `ca file = {s.ca_file}` in that file's section for the server")
            if name not in self._sections:
                lines = [f"[{name}]", f"\thost = {s.host}"]
                if s.tcp_port or not s.instance:
                    lines.append(f"\tport = {s.tcp_port or 1433}")
                else:
                    lines.append(f"\tinstance = {s.instance}")
                lines += ["\ttds version = 7.4", "\tencryption = require", f"\tca file = {s.ca_file}",
                          "\tcheck certificate hostname = yes"]
                self._sections[name] = "\n".join(lines) + "\n"
                tmp = self._file() + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(self.MARK + "".join(self._sections.values()))
                os.replace(tmp, self._file())
            os.environ["FREETDSCONF"] = self._file()
        return name


freetds_conf = FreeTdsConf()


class OpenSslTrust:
    """sql.ca_file for Microsoft's ODBC driver on Linux and macOS. The driver has no CA-file keyword (its
    ServerCertificate, 18.1+, pins the server's own certificate, and only with Encrypt=strict): it validates
    with OpenSSL's default trust, whose file OpenSSL takes from SSL_CERT_FILE at each handshake. This process
    gets a bundle of its own — the trust it had (SSL_CERT_FILE's file, else the system's bundle) plus each
    sql.ca_file — in a private temporary directory, and SSL_CERT_FILE names it: the CA is trusted by this
    run only, in addition to what the machine trusts; nothing of the machine's trust store is written."""

    MARK = "# written by entsso-upgrade (entsso/remote/sql.py): the trust this run had, plus each sql.ca_file\n"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._added: dict[str, str] = {}
        self._base: str | None = None
        self._path: str | None = None

    @property
    def path(self) -> str | None:
        return self._path

    def ensure(self, s: TrustSettings) -> str:
        ca = s.openssl_ca_file()
        assert ca
        with self._lock:
            current = os.environ.get("SSL_CERT_FILE")
            if self._base is None:
                paths = ssl.get_default_verify_paths()
                # the trust it had: SSL_CERT_FILE's, else the system's bundle (this Python's OpenSSL may have been
                # built with another prefix than the system's libssl the driver loads: Debian's, then RHEL's)
                self._base = ""  # none readable: the CA files alone (OpenSSL's default directory still applies)
                for base in ([current] if current else [paths.openssl_cafile, paths.cafile,
                                                        "/etc/ssl/certs/ca-certificates.crt",
                                                        "/etc/pki/tls/certs/ca-bundle.crt"]):
                    try:
                        with open(base or "", encoding="utf-8", errors="replace") as f:
                            self._base = f.read()
                        break
                    except OSError:
                        continue
            elif current != self._path:
                raise SqlError(f"SQL Server {s.server}: SSL_CERT_FILE was changed to {current} after the suite "
                               "set it: Microsoft's ODBC driver would not see sql.ca_file; leave SSL_CERT_FILE alone "
                               "during a run")
            if ca not in self._added:
                try:
                    with open(ca, encoding="utf-8") as f:
                        pem = f.read()
                except OSError as exc:
                    raise SqlError(f"SQL Server {s.server}: sql.ca_file {ca} cannot be read ({exc.strerror}): "
                                   "give the PEM file of the CA that issued SQL Server's certificate") from None
                if "-----BEGIN CERTIFICATE-----" not in pem:
                    raise SqlError(f"SQL Server {s.server}: sql.ca_file {ca} holds no PEM certificate "
                                   "(-----BEGIN CERTIFICATE-----): convert it with openssl x509 -inform der")
                self._added[ca] = pem
                if self._path is None:
                    self._path = os.path.join(tempfile.mkdtemp(prefix="entsso-trust-"), "ca-bundle.pem")
                tmp = self._path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(self.MARK + self._base.rstrip("\n") + "\n"
                            + "".join(f"# sql.ca_file {k}\n{v.strip()}\n" for k, v in self._added.items()))
                os.replace(tmp, self._path)
            assert self._path is not None
            os.environ["SSL_CERT_FILE"] = self._path
            return self._path


openssl_trust = OpenSslTrust()
