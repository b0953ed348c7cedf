"""Why TLS with a host's WinRM HTTPS listener failed, in one message that names the cause and the fix: an
untrusted issuer, a certificate for another name, an expired or not yet valid one, or no TLS at all (the
HTTP port). The presented certificate is read once more, unvalidated, only to name its names, issuer and dates.
"""
from __future__ import annotations

import ssl
from typing import Any

from entsso.remote.errors import CertificateRejected


def _in_chain(exc: BaseException, types: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of `types` in requests' chain (urllib3 wraps the ssl error in MaxRetryError)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        e = pending.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, types):
            return e
        pending += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return None


# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) as ssl.SSLCertVerificationError.verify_code carries them
_UNTRUSTED = {2, 18, 19, 20, 21}  # issuer unknown, self-signed (leaf or in chain), no local issuer, chain of one
_EXPIRED, _NOT_YET_VALID = 10, 9
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def _peer_certificate(address: str, port: int, timeout: float) -> Any:
    """The certificate the host presents, read without validating it (for the error message only), or None."""
    from cryptography import x509

    try:
        pem = ssl.get_server_certificate((address, port), timeout=timeout)
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except Exception:  # noqa: BLE001 - the message is written without the details then
        return None


def _names_of(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [str(n) for n in san.get_values_for_type(x509.DNSName)] + \
               [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except Exception:  # noqa: BLE001 - no SAN: the subject's CN is what an old certificate names
        return [a.value for a in cert.subject if a.oid.dotted_string == "2.5.4.3"]


def _issuer_of(cert: Any) -> str:
    return cert.issuer.rfc4514_string() or "an unnamed issuer"


def certificate_problem(host: str, operation: str, endpoint: str, address: str, port: int, ca_trust_path: str | None,
                        exc: BaseException, timeout: float = 5.0) -> CertificateRejected | None:
    """The certificate (or TLS) failure behind `exc`, as one message naming the cause and the fix; None if
    `exc` is not a TLS failure."""
    err = _in_chain(exc, (ssl.SSLCertVerificationError, ssl.SSLError))
    if err is None:
        return None
    trust = f"winrm.ca_trust_path ({ca_trust_path})" if ca_trust_path else "this machine's CA store"
    code = getattr(err, "verify_code", None)
    if not isinstance(err, ssl.SSLCertVerificationError) or code is None:
        reason = getattr(err, "reason", None) or str(err)
        return CertificateRejected(host, operation, (
            f"TLS with {endpoint} failed ({reason}); nothing was sent to the host. Check that port {port} is "
            "the host's WinRM HTTPS listener (5986 by default; winrm enumerate winrm/config/listener), not its "
            "HTTP one (5985), or set `https: false` in the inventory for an HTTP listener."), "tls")
    cert = _peer_certificate(address, port, timeout)
    if code in _NAME_MISMATCH:
        names = ", ".join(_names_of(cert)) if cert is not None else "other names"
        return CertificateRejected(host, operation, (
            f"the HTTPS certificate of {endpoint} is issued for {names}, not for {address}; nothing was sent to "
            f"the host. Give {host} an address in the inventory that the certificate names (its DNS name, not "
            "an IP address), or bind a certificate that names it to the host's HTTPS listener."), "name_mismatch")
    if code in (_EXPIRED, _NOT_YET_VALID):
        if code == _EXPIRED:
            when = f" on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC" if cert is not None else ""
            return CertificateRejected(host, operation, (
                f"the HTTPS certificate of {endpoint} expired{when}; nothing was sent to the host. Renew {host}'s "
                "WinRM certificate and bind the new one to its HTTPS listener (winrm set "
                "winrm/config/Listener?Address=*+Transport=HTTPS '@{CertificateThumbprint=\"<thumbprint>\"}')."),
                "expired")
        when = f" before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC" if cert is not None else " yet"
        return CertificateRejected(host, operation, (
            f"the HTTPS certificate of {endpoint} is not valid{when}; nothing was sent to the host. Check this "
            f"machine's clock and {host}'s (w32tm /query /status)."), "not_yet_valid")
    if code in _UNTRUSTED:
        issuer = _issuer_of(cert) if cert is not None else "an unknown CA"
        return CertificateRejected(host, operation, (
            f"the HTTPS certificate of {endpoint} is issued by {issuer}, which {trust} does not trust; nothing "
            "was sent to the host. Set winrm.ca_trust_path in the inventory to the PEM file of the CA that issued "
            "the hosts' WinRM certificates (python -m entsso doctor checks that file)."), "untrusted")
    return CertificateRejected(host, operation, (
        f"the HTTPS certificate of {endpoint} was refused ({err.verify_message}); nothing was sent to the "
        f"host. Check the certificate bound to {host}'s HTTPS listener against {trust}."), "untrusted")
