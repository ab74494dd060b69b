"""Dead-letter records on `rw.deadletter` (JSON, version 1), shared by the bridge and the processors.

Every rejected input keeps its original bytes, where it came from and why, so nothing is silently
dropped and an operator can replay it after fixing the registry or the gateway. When only some
readings of a message are bad, one record carries the whole message with a reason per bad item.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from riskwatch.errors import RiskwatchError

WIRE_VERSION = 1


class Reason(StrEnum):
    """Stable snake_case reason codes: dashboards and alerts count by them, never rename one."""

    MALFORMED_JSON = "malformed_json"
    SCHEMA = "schema"  # a field missing or of the wrong type
    OVERSIZED_PAYLOAD = "oversized_payload"
    WRONG_TOPIC = "wrong_topic"
    GATEWAY_TOPIC_MISMATCH = "gateway_topic_mismatch"  # payload "gw" is not the topic's gateway
    GATEWAY_UNKNOWN = "gateway_unknown"
    GATEWAY_SITE_MISMATCH = "gateway_site_mismatch"  # the registry puts the gateway at another site
    SENSOR_UNKNOWN = "sensor_unknown"
    SENSOR_SITE_MISMATCH = "sensor_site_mismatch"
    NON_FINITE_VALUE = "non_finite_value"
    NON_FINITE_TIMESTAMP = "non_finite_timestamp"
    WRONG_UNIT = "wrong_unit"
    FUTURE_TIMESTAMP = "future_timestamp"
    MIXED = "mixed"  # several item reasons in one message; see `items`
    INTERNAL_ERROR = "internal_error"  # a bug in the component: report it, replay the original later
    # used by consumers of Kafka topics (processors):
    BATCH_DECODE = "batch_decode"
    REGISTRY_MISMATCH = "registry_mismatch"


class DeadLetterDecodeError(RiskwatchError):
    """A dead-letter record could not be decoded."""


@dataclass(frozen=True, slots=True)
class DeadItem:
    """One rejected reading or event inside a message: its position, sensor (if known) and reason."""

    index: int
    reason: str
    detail: str = ""
    sensor: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input: reason code, human detail, source (MQTT or Kafka topic), original bytes, time."""

    reason: str
    detail: str
    source: str
    original: bytes
    at: float  # epoch seconds the input was rejected
    component: str = "bridge"
    site: str = ""
    gateway: str = ""
    items: tuple[DeadItem, ...] = field(default=())

    @property
    def key(self) -> bytes:
        """Kafka key: the site when known, so one site's rejects stay in order."""
        return self.site.encode()

    def to_bytes(self) -> bytes:
        doc = {
            "v": WIRE_VERSION,
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source,
            "original": base64.b64encode(self.original).decode(),
            "at": self.at,
            "component": self.component,
            "site": self.site,
            "gateway": self.gateway,
            "items": [
                {"index": i.index, "reason": i.reason, "detail": i.detail, "sensor": i.sensor}
                for i in self.items
            ],
        }
        return orjson.dumps(doc)

    @classmethod
    def from_bytes(cls, raw: bytes) -> DeadLetter:
        try:
            doc: dict[str, Any] = orjson.loads(raw)
            if doc.pop("v", None) != WIRE_VERSION:
                raise DeadLetterDecodeError(f"unsupported dead-letter version in {raw[:80]!r}")
            doc["original"] = base64.b64decode(doc["original"], validate=True)
            doc["items"] = tuple(DeadItem(**item) for item in doc.get("items", ()))
            return cls(**doc)
        except DeadLetterDecodeError:
            raise
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            raise DeadLetterDecodeError(f"malformed dead-letter record: {exc}") from exc


def summary_reason(items: tuple[DeadItem, ...]) -> str:
    """The top-level reason of a record with items: theirs when they agree, else `mixed`."""
    reasons = {item.reason for item in items}
    return reasons.pop() if len(reasons) == 1 else Reason.MIXED.value
