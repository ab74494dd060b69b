"""deploy.stack.certs: a CA whose server certificates pass real TLS handshakes, private keys 0600, reuse."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from deploy.stack.certs import CertificateAuthority, IssuedCertificate, load_certificate
from riskwatch.errors import StackError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _handshake(
    server: IssuedCertificate, cafile: Path, server_hostname: str, client: IssuedCertificate | None = None
) -> str:
    """One real TLS handshake on loopback; returns the server's view of the client's common name ('' if none)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server.cert, server.key)
    if client is not None:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(server.ca)
    client_ctx = ssl.create_default_context(cafile=str(cafile))
    if client is not None:
        client_ctx.load_cert_chain(client.cert, client.key)
    seen: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    peer = tls.getpeercert() or {}
                    seen["cn"] = dict(x[0] for x in peer.get("subject", ())).get("commonName", "")
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                seen["error"] = exc

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                assert tls.recv(2) == b"ok"
        finally:
            thread.join(10)
    return str(seen.get("cn", ""))


def test_server_certificate_verifies_for_local_names_and_given_hosts(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    issued = ca.server("mosquitto", ["broker.example.org", "10.1.2.3"])
    for name in ("localhost", "127.0.0.1", "::1", "broker.example.org", "10.1.2.3"):
        _handshake(issued, issued.ca, name)
    # A name the certificate was not issued for fails hostname verification.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(issued, issued.ca, "evil.example.org")


def test_a_client_with_another_ca_refuses_the_server(tmp_path: Path) -> None:
    issued = CertificateAuthority(tmp_path / "a").server("mosquitto")
    other_ca = CertificateAuthority(tmp_path / "b").ensure()
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(issued, other_ca, "localhost")


def test_client_certificate_is_accepted_by_a_server_requiring_one(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    server, client = ca.server("mosquitto"), ca.client("gw-001")
    assert _handshake(server, server.ca, "localhost", client=client) == "gw-001"


def test_private_keys_are_0600_and_certificates_public(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    issued = ca.server("kafka")
    assert _mode(ca.ca_key) == 0o600 and _mode(issued.key) == 0o600
    assert _mode(ca.ca_cert) == 0o644 and _mode(issued.cert) == 0o644
    assert b"BEGIN PRIVATE KEY" in issued.key.read_bytes()  # PKCS#8, as Kafka's PEM keystore wants
    chain = issued.cert.read_bytes()
    assert chain.count(b"BEGIN CERTIFICATE") == 2  # leaf, then CA
    assert not list(issued.cert.parent.glob(".*.tmp"))


def test_reused_across_restarts_and_reissued_when_names_change(tmp_path: Path) -> None:
    first = CertificateAuthority(tmp_path / "certs").server("mosquitto", ["gw.example.org"])
    ca_before, cert_before, key_before = (
        (tmp_path / "certs" / "ca.pem").read_bytes(),
        first.cert.read_bytes(),
        first.key.read_bytes(),
    )
    # A new object over the same folder (a stack restart) keeps everything.
    again = CertificateAuthority(tmp_path / "certs").server("mosquitto", ["gw.example.org"])
    assert again.cert.read_bytes() == cert_before and again.key.read_bytes() == key_before
    # Other names: a new certificate from the same CA.
    changed = CertificateAuthority(tmp_path / "certs").server("mosquitto", ["other.example.org"])
    assert changed.cert.read_bytes() != cert_before
    assert (tmp_path / "certs" / "ca.pem").read_bytes() == ca_before
    sans = load_certificate(changed.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "other.example.org" in sans.value.get_values_for_type(x509.DNSName)
    assert "gw.example.org" not in sans.value.get_values_for_type(x509.DNSName)


def test_a_certificate_from_a_replaced_ca_is_reissued(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    old = ca.server("mosquitto").cert.read_bytes()
    ca.ca_key.unlink()  # the key is offline (or lost): the CA is never replaced silently
    with pytest.raises(StackError, match="put the CA's key back"):
        ca.server("mosquitto")
    ca.ca_cert.unlink()  # the CA is given up on purpose: a new one, and the certificate must follow it
    issued = ca.server("mosquitto")
    assert issued.cert.read_bytes() != old
    _handshake(issued, issued.ca, "localhost")


def test_spki_pin_is_the_leaf_public_key_hash(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    issued = ca.server("alerting")
    pin = issued.spki_sha256()
    assert len(pin) == 44 and pin.endswith("=")
    assert pin != ca.server("board").spki_sha256()


@pytest.mark.parametrize("name", ["", "ca", "../x", "a/b", "-x"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(StackError, match="certificate name"):
        CertificateAuthority(tmp_path).server(name)


def test_stack_accounts_writes_a_deployments_certificates(tmp_path: Path) -> None:
    from deploy.stack.cli import EXAMPLE_REGISTRY
    from riskwatch.cli import main

    out = tmp_path / "accounts"
    argv = ["stack", "accounts", "--registry", str(EXAMPLE_REGISTRY), "--out", str(out)]
    tls = ["--tls-host", "broker.example.org", "--https-host", "duty.example.org", "--client-certs"]
    assert main([*argv, *tls]) == 0
    certs = out / "certs"
    broker = IssuedCertificate(certs / "mosquitto.pem", certs / "mosquitto.key", certs / "ca.pem")
    _handshake(broker, broker.ca, "broker.example.org")
    alerting = IssuedCertificate(certs / "alerting.pem", certs / "alerting.key", certs / "ca.pem")
    _handshake(alerting, alerting.ca, "duty.example.org")
    gateway = next(p for p in certs.glob("*.pem") if p.stem not in ("ca", "mosquitto", "alerting"))
    assert (
        _handshake(
            broker,
            broker.ca,
            "localhost",
            client=IssuedCertificate(gateway, gateway.with_suffix(".key"), broker.ca),
        )
        == gateway.stem
    )
    assert all(_mode(k) == 0o600 for k in certs.glob("*.key"))
    # Run again (new passwords): the CA and the still-valid certificates are kept.
    before = (certs / "ca.pem").read_bytes(), (certs / "mosquitto.pem").read_bytes()
    assert main([*argv, *tls]) == 0
    assert ((certs / "ca.pem").read_bytes(), (certs / "mosquitto.pem").read_bytes()) == before
