"""The bridge's options, declared once: `riskwatch bridge --help`, the RISKWATCH_BRIDGE_* variables and the
table in docs/gateway-protocol.md all come from these fields (riskwatch.options)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from ingest.validate import DEFAULT_FUTURE_TOLERANCE_S, DEFAULT_MAX_AGE_S, DEFAULT_MAX_PAYLOAD
from riskwatch.clock import ClockOption, clock_option
from riskwatch.kafka_access import KafkaOption, kafka_option_help
from riskwatch.options import LogLevel, Options, Port, option
from riskwatch.tls import ClientTLS
from riskwatch.wire.batch import DEFAULT_BODY_CODEC, BodyCodec
from riskwatch.wire.gateway_protocol import DEFAULT_MAX_READINGS


class BridgeSettings(Options):
    """Everything `riskwatch bridge` needs; defaults suit the local stack."""

    ENV_PREFIX: ClassVar[str] = "RISKWATCH_BRIDGE"
    KAFKA_ACCOUNT: ClassVar[str] = "bridge"

    registry: Path = option(help="site registry file (YAML, or JSON for big generated ones)")
    mqtt_host: str = option("127.0.0.1", "MQTT broker address")
    # MQTT over TLS: the bridge never connects in plaintext.
    mqtt_port: Port = option(8883, "MQTT broker port (TLS)")
    mqtt_cafile: Path | None = option(
        None, "CA certificate(s) that signed the broker's certificate; the host name is always checked",
        shown_default="the system's trusted CAs",
    )  # fmt: skip
    mqtt_certfile: Path | None = option(None, "client certificate to present to the broker (mutual TLS)")
    mqtt_keyfile: Path | None = option(None, "private key of --mqtt-certfile")
    mqtt_user: str = option("riskwatch-bridge", "MQTT account")
    mqtt_password_env: str = option(
        "RISKWATCH_MQTT_PASSWORD", "environment variable holding the MQTT password", metavar="VAR"
    )
    # Brokers that bind client ids to accounts (use_username_as_clientid, as riskwatch's Mosquitto config
    # does) use the account name whatever is sent, so the persistent session belongs to the account.
    mqtt_client_id: str = option(
        "", "MQTT client id; riskwatch's Mosquitto binds client ids to accounts and ignores it, so give each "
        "bridge its own account", old=["--client-id"], shown_default="the --mqtt-user account name",
    )  # fmt: skip
    group: str = option(
        "riskwatch", "MQTT shared-subscription group: bridges in one group split the gateways' messages",
        old=["--share-group"],
    )  # fmt: skip
    topic_root: str = option("rw", "MQTT topic root: {root}/v1/{site}/{gateway}/{channel}")
    session_expiry_s: int = option(
        7 * 24 * 3600, "how long the broker keeps queueing for a stopped bridge (7 days)", ge=0
    )
    receive_maximum: int = option(1000, "unacknowledged QoS 1 messages in flight towards this bridge", gt=0)
    # None: MQTT-only tasks (`--retire`); the command requires it otherwise.
    kafka: KafkaOption | None = option(None, kafka_option_help("bridge"), metavar="HOST:PORT")
    topic_prefix: str = option("rw", "Kafka topics {prefix}.telemetry, .gateway, .deadletter")
    # kafka-python 3.0.12 has only gzip built in (lz4/zstd need extra packages) and runs it at level 9;
    # the batch codec compresses each record's body itself instead (docs/batch-codec.md).
    compression: Literal["gzip", "lz4", "zstd", "snappy", "none"] = option("none", "Kafka record compression")
    codec_compression: BodyCodec = option(
        DEFAULT_BODY_CODEC, "compression of each rw.telemetry batch's body: lz4, or zlib (level 1: ~25 % fewer bytes for "
        "~7x the CPU), or none",
    )  # fmt: skip
    linger_ms: int = option(5, "how long the Kafka producer waits to fill a request", ge=0)
    producer_batch_bytes: int = option(1024 * 1024, "Kafka producer batch size in bytes", gt=0)
    delivery_timeout_s: float = option(
        15.0, "after this an unacknowledged Kafka record goes to the spool", gt=0
    )
    batch_max_readings: int = option(2000, "readings per rw.telemetry message, per site", gt=0)
    batch_linger_ms: float = option(
        20.0, "the oldest reading waits at most this long for its batch to fill", ge=0
    )
    spool_dir: Path = option(Path(".riskwatch/spool/bridge"), "where records Kafka did not take wait")
    spool_max_mb: int = option(1024, "the spool's size limit in MiB", gt=0)
    max_payload_kb: int = option(DEFAULT_MAX_PAYLOAD // 1024, "largest MQTT payload taken, in KiB", gt=0)
    future_tolerance_s: float = option(
        DEFAULT_FUTURE_TOLERANCE_S, "how far ahead of the bridge clock a timestamp may be", ge=0
    )
    max_age_s: float = option(
        DEFAULT_MAX_AGE_S,
        "how old a reading, event or status time may be (7 days); older is dead-lettered",
        gt=0,
    )
    max_readings: int = option(
        DEFAULT_MAX_READINGS, "readings per telemetry message; more is dead-lettered as too_many_items", gt=0
    )
    metrics_host: str = option("127.0.0.1", "address of /metrics and /healthz")
    metrics_port: Port = option(9108, "port of /metrics and /healthz (0: off)")
    shutdown_timeout_s: float = option(30.0, "how long a stop may take to flush what is in flight", gt=0)
    clock: ClockOption = clock_option()
    log_level: LogLevel = option("info", "how much the bridge logs")
    mqtt_password: str = Field("", repr=False)  # from the variable --mqtt-password-env names

    @property
    def mqtt_tls(self) -> ClientTLS:
        return ClientTLS(self.mqtt_cafile, self.mqtt_certfile, self.mqtt_keyfile)

    @property
    def client_id(self) -> str:
        """The MQTT client id sent: stable across restarts, so the persistent session is found again."""
        return self.mqtt_client_id or self.mqtt_user

    @property
    def batch_linger_s(self) -> float:
        return self.batch_linger_ms / 1000

    @property
    def spool_max_bytes(self) -> int:
        return self.spool_max_mb * 2**20

    @property
    def max_payload(self) -> int:
        return self.max_payload_kb * 1024
