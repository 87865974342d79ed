"""A self-signed certificate for serving the API over HTTPS."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile


def make_self_signed(host: str = "127.0.0.1") -> tuple[str, str]:
    """(certificate PEM, key PEM) for ``host``, self-signed with the openssl CLI.

    Raises ``RuntimeError`` when openssl is missing or fails.
    """
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("openssl not found: install it, or run the simulated API without TLS")
    with tempfile.TemporaryDirectory(prefix="k3dtui-tls-") as tmp:
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        san = f"IP:{host},DNS:localhost" if host[0].isdigit() else f"DNS:{host},IP:127.0.0.1"
        proc = subprocess.run(
            [exe, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", cert, "-days", "3650", "-subj", "/CN=k3dtui-sim",
             "-addext", f"subjectAltName={san}"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"openssl failed: {proc.stderr.strip()}")
        with open(cert) as fc, open(key) as fk:
            return fc.read(), fk.read()



def server_context(host: str = "127.0.0.1") -> tuple[str, ssl.SSLContext]:
    """(certificate PEM, server SSL context) for serving HTTPS on ``host``, self-signed."""
    cert, key = make_self_signed(host)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="k3dtui-tls-") as tmp:
        cpath, kpath = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        with open(cpath, "w") as fc, open(kpath, "w") as fk:
            fc.write(cert)
            fk.write(key)
        ctx.load_cert_chain(cpath, kpath)
    return cert, ctx
