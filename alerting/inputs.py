"""Records from `rw.warnings` and `rw.alarms` are untrusted input: decoded and checked here, in one step,
before anything else touches them. A record that does not pass is refused with a reason and never
reaches the store, the router or a message.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from riskwatch.errors import RiskwatchError
from riskwatch.levels import AlarmState, Colour
from riskwatch.wire.transitions import WIRE_VERSION, Cause, CauseItem, Transition

# The engine's records are a few KiB (a cause lists at most 20 sensors); these bounds leave room for growth
# while keeping a hostile record from filling the store, a message or an audit event.
MAX_RECORD_BYTES = 256 * 1024
MAX_CAUSE_ITEMS = 200
MAX_ID_CHARS = 200  # entity, site, region, unit, sensor ids
MAX_TEXT_CHARS = 2000  # cause text
MAX_NAME_CHARS = 200  # rule, quantity, state, unit of measure
MAX_COUNTS = 10
# A transition id becomes the alert id `al-<id>`, which lands in acknowledge links and the ack page.
_TRANSITION_ID = re.compile(r"[A-Za-z0-9._-]{1,120}")
_KINDS = ("warning", "alarm")
_ENTITY_TYPES = ("sensor", "unit", "site", "region")
_COLOURS = frozenset(c.label for c in Colour)
_ALARM_STATES = frozenset(s.label for s in AlarmState)
_FIELDS = frozenset(
    {
        "v",
        "id",
        "kind",
        "entity_type",
        "entity",
        "old",
        "new",
        "at",
        "cause",
        "site",
        "region",
        "unit",
        "counts",
    }
)
_CAUSE_FIELDS = frozenset({"rule", "items", "text"})
_ITEM_FIELDS = frozenset({"sensor", "quantity", "state", "value", "setpoint", "unit", "since"})


class RecordRejected(RiskwatchError):
    """A record that cannot be used; the message says which field and why."""


def _str(doc: dict[str, Any], name: str, limit: int, where: str = "", required: bool = True) -> str:
    value = doc.get(name, "")
    if not isinstance(value, str):
        raise RecordRejected(f"`{where}{name}` must be a string, not {type(value).__name__}")
    if required and not value:
        raise RecordRejected(f"`{where}{name}` is required")
    if len(value) > limit:
        raise RecordRejected(f"`{where}{name}` is {len(value)} characters; at most {limit}")
    return value


def _number(doc: dict[str, Any], name: str, where: str = "", optional: bool = False) -> float | None:
    value = doc.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RecordRejected(f"`{where}{name}` must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond any double
        raise RecordRejected(f"`{where}{name}` is out of range") from None
    if not math.isfinite(number):
        raise RecordRejected(f"`{where}{name}` must be finite")
    return number


def _object(value: Any, what: str, known: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordRejected(f"`{what}` must be a JSON object, not {type(value).__name__}")
    if unknown := sorted(set(value) - known):
        raise RecordRejected(f"`{what}` has unknown fields: {', '.join(unknown)[:200]}")
    return value


def _level(kind: str, value: str, name: str) -> None:
    allowed = _COLOURS if kind == "warning" else _ALARM_STATES
    if value not in allowed:
        raise RecordRejected(f"`{name}` {value!r} is not a {kind} level; one of {', '.join(sorted(allowed))}")


def _item(doc: Any, i: int) -> CauseItem:
    where = f"cause.items[{i}]."
    item = _object(doc, where.rstrip("."), _ITEM_FIELDS)
    return CauseItem(
        sensor=_str(item, "sensor", MAX_ID_CHARS, where),
        quantity=_str(item, "quantity", MAX_NAME_CHARS, where, required=False),
        state=_str(item, "state", MAX_NAME_CHARS, where, required=False),
        value=_number(item, "value", where, optional=True),
        setpoint=_number(item, "setpoint", where, optional=True),
        unit=_str(item, "unit", MAX_NAME_CHARS, where, required=False),
        since=_number(item, "since", where, optional=True),
    )


def decode_transition(raw: bytes | None, kind: str | None = None) -> Transition:
    """The transition in `raw`, fully checked; RecordRejected says why not. `kind` is what the topic
    carries ("warning" on rw.warnings, "alarm" on rw.alarms); a record of the other kind is refused."""
    if not raw:
        raise RecordRejected("empty record")
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordRejected(f"record is {len(raw)} bytes; at most {MAX_RECORD_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RecordRejected(f"not valid JSON: {exc}") from None
    doc = _object(doc, "(record)", _FIELDS)
    if doc.get("v") != WIRE_VERSION:
        raise RecordRejected(f"unsupported transition wire version {doc.get('v')!r}; expected {WIRE_VERSION}")
    id_ = _str(doc, "id", 120)
    if not _TRANSITION_ID.fullmatch(id_):
        raise RecordRejected("`id` may only hold letters, digits, '.', '_' and '-'")
    kind_ = _str(doc, "kind", 20)
    if kind_ not in _KINDS or (kind is not None and kind_ != kind):
        expected = kind or " or ".join(_KINDS)
        raise RecordRejected(f"`kind` {kind_!r} does not belong here; expected {expected}")
    entity_type = _str(doc, "entity_type", 20)
    if entity_type not in _ENTITY_TYPES:
        raise RecordRejected(f"`entity_type` {entity_type!r} is not one of {', '.join(_ENTITY_TYPES)}")
    old, new = _str(doc, "old", 20), _str(doc, "new", 20)
    _level(kind_, old, "old")
    _level(kind_, new, "new")
    cause = _object(doc.get("cause"), "cause", _CAUSE_FIELDS)
    items = cause.get("items", [])
    if not isinstance(items, list):
        raise RecordRejected("`cause.items` must be a list")
    if len(items) > MAX_CAUSE_ITEMS:
        raise RecordRejected(f"`cause.items` has {len(items)} items; at most {MAX_CAUSE_ITEMS}")
    counts = doc.get("counts", {})
    if not isinstance(counts, dict) or len(counts) > MAX_COUNTS:
        raise RecordRejected(f"`counts` must be an object of at most {MAX_COUNTS} colour counts")
    for label, n in counts.items():
        if label not in _COLOURS or not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 2**31:
            raise RecordRejected("`counts` must map colour labels to non-negative integers")
    return Transition(
        id=id_, kind=kind_, entity_type=entity_type, entity=_str(doc, "entity", MAX_ID_CHARS),  # type: ignore[arg-type]
        old=old, new=new, at=_number(doc, "at") or 0.0,
        cause=Cause(_str(cause, "rule", MAX_NAME_CHARS, "cause.", required=False),
                    tuple(_item(item, i) for i, item in enumerate(items)),
                    _str(cause, "text", MAX_TEXT_CHARS, "cause.", required=False)),
        site=_str(doc, "site", MAX_ID_CHARS, required=False),
        region=_str(doc, "region", MAX_ID_CHARS, required=False),
        unit=_str(doc, "unit", MAX_ID_CHARS, required=False), counts=dict(counts),
    )  # fmt: skip
