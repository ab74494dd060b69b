"""Dead-letter records on `rw.deadletter` (JSON, version 1), shared by every component.

Every rejected input keeps its original bytes, where it came from and why, so nothing is silently
dropped and an operator can replay it after fixing the registry or the gateway. When only some
readings of a message are bad, one record carries the whole message with a reason per bad item.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from riskwatch.errors import RiskwatchError

WIRE_VERSION = 1

# A dead letter must always fit in one Kafka record (the producers' max request size is 1 MiB), or it
# would be retried forever and block everything queued behind it. The original is kept up to
# MAX_ORIGINAL_BYTES (with its full length and SHA-256), at most MAX_ITEMS items, and every text field is
# cut; whatever the input, `to_bytes()` is at most MAX_RECORD_BYTES.
MAX_RECORD_BYTES = 256 * 1024
MAX_ORIGINAL_BYTES = 64 * 1024
MAX_ITEMS = 500
MAX_TEXT_CHARS = 1000


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
    OLD_TIMESTAMP = "old_timestamp"  # older than the configured maximum age
    SENSOR_GATEWAY_MISMATCH = "sensor_gateway_mismatch"  # the registry assigns the sensor to another gateway
    TARGET_NOT_SERVED = "target_not_served"  # an event names a unit or sensor its gateway does not serve
    TARGET_UNKNOWN = "target_unknown"  # an event names a unit or sensor the registry does not have
    TOO_MANY_ITEMS = "too_many_items"  # more readings or events in one message than allowed
    OUT_OF_ORDER = "out_of_order"  # a reading older than the newest one already evaluated for its sensor
    MIXED = "mixed"  # several item reasons in one message; see `items`
    INTERNAL_ERROR = "internal_error"  # a bug in the component: report it, replay the original later
    # used by consumers of Kafka topics (processors):
    BATCH_DECODE = "batch_decode"
    REGISTRY_MISMATCH = "registry_mismatch"
    MALFORMED_RECORD = "malformed_record"  # a Kafka record on rw.* that does not decode or validate
    EVALUATION_ERROR = "evaluation_error"  # evaluating a valid record raised: skipped, not retried forever
    HISTORY_REJECTED = "history_rejected"  # InfluxDB refused a point (4xx): dropped, not retried forever
    NOTIFICATION_ERROR = "notification_error"  # an alert could not be rendered or stored


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
    partition: int | None = None  # where a Kafka record came from, for a consumer's dead letters
    offset: int | None = None
    # Set when decoding: the original's full length and hash, and how many items there were before the cap.
    original_length: int | None = field(default=None, compare=False)
    original_sha256: str = field(default="", compare=False)
    items_total: int | None = field(default=None, compare=False)

    @property
    def key(self) -> bytes:
        """Kafka key: the site when known, so one site's rejects stay in order."""
        return safe_text(self.site, 200).encode()

    def to_bytes(self) -> bytes:
        """JSON, at most MAX_RECORD_BYTES whatever the input (lone surrogates escaped, long fields cut)."""
        kept = self.original[:MAX_ORIGINAL_BYTES]
        length = self.original_length if self.original_length is not None else len(self.original)
        items = self.items[:MAX_ITEMS]
        doc = {
            "v": WIRE_VERSION,
            "reason": safe_text(self.reason, 100),
            "detail": safe_text(self.detail, MAX_TEXT_CHARS),
            "source": safe_text(self.source, MAX_TEXT_CHARS),
            "original": base64.b64encode(kept).decode(),
            "original_length": length,
            "original_sha256": self.original_sha256 or hashlib.sha256(self.original).hexdigest(),
            "original_truncated": len(kept) < length,
            "at": self.at if isinstance(self.at, float | int) and abs(self.at) < 1e12 else 0.0,
            "component": safe_text(self.component, 100),
            "site": safe_text(self.site, 200),
            "gateway": safe_text(self.gateway, 200),
            "partition": self.partition,
            "offset": self.offset,
            "items_total": self.items_total if self.items_total is not None else len(self.items),
            "items": [
                {
                    "index": int(i.index),
                    "reason": safe_text(i.reason, 100),
                    "detail": safe_text(i.detail, 200),
                    "sensor": safe_text(i.sensor, 200),
                }
                for i in items
            ],
        }
        raw = orjson.dumps(doc)
        if len(raw) > MAX_RECORD_BYTES:  # cannot happen with the caps above; a last guarantee all the same
            doc["items"] = []
            doc["original"] = base64.b64encode(kept[: MAX_ORIGINAL_BYTES // 4]).decode()
            doc["original_truncated"] = True
            raw = orjson.dumps(doc)
        return raw

    @classmethod
    def from_bytes(cls, raw: bytes) -> DeadLetter:
        try:
            doc: dict[str, Any] = orjson.loads(raw)
            if doc.pop("v", None) != WIRE_VERSION:
                raise DeadLetterDecodeError(f"unsupported dead-letter version in {raw[:80]!r}")
            doc["original"] = base64.b64decode(doc["original"], validate=True)
            doc["items"] = tuple(DeadItem(**item) for item in doc.get("items", ()))
            doc.pop("original_truncated", None)
            return cls(**doc)
        except DeadLetterDecodeError:
            raise
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            raise DeadLetterDecodeError(f"malformed dead-letter record: {exc}") from exc


def safe_text(text: object, limit: int) -> str:
    """`text` as a string that always encodes to UTF-8 (lone surrogates escaped), cut to `limit` chars."""
    s = text if isinstance(text, str) else repr(text)
    if len(s) > limit:
        s = f"{s[:limit]}…(+{len(s) - limit} chars)"
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def summary_reason(items: tuple[DeadItem, ...]) -> str:
    """The top-level reason of a record with items: theirs when they agree, else `mixed`."""
    reasons = {item.reason for item in items}
    return reasons.pop() if len(reasons) == 1 else Reason.MIXED.value
