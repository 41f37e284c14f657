"""Database TLS: what sslmode covidlake asks for, checked against a real libpq client talking
to a server on 127.0.0.1 that refuses TLS (as a plaintext impostor would); every test
marked ``attack`` is a row of docs/security.md."""

from __future__ import annotations

import json
import socket
import struct
import threading

import boto3
import pytest
from moto import mock_aws

from covidlake.errors import SourceError
from covidlake.raw.postgres import connect, resolve_db_url, with_sslmode
from covidlake.settings import Settings

attack = pytest.mark.attack
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


class PlaintextServer:
    """Answers an SSLRequest with 'N' (no TLS here) and records what each client sent first."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.first_packets: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            first = conn.recv(8)
            self.first_packets.append(first)
            if first == SSL_REQUEST:
                conn.sendall(b"N")
                self.first_packets.append(conn.recv(4096))  # what follows a refusal: b"" if the client hung up

    def close(self):
        self.sock.close()
        self.thread.join(timeout=10)


@attack(
    8,
    "a database server that refuses TLS (plaintext or an impostor), URL without sslmode",
    "SourceError: sslmode=require refuses it; no startup packet (user name) is sent",
)
def test_require_refuses_a_server_without_tls(settings):
    server = PlaintextServer()
    try:
        with pytest.raises(SourceError, match="add sslmode=disable"):
            connect(f"postgresql://covid:secret@127.0.0.1:{server.port}/covid_data", settings)
    finally:
        server.close()
    assert server.first_packets == [SSL_REQUEST, b""]


def test_sslmode_disable_in_the_url_is_kept(settings):
    """The negative control: a URL that names its mode gets it (the client skips TLS and
    sends its startup packet), so the refusal above comes from the default."""
    server = PlaintextServer()
    try:
        with pytest.raises(SourceError):
            connect(f"postgresql://covid:secret@127.0.0.1:{server.port}/covid_data?sslmode=disable", settings)
    finally:
        server.close()
    assert server.first_packets and server.first_packets[0] != SSL_REQUEST
    assert b"covid" in server.first_packets[0] or len(server.first_packets[0]) == 8


@attack(
    8,
    "the AWS database URL (built from the Secrets Manager secret)",
    "sslmode=verify-full with the RDS CA bundle shipped in the layer",
)
def test_url_from_the_secret_verifies_the_server(monkeypatch):
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="db", SecretString=json.dumps({"username": "covid", "password": "p@ss", "host": "db.example"})
        )["ARN"]
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        url = resolve_db_url(Settings(db_secret_arn=arn, db_ca_bundle="/opt/rds-ca/global-bundle.pem"))
    assert url.endswith(
        "@db.example:5432/covid_data?sslmode=verify-full&sslrootcert=%2Fopt%2Frds-ca%2Fglobal-bundle.pem"
    )


@attack(
    8,
    "verify-full with the CA bundle missing from the layer",
    "SourceError naming the bundle, before any connection",
)
def test_missing_ca_bundle_fails_clearly(settings, tmp_path):
    url = with_sslmode("postgresql://u:p@127.0.0.1:1/db", "verify-full", sslrootcert=str(tmp_path / "none.pem"))
    with pytest.raises(SourceError, match=r"CA bundle .*none.pem not found"):
        connect(url, settings)


def test_local_embedded_server_url_says_disable(pg_url):
    assert "sslmode=disable" in pg_url
