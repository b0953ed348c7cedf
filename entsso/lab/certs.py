"""The lab's certificate authority: a CA the lab writes at its start, and the server certificates it issues
(the lab's SQL Server presents one in its TLS-inside-TDS handshake). Clients trust the lab's endpoints by
trusting ca.pem, as an admin box trusts an estate's enterprise CA.

The CA's key stays in memory; only the CA certificate, and each server's certificate and key (the lab
process reads them back to serve TLS), are written. ECDSA P-256 keys: cheap to make for every lab.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class IssuedCertificate:
    cert_path: Path  # PEM: the server certificate
    key_path: Path  # PEM: its private key (mode 0600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "entsso-upgrade lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class LabCA:
    """A self-signed CA; `ca_path` is its certificate (PEM), the file a client trusts."""

    def __init__(self, directory: Path | str, common_name: str = "entsso-upgrade lab CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = _dt.datetime.now(_dt.timezone.utc)
        self._cert = (x509.CertificateBuilder()
                      .subject_name(_name(common_name)).issuer_name(_name(common_name))
                      .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                      .not_valid_before(now - _dt.timedelta(hours=1))
                      .not_valid_after(now + _dt.timedelta(days=30))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                   content_commitment=False, key_encipherment=False,
                                                   data_encipherment=False, key_agreement=False,
                                                   encipher_only=False, decipher_only=False), critical=True)
                      .sign(self._key, hashes.SHA256()))
        self.ca_path = self.directory / "ca.pem"
        self.ca_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, names: list[str], *, valid_days: float = 30,
              not_before: _dt.datetime | None = None) -> IssuedCertificate:
        """A server certificate for `names` (DNS names or IP addresses, the first is its CN)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        start = not_before or _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=1)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(names[0])).issuer_name(self._cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + _dt.timedelta(days=valid_days))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))
        cert_path = self.directory / f"{stem}.pem"
        key_path = self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return IssuedCertificate(cert_path, key_path)
