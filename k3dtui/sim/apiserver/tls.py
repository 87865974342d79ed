"""The simulated API server's certificates, made in-process (no shell tool): a CA of its
own and a serving certificate it signs, as k3s makes ``server-ca`` and the serving
certificate at first start. The kubeconfig trusts the CA (``certificate-authority-data``).

Uses the ``cryptography`` package (a dependency); there is no plain-HTTP fallback: kubectl
sends the bearer token only over TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass

VALID_DAYS = 3650


@dataclass(frozen=True)
class Certificates:
    ca_pem: str  # what clients trust
    cert_pem: str  # the serving certificate, signed by the CA
    key_pem: str  # its private key (never written outside a private temporary folder)


def make_certificates(host: str = "127.0.0.1", *, now: datetime.datetime | None = None) -> Certificates:
    """A fresh P-256 CA and a serving certificate for ``host`` (an IP or a DNS name) and
    ``localhost``/``127.0.0.1``, signed by that CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k3dtui-sim-server-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        ip = ipaddress.ip_address(host)
        if ip != ipaddress.ip_address("127.0.0.1"):
            names.append(x509.IPAddress(ip))
    except ValueError:
        names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k3dtui-sim-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Certificates(
        ca_pem=ca.public_bytes(pem).decode(),
        cert_pem=cert.public_bytes(pem).decode(),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
    )


def server_context(host: str = "127.0.0.1") -> tuple[str, ssl.SSLContext]:
    """(the CA's PEM for clients to trust, a server SSL context for ``host``)."""
    certs = make_certificates(host)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # ssl loads a chain only from files: a private folder, removed at once
    with tempfile.TemporaryDirectory(prefix="k3dtui-tls-") as tmp:
        cpath, kpath = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        fd = os.open(kpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fk:
            fk.write(certs.key_pem)
        with open(cpath, "w") as fc:
            fc.write(certs.cert_pem + certs.ca_pem)
        ctx.load_cert_chain(cpath, kpath)
    return certs.ca_pem, ctx
