"""A self-signed certificate for 127.0.0.1, for loopback stand-ins that must speak TLS: azure-core refuses to
send a bearer token over plain HTTP ("Bearer token authentication is not permitted for non-TLS protected
(non-https) URLs", azure-core ``_authentication.py``), so azure-ai-ml's component operations and a storage
client holding a token need https. Clients trust it through REQUESTS_CA_BUNDLE, which requests (azure-core's
transport) reads."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def self_signed(folder: Path, dns_names: tuple[str, ...] = ()) -> Certificate:
    """For 127.0.0.1, or for ``dns_names`` (a stand-in reached through a proxy under the service's own name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else "127.0.0.1")])
    alternative = [x509.DNSName(n) for n in dns_names] or [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    files = Certificate(folder / "cert.pem", folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files
