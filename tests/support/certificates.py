"""Certificates made at test time (trustme): a CA, and a server certificate for 127.0.0.1 and localhost."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

from transports.config import TlsFiles


@dataclass
class Certificate:
    """A server certificate for 127.0.0.1 and localhost, its files, and the CA that signed it."""

    ca: trustme.CA
    files: TlsFiles
    der: bytes
    """The certificate itself (DER), to tell which one a server presented."""

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def make_certificate(folder: Path, ca: trustme.CA | None = None) -> Certificate:
    ca = ca or trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    folder.mkdir(parents=True, exist_ok=True)
    leaf.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(folder / "key.pem"))
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    return Certificate(ca, TlsFiles(folder / "cert.pem", folder / "key.pem"), der)
