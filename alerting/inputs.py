"""Records from `rw.warnings` and `rw.alarms` are untrusted input, checked in one step before anything
else touches them: the wire decoder checks types and levels, and alerting adds the bounds its own uses
need (ids that go into links, texts that go into messages and the store, the topic's kind). A record
that does not pass is refused with a reason and never reaches the store, the router or a message.
"""

from __future__ import annotations

import re

from riskwatch.errors import RiskwatchError
from riskwatch.wire.transitions import Transition, TransitionDecodeError

# The engine's records are a few KiB (a cause lists at most 20 sensors); these bounds leave room for growth
# while keeping a hostile record from filling the store, a message or an audit event.
MAX_RECORD_BYTES = 256 * 1024
MAX_CAUSE_ITEMS = 200
MAX_ID_CHARS = 200  # entity, site, region, unit, sensor ids
MAX_NAME_CHARS = 200  # rule, quantity, state, unit of measure
MAX_TEXT_CHARS = 2000  # cause text
# A transition id becomes the alert id `al-<id>`, which lands in acknowledge links and the ack page.
_TRANSITION_ID = re.compile(r"[A-Za-z0-9._-]{1,120}")


class RecordRejected(RiskwatchError):
    """A record that cannot be used; the message says which field and why."""


def _bounded(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise RecordRejected(f"`{name}` is {len(value)} characters; at most {limit}")


def decode_transition(raw: bytes | None, kind: str | None = None) -> Transition:
    """The transition in `raw`, fully checked; RecordRejected says why not. `kind` is what the topic
    carries ("warning" on rw.warnings, "alarm" on rw.alarms); a record of the other kind is refused."""
    if not raw:
        raise RecordRejected("empty record")
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordRejected(f"record is {len(raw)} bytes; at most {MAX_RECORD_BYTES}")
    try:
        t = Transition.from_bytes(raw)
    except TransitionDecodeError as exc:
        raise RecordRejected(str(exc)) from None
    if kind is not None and t.kind != kind:
        raise RecordRejected(f"`kind` {t.kind!r} does not belong on this topic; expected {kind!r}")
    if not _TRANSITION_ID.fullmatch(t.id):
        raise RecordRejected("`id` must be 1 to 120 letters, digits, '.', '_' or '-'")
    if not t.entity:
        raise RecordRejected("`entity` is required")
    for name, value in (("entity", t.entity), ("site", t.site), ("region", t.region), ("unit", t.unit)):
        _bounded(name, value, MAX_ID_CHARS)
    _bounded("cause.rule", t.cause.rule, MAX_NAME_CHARS)
    _bounded("cause.text", t.cause.text, MAX_TEXT_CHARS)
    if len(t.cause.items) > MAX_CAUSE_ITEMS:
        raise RecordRejected(f"`cause.items` has {len(t.cause.items)} items; at most {MAX_CAUSE_ITEMS}")
    for i, item in enumerate(t.cause.items):
        _bounded(f"cause.items[{i}].sensor", item.sensor, MAX_ID_CHARS)
        for name in ("quantity", "state", "unit"):
            _bounded(f"cause.items[{i}].{name}", getattr(item, name), MAX_NAME_CHARS)
    return t
