"""The bridge's settings in one frozen record; the CLI fills it from flags (and the password's env var)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ingest.validate import DEFAULT_FUTURE_TOLERANCE_S, DEFAULT_MAX_AGE_S, DEFAULT_MAX_PAYLOAD
from riskwatch.kafka_access import KafkaAccess
from riskwatch.tls import ClientTLS
from riskwatch.wire.gateway_protocol import DEFAULT_MAX_READINGS


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """Everything `riskwatch bridge` needs; defaults suit the local stack."""

    registry: Path
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 8883  # MQTT over TLS: the bridge never connects in plaintext
    # Default: verify the broker against the system's trusted CAs.
    mqtt_tls: ClientTLS = field(default_factory=ClientTLS)
    mqtt_user: str = "riskwatch-bridge"
    mqtt_password: str = field(default="", repr=False)
    # Empty: the account name. Brokers that bind client ids to accounts (use_username_as_clientid, as
    # riskwatch's Mosquitto config does) use the account name whatever is sent, so the persistent session
    # belongs to the account: run each bridge instance on its own account.
    mqtt_client_id: str = ""
    share_group: str = "riskwatch"  # bridges with the same group split the gateways' messages
    topic_root: str = "rw"  # MQTT side: {root}/v1/{site}/{gateway}/{channel}
    session_expiry_s: int = 7 * 24 * 3600  # Mosquitto keeps queueing this long while the bridge is down
    receive_maximum: int = 1000  # unacknowledged QoS 1 messages in flight towards this bridge
    kafka: KafkaAccess | None = None  # where Kafka is and the bridge's account; None: MQTT-only tasks
    topic_prefix: str = "rw"  # Kafka side: {prefix}.telemetry, .gateway, .deadletter
    # kafka-python 3.0.12 has only gzip built in (lz4/zstd need extra packages) and runs it at level 9;
    # the batch codec's own zlib level 1 is ~6x cheaper and shrinks what the broker stores ~4x.
    compression: str = "none"
    codec_compression: bool = True
    linger_ms: int = 5
    producer_batch_bytes: int = 1024 * 1024
    delivery_timeout_s: float = 15.0  # after this an unacknowledged Kafka record goes to the spool
    batch_max_readings: int = 2000  # readings per rw.telemetry message, per site
    batch_linger_s: float = 0.02  # oldest reading waits at most this long for its batch to fill
    spool_dir: Path = Path(".riskwatch/spool/bridge")
    spool_max_bytes: int = 1024 * 1024 * 1024
    max_payload: int = DEFAULT_MAX_PAYLOAD
    future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S
    max_age_s: float = DEFAULT_MAX_AGE_S  # readings, events and statuses older than this are dead-lettered
    max_readings: int = DEFAULT_MAX_READINGS  # per telemetry message
    metrics_port: int = 9108  # 0: no metrics endpoint
    metrics_host: str = "127.0.0.1"
    shutdown_timeout_s: float = 30.0

    @property
    def client_id(self) -> str:
        """The MQTT client id sent: stable across restarts, so the persistent session is found again."""
        return self.mqtt_client_id or self.mqtt_user
