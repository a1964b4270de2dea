"""A small PKI for TLS tests, made with the openssl command: a CA, a server certificate it
signed (for ``localhost`` and ``127.0.0.1``, or the names given) and a client certificate
it signed (for mTLS)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclass(frozen=True)
class PKI:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _signed(directory: Path, ca: Path, ca_key: Path, name: str, extensions: str) -> Path:
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    ext = directory / f"{name}.ext"
    ext.write_text(extensions + "\n")
    _openssl("req", *EC, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return cert


def make_pki(directory: Path, names: str = "DNS:localhost,IP:127.0.0.1") -> PKI:
    """A CA in ``directory``; a server certificate for ``names`` and a client one, signed by
    it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", *EC, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=llm-router test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign",
    )  # fmt: skip
    server = _signed(
        directory, ca, ca_key, "server", f"subjectAltName={names}\nextendedKeyUsage=serverAuth"
    )
    client = _signed(directory, ca, ca_key, "client", "extendedKeyUsage=clientAuth")
    return PKI(
        ca=ca,
        server_cert=server,
        server_key=directory / "server.key",
        client_cert=client,
        client_key=directory / "client.key",
    )
