"""The local stack's ports, versions and credentials, chosen once and kept in `home/stack.json`.

Ports are picked free on loopback at first start and reused afterwards, so clients configured once keep
working across restarts. Credentials are generated and stored with mode 0600 (a local dev stack; real
deployments bring their own secrets through the environment).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from deploy.stack.process import LOOPBACK, free_port
from riskwatch.secrets import write_private

KAFKA_VERSION = "3.9.1"
MOSQUITTO_MIN_VERSION = "2.0"
INFLUXDB_VERSION = "1.8.10"
INFLUX_DATABASE = "riskwatch"
INFLUX_RETENTION = "autogen"
BRIDGE_USER = "riskwatch-bridge"
# Readiness probes log in with an account of their own that may not read or write anything: with
# client ids bound to accounts, a probe logged in as a bridge would take over that bridge's session.
PROBE_USER = "riskwatch-probe"
INFLUX_ADMIN = "riskwatch-admin"


def _secret() -> str:
    return secrets.token_urlsafe(18)


def _kafka_cluster_id() -> str:
    """Kafka's Uuid text form: URL-safe base64 of 16 bytes without padding.

    Like Kafka's own Uuid.randomUuid(), never one starting with '-': the storage tool would read it as
    an option (`format -t -xyz` fails).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class StackSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = LOOPBACK
    kafka_port: int
    kafka_controller_port: int
    kafka_cluster_id: str
    kafka_partitions: int = 6
    kafka_heap_mb: int = 768
    mqtt_port: int
    bridge_password: str
    influx_port: int
    influx_rpc_port: int
    influx_password: str

    @classmethod
    def create(cls, **overrides: int | None) -> StackSettings:
        chosen: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        ports: dict[str, Any] = {
            name: chosen.pop(name, None) or free_port()
            for name in ("kafka_port", "kafka_controller_port", "mqtt_port", "influx_port", "influx_rpc_port")
        }
        return cls(
            **ports,
            **chosen,
            kafka_cluster_id=_kafka_cluster_id(),
            bridge_password=_secret(),
            influx_password=_secret(),
        )

    @classmethod
    def load(cls, path: Path) -> StackSettings | None:
        if not path.exists():
            return None
        return cls.model_validate_json(path.read_text())

    def save(self, path: Path) -> None:
        write_private(path, self.model_dump_json(indent=2))
