"""HTTPS for the local pool: a self-signed certificate for localhost made at start, or one the user brings.

Some clients (semantic-kernel) accept only ``https://`` endpoints. The certificate made here names
localhost, 127.0.0.1 and ::1 and is its own issuer, so a client trusts it through
``SSL_CERT_FILE=<path>`` (Python's ssl, requests' ``REQUESTS_CA_BUNDLE``, httpx).
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The line the CLI prints with the certificate's path, in the shape a shell can `export`.
CERT_LINE_PREFIX = "SSL_CERT_FILE="
# A development certificate lives as long as a pool is likely to run; it is made anew at each start.
CERT_VALID_DAYS = 30
CERT_COMMON_NAME = "localpool"
CERT_DNS_NAMES = ("localhost",)
CERT_IP_ADDRESSES = ("127.0.0.1", "::1")


class TlsSetupError(ValueError):
    """The certificate or key given for --tls cannot be used."""


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate and its private key (owner-only) into directory; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_COMMON_NAME)])
    now = datetime.now(UTC)
    alternative_names: list[x509.GeneralName] = [x509.DNSName(dns) for dns in CERT_DNS_NAMES]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in CERT_IP_ADDRESSES]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CERT_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        # A CA flag lets OpenSSL accept the certificate as its own trust anchor.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "localpool-cert.pem"
    key_path = directory / "localpool-key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    cert_path.chmod(0o644)
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) with the certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as error:
        raise TlsSetupError(
            f"Cannot use the certificate {cert_path} with the key {key_path} for --tls: {error}. Give a PEM "
            "certificate (--cert) and its PEM private key (--key), or neither to have one made."
        ) from error
    return context
