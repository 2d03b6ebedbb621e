"""TLS with certificates the test makes (openssl CLI): an HTTPS listener that requires client
certificates, and a gateway calling it as an https:// upstream with its own client certificate."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import Stack, http_json


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(out: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    ca_key, ca = out / "ca.key", out / "ca.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=failwell test CA",
    )  # fmt: skip
    paths = {"ca": ca}
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        key, csr, cert, extfile = (out / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
        extfile.write_text(ext + "\n")
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN=failwell {name}",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extfile),
        )  # fmt: skip
        paths[name], paths[f"{name}_key"] = cert, key
    return paths


def test_https_listener_with_client_certs_as_an_upstream(stack: Stack, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    inner = stack.config(
        backends={},
        routes={
            "recommend": {
                "input": {"user_id": "str"},
                "tiers": [{"name": "static", "value": [1, 2, 3]}],
            }
        },
        tls={
            "cert": str(pki["server"]),
            "key": str(pki["server_key"]),
            "client_ca": str(pki["ca"]),
        },
    )
    port = int(inner["gateway"]["listen"].rsplit(":", 1)[1])
    https = f"https://127.0.0.1:{port}"
    proc = stack.gateway_process(inner, "inner", f"{https}/health/live", pki)

    # Without a client certificate the handshake fails; with one, the listener answers.
    bare = ssl.create_default_context(cafile=str(pki["ca"]))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionResetError)):
        urllib.request.urlopen(f"{https}/health/live", context=bare, timeout=5).read()
    assert proc.alive()

    outer = stack.config(
        backends={
            "inner": {
                "protocol": "v2",
                "model": "recommend",
                "timeout": "2s",
                "replicas": [{"url": https}],
                "tls": {
                    "ca": str(pki["ca"]),
                    "cert": str(pki["client"]),
                    "key": str(pki["client_key"]),
                },
            }
        },
        routes={
            "recommend": {
                "input": {"user_id": "str"},
                "deadline": "3s",
                "tiers": [
                    {"name": "primary", "backend": "inner"},
                    {"name": "static", "value": "fallback"},
                ],
            }
        },
    )
    gw = stack.gateway(outer, "outer")
    answer = http_json(gw.predict_url("recommend"), {"inputs": {"user_id": "u1"}})
    assert answer["tier"] == "primary", json.dumps(answer)
    assert answer["outputs"] == {"output": [1, 2, 3]}
