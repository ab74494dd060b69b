"""MQTT is TLS only: a gateway publishes only over TLS, verifying the stack's CA, with its password.

Clients here are paho (as riskwatch's gateways and bridge) and Debian's mosquitto_pub (no shared code).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from deploy.stack import StackInfo, add_gateways
from deploy.stack.certs import CertificateAuthority
from deploy.stack.mosquitto import Mosquitto, stack_ca
from deploy.stack.settings import StackSettings
from riskwatch.tls import ClientTLS
from simulators.sensors import SimulatorError
from simulators.simulated_gateway import Broker, GatewayClient
from tests.integration.simulators.mqtt_watch import Watch


def _gateway(stack: StackInfo) -> tuple[str, str, str]:
    site, gw = "TLS-S01", f"TLS-G{uuid.uuid4().hex[:6]}"
    return site, gw, add_gateways(stack, [(site, gw)])[gw]


def _publish_status(broker: Broker, site: str, gw: str) -> None:
    client = GatewayClient(site, gw, broker)
    client.connect(timeout=10)
    try:
        assert client.wait_acked(10)
    finally:
        client.close()


def test_a_gateway_with_the_ca_and_its_password_publishes(stack: StackInfo) -> None:
    site, gw, password = _gateway(stack)
    watch = Watch(stack, f"rw/v1/{site}/{gw}/#")
    try:
        _publish_status(Broker(stack.mqtt_host, stack.mqtt_port, {gw: password}, stack.client_tls), site, gw)
        assert watch.wait_for(lambda m: m[0] == f"rw/v1/{site}/{gw}/status" and b"online" in m[1])
    finally:
        watch.close()


def test_a_gateway_without_the_ca_cannot_connect(stack: StackInfo) -> None:
    site, gw, password = _gateway(stack)
    system_cas_only = ClientTLS()  # the stack's CA is in no system trust store
    with pytest.raises(ssl.SSLCertVerificationError):
        _publish_status(Broker(stack.mqtt_host, stack.mqtt_port, {gw: password}, system_cas_only), site, gw)


def test_a_gateway_trusting_another_ca_cannot_connect(stack: StackInfo, tmp_path: Path) -> None:
    site, gw, password = _gateway(stack)
    other = ClientTLS(CertificateAuthority(tmp_path / "other").ensure())
    with pytest.raises(ssl.SSLCertVerificationError):
        _publish_status(Broker(stack.mqtt_host, stack.mqtt_port, {gw: password}, other), site, gw)


def test_plaintext_mqtt_gets_no_connack(stack: StackInfo) -> None:
    """There is no plaintext listener: a plain MQTT CONNECT on the broker's port is never answered."""
    site, gw, password = _gateway(stack)
    answered = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=gw)
    client.username_pw_set(gw, password)
    client.on_connect = lambda *a: answered.set()
    try:
        client.connect(stack.mqtt_host, stack.mqtt_port, keepalive=10)
        client.loop_start()
        assert not answered.wait(5), "the broker answered a plaintext CONNECT"
        info = client.publish(f"rw/v1/{site}/{gw}/status", b"{}", qos=1)
        assert info.rc == mqtt.MQTT_ERR_NO_CONN
    except OSError:
        pass  # the broker closed the connection: refused too
    finally:
        client.loop_stop()


class MutualTLSMosquitto(Mosquitto):
    """The stack's Mosquitto configured as a deployment requiring client certificates would be."""

    require_certificate = True


@pytest.fixture(scope="module")
def mutual_tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutualTLSMosquitto]:
    from riskwatch.paths import cache_dir

    home = tmp_path_factory.mktemp("mtls")
    broker = MutualTLSMosquitto(home, cache_dir(), StackSettings.create())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_with_client_certificates_required_a_gateway_needs_its_own_certificate_from_the_ca(
    mutual_tls_broker: MutualTLSMosquitto, tmp_path: Path
) -> None:
    site, gw = "TLS-S01", f"TLS-G{uuid.uuid4().hex[:6]}"
    password = mutual_tls_broker.add_gateways([(site, gw)])[gw]
    ca = stack_ca(mutual_tls_broker.home)
    host, port = mutual_tls_broker.settings.host, mutual_tls_broker.settings.mqtt_port

    def broker_with(client: ClientTLS | None) -> Broker:
        certs = {gw: client} if client is not None else {}
        return Broker(host, port, {gw: password}, ClientTLS(ca.ca_cert), client_certs=certs)

    own = ca.client(gw)
    _publish_status(broker_with(ClientTLS(ca.ca_cert, own.cert, own.key)), site, gw)
    # No certificate, or one from another CA: the handshake fails, whatever the password.
    foreign = CertificateAuthority(tmp_path / "foreign").client(gw)
    for client in (None, ClientTLS(ca.ca_cert, foreign.cert, foreign.key)):
        with pytest.raises((ssl.SSLError, OSError, SimulatorError)):
            _publish_status(broker_with(client), site, gw)


def _mosquitto_pub(
    stack: StackInfo, gw: str, password: str, site: str, *tls: str
) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("mosquitto_pub")
    assert tool, "mosquitto_pub is not installed; ./dev setup installs it (Debian mosquitto-clients)"
    argv = [
        tool, "-h", stack.mqtt_host, "-p", str(stack.mqtt_port), *tls, "-u", gw, "-P", password,
        "-V", "mqttv5", "-q", "1", "-t", f"rw/v1/{site}/{gw}/status", "-m", '{"gw":"x","state":"online"}',
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_mosquitto_pub_needs_the_ca_and_the_password(stack: StackInfo) -> None:
    site, gw, password = _gateway(stack)
    assert _mosquitto_pub(stack, gw, password, site).returncode != 0  # plaintext
    assert _mosquitto_pub(stack, gw, "wrong", site, "--cafile", str(stack.cafile)).returncode != 0
    ok = _mosquitto_pub(stack, gw, password, site, "--cafile", str(stack.cafile))
    assert ok.returncode == 0, ok.stderr
