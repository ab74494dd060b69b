"""The local stack: Kafka, Mosquitto and InfluxDB under one home folder, started and stopped together."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from deploy.stack.certs import IssuedCertificate
from deploy.stack.influxdb import InfluxDB
from deploy.stack.kafka import Kafka, grant
from deploy.stack.mosquitto import Mosquitto, stack_ca
from deploy.stack.service import Service, ServiceStatus
from deploy.stack.settings import BRIDGE_USER, StackSettings
from riskwatch.errors import StackError
from riskwatch.kafka_access import KafkaAccess
from riskwatch.paths import cache_dir
from riskwatch.tls import ClientTLS
from riskwatch.topics import Topics

SETTINGS_FILE = "stack.json"
HTTPS_CERT = "https"


@dataclass(frozen=True, slots=True)
class StackInfo:
    """How clients reach the running stack."""

    home: Path
    kafka_bootstrap: str
    mqtt_host: str
    mqtt_port: int
    bridge_user: str
    bridge_password: str
    influx_url: str
    influx_token: str
    influx_org: str
    influx_bucket: str
    cafile: Path  # the stack's CA: every certificate of the stack verifies against it
    # A certificate for riskwatch's own HTTPS servers on this machine (alerting: the API and board).
    https_certfile: Path
    https_keyfile: Path
    kafka_passwords: dict[str, str]  # by component (riskwatch/kafka_accounts.py)
    kafka_cafile: str = ""  # the CA the client listener's certificate is verified against; empty: no TLS

    @property
    def client_tls(self) -> ClientTLS:
        """How a client verifies the stack's TLS servers (Mosquitto, alerting's HTTPS): its CA."""
        return ClientTLS(self.cafile)

    def kafka(self, component: str) -> KafkaAccess:
        """How `component` logs in to the stack's Kafka (riskwatch/kafka_access.py)."""
        return KafkaAccess.of(component, self.kafka_bootstrap, self.kafka_passwords, self.kafka_cafile)


class Stack:
    """The three services under `home` (default `./.riskwatch/stack`), in start order."""

    def __init__(self, home: Path, cache: Path | None = None, settings: StackSettings | None = None) -> None:
        self.home = home
        self.cache = cache or cache_dir()
        self.settings = settings or StackSettings.load(home / SETTINGS_FILE)
        self._services: list[Service] | None = None

    @property
    def configured(self) -> bool:
        return self.settings is not None

    def services(self) -> list[Service]:
        if self.settings is None:
            raise StackError(f"no stack configured under {self.home}; run 'riskwatch stack up' first")
        if self._services is None:
            args = (self.home, self.cache, self.settings)
            self._services = [Kafka(*args), Mosquitto(*args), InfluxDB(*args)]
        return self._services

    def service(self, name: str) -> Service:
        for service in self.services():
            if service.name == name:
                return service
        raise StackError(f"unknown service {name!r}; expected kafka, mosquitto or influxdb")

    def provision(self) -> None:
        for service in self.services():
            service.provision()

    def up(self, topics: Iterable[Topics] = (Topics(),)) -> list[tuple[str, bool]]:
        """Start every service not yet running and create the standard topics; idempotent."""
        assert self.settings is not None
        self.settings.save(self.home / SETTINGS_FILE)
        started = []
        try:
            for service in self.services():
                started.append((service.name, service.start()))
        except StackError:
            self.down()
            raise
        for prefix in topics:
            ensure_topics(self.info(), prefix, self.settings.kafka_partitions)
        return started

    def down(self) -> list[tuple[str, bool]]:
        """Stop in reverse order, by recorded pids only."""
        if not self.configured:
            return []
        return [(service.name, service.stop()) for service in reversed(self.services())]

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self.services()]

    def stop_service(self, name: str) -> None:
        self.service(name).stop()

    def start_service(self, name: str) -> None:
        self.service(name).start()

    def info(self) -> StackInfo:
        s = self.settings
        if s is None:
            raise StackError(f"no stack configured under {self.home}; run 'riskwatch stack up' first")
        influx = self.service("influxdb")
        assert isinstance(influx, InfluxDB)
        https = self.https_certificate()
        return StackInfo(
            home=self.home,
            kafka_bootstrap=f"{s.host}:{s.kafka_port}",
            mqtt_host=s.host,
            mqtt_port=s.mqtt_port,
            bridge_user=BRIDGE_USER,
            bridge_password=s.bridge_password,
            influx_url=influx.url,
            influx_token=influx.token,
            influx_org="-",
            influx_bucket=influx.bucket,
            cafile=https.ca,
            https_certfile=https.cert,
            https_keyfile=https.key,
            kafka_passwords=dict(s.kafka_passwords),
            kafka_cafile=str(https.ca),
        )

    def _mosquitto(self) -> Mosquitto:
        mosquitto = self.service("mosquitto")
        assert isinstance(mosquitto, Mosquitto)
        return mosquitto

    def add_gateways(self, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
        return self._mosquitto().add_gateways(pairs)

    def add_bridges(self, names: Iterable[str]) -> dict[str, str]:
        return self._mosquitto().add_bridges(names)

    def gateway_passwords(self) -> dict[str, str]:
        return {gw: entry["password"] for gw, entry in self._mosquitto().gateways().items()}

    def https_certificate(self) -> IssuedCertificate:
        """The certificate riskwatch's HTTPS servers use with the stack (localhost and loopback names)."""
        return stack_ca(self.home).server(HTTPS_CERT)

    def gateway_certificate(self, gateway: str) -> IssuedCertificate:
        """A client certificate for one gateway from the stack's CA (optional mutual TLS)."""
        return stack_ca(self.home).client(gateway)


def add_gateways(info: StackInfo, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """MQTT accounts for gateways (username = gateway id) limited to `rw/v1/{site}/{gateway}/#`."""
    return Stack(info.home).add_gateways(pairs)


def add_bridge_accounts(info: StackInfo, names: Iterable[str]) -> dict[str, str]:
    """MQTT accounts that read every gateway's topics, one per bridge instance (or watching tool):
    client ids are bound to accounts, so two clients on one account take each other's session."""
    return Stack(info.home).add_bridges(names)


def ensure_topics(
    info: StackInfo,
    topics: Topics,
    partitions: int,
    extra: Iterable[str] = (),
    replication: int = 1,
    configs: dict[str, str] | None = None,
) -> None:
    """Create the topics under `topics.prefix` (and `extra` ones) that do not exist yet (a single node:
    replication factor 1; a cluster passes its own and `min.insync.replicas` in `configs`), and let each
    component account use them as riskwatch/kafka_accounts.py says."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin_access = info.kafka("admin")
    grant(admin_access, topics)
    admin = KafkaAdminClient(**admin_access.kafka_python(), client_id="riskwatch-stack")
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(n, partitions, replication, topic_configs=dict(configs or {}))
            for n in (*topics.all(), *extra)
            if n not in existing
        ]
        if missing:
            # Created concurrently by another client is what we wanted anyway.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()
