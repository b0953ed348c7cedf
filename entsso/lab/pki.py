"""The lab's certificate authority: one CA per lab, a server certificate per endpoint it serves.

A real estate's WinRM HTTPS listeners (and SQL Server's TLS) carry certificates issued by the
organisation's CA, and the admin box validates them against that CA (`winrm.ca_trust_path`). The lab
does the same with a CA of its own, made when it starts: `LabCA().issue("NODE1", addresses=["127.0.0.2"])`
writes the host's certificate and key to the CA's private directory, and `write_certificate(path)` writes
the CA certificate (public: no key) for an inventory to trust. Keys are ECDSA P-256, so a lab with forty
hosts makes its certificates in milliseconds. Tests use `issue(..., not_after=...)` and a second LabCA for
expired and foreign certificates.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["IssuedCertificate", "LabCA", "server_context"]

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class IssuedCertificate:
    cert_path: str  # PEM: the server certificate, then the CA certificate (the chain a listener sends)
    key_path: str  # PEM, unencrypted, readable by this user only

    def server_context(self, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        return server_context(self.cert_path, self.key_path, maximum=maximum)


def server_context(cert_path: str, key_path: str, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A TLS server context for a listener of the lab: TLS 1.2 at least (Windows Server 2016's default floor),
    `maximum` where the protocol caps it (TLS inside TDS 7.x is TLS 1.2)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if maximum is not None:
        ctx.maximum_version = maximum
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LabCA:
    """A self-signed CA, its key only in memory; issued keys in a private temporary directory (cleanup())."""

    def __init__(self, name: str = "entsso lab CA") -> None:
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _utcnow()
        self.certificate = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        self.directory = tempfile.mkdtemp(prefix="entsso-lab-pki-")  # mode 0700
        self._serial = 0

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def ca_path(self) -> Path:
        """The CA certificate in the CA's own directory (gone at cleanup(); an inventory keeps a copy)."""
        path = Path(self.directory) / "ca.pem"
        if not path.exists():
            self.write_certificate(path)
        return path

    def write_certificate(self, path: str | os.PathLike[str]) -> Path:
        """Write the CA certificate (what an inventory's ca_trust_path names)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.pem)
        return path

    def issue(self, name: str, *, dns_names: list[str] | None = None, addresses: list[str] | None = None,
              not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None) -> IssuedCertificate:
        """A TLS server certificate for `name` (CN and DNS name) and `addresses` (IP names), valid from a day
        ago for 30 days unless given otherwise."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _utcnow()
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in [name, *(dns_names or [])]]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses or []]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _DAY).not_valid_after(not_after or now + 30 * _DAY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256()))
        self._serial += 1
        stem = Path(self.directory) / f"{self._serial:03d}-{name}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return IssuedCertificate(str(cert_path), str(key_path))

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
