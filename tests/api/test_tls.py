"""TLS: the request API served by uvicorn with a certificate and key (a self-signed certificate
made here with `cryptography`) answers HTTPS to a client that trusts it, and nothing in clear."""

from __future__ import annotations

import ipaddress
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fixtures.api import free_port

from .conftest import auth


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "api.crt", tmp_path / "api.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def https_server(app, tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ssl_certfile=str(cert_file),
                                           ssl_keyfile=str(key_file), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"127.0.0.1:{port}", cert_file
    server.should_exit = True
    thread.join(10)


def test_https_with_the_given_certificate(https_server):
    address, cert_file = https_server
    answer = httpx.get(f"https://{address}/v1/whoami", headers=auth("byt-requester"), verify=str(cert_file))
    assert answer.status_code == 200 and answer.json()["user"] == "nguyen.van.a"
    with pytest.raises(httpx.ConnectError):  # an unknown certificate is not trusted by default
        httpx.get(f"https://{address}/healthz")
    with pytest.raises(httpx.HTTPError):  # no clear-text HTTP on the TLS port
        httpx.get(f"http://{address}/healthz", timeout=5)
