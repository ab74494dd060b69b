"""What the engine makes, as wire `Transition`s with stable ids and full causes: sensor alarms
(`sensor_alarms`) and hazard-source and site warnings (`unit_warning`, `site_warning`); region warnings
come from the kernel's roll-up (riskwatch/regions.py).

Only transitions reach Python objects: they are rare next to readings, so a loop here is fine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from processors.engine.model import CODE_OFFSET, STATE_LUT, EngineModel
from processors.engine.rules import MAINTENANCE_RULE
from processors.engine.sensors import FAULT_REASON, REASON_NAMES, Emits
from riskwatch.levels import AlarmState, Colour
from riskwatch.wire.transitions import Cause, CauseItem, EntityType, Transition, transition_id

MAX_CAUSE_ITEMS = 20  # a unit's cause lists at most this many sensors, and says how many more

Arr = npt.NDArray[Any]
# Labels by value: an enum's `.label` property costs a lookup and a lower() on every call.
_STATE_LABEL = tuple(a.label for a in AlarmState)
_COLOUR_LABEL = tuple(c.label for c in Colour)
_STATE_OF: list[list[int]] = STATE_LUT.tolist()  # [banded][code + CODE_OFFSET] -> AlarmState value


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _where(model: EngineModel, sensor: int) -> tuple[str, str, str]:
    unit = int(model.sensor_unit[sensor])
    site = int(model.unit_site[unit])
    return model.unit_ids[unit], model.site_ids[site], model.region_ids[int(model.site_region[site])]


def _fault_text(model: EngineModel, sensor: int, value: float, quality: int) -> str:
    if quality:
        return f"bad quality flag {quality} from the gateway"
    if math.isnan(value):
        return "value is not a number"
    lo, hi = model.range_low[sensor], model.range_high[sensor]
    return f"value {value:g} outside the sensor range {lo:g}..{hi:g}"


def sensor_alarms(model: EngineModel, em: Emits) -> list[Transition]:
    if not em.alarms:
        return []
    if len(em.alarms) == 1:  # the usual case: one call found them all
        cols = [c if isinstance(c, list) else c.tolist() for c in em.alarms[0]]
    else:
        cols = [np.concatenate(c).tolist() for c in zip(*em.alarms, strict=True)]
    out = []
    for sensor, old, new, code, at, reason, value, quality in zip(*cols, strict=True):
        sid = model.sensor_ids[sensor]
        unit, site, region = _where(model, sensor)
        new_label = _STATE_LABEL[new]
        text = _fault_text(model, sensor, value, quality) if reason == FAULT_REASON else ""
        item = CauseItem(
            sid,
            model.quantity_names[sensor],
            new_label,
            _num(value),
            model.setpoint(sensor, code),
            model.uoms[sensor],
            at,
        )
        out.append(
            Transition(
                id=transition_id("alarm", "sensor", sid, new_label, at),
                kind="alarm",
                entity_type="sensor",
                entity=sid,
                old=_STATE_LABEL[old],
                new=new_label,
                at=at,
                cause=Cause(REASON_NAMES[reason], (item,), text),
                site=site,
                region=region,
                unit=unit,
            )
        )
    return out


def rule_name(model: EngineModel, rule: int) -> str:
    if rule == MAINTENANCE_RULE:
        return "maintenance"
    if rule < 0:
        return "normal"
    return model.rules[rule].rule.name


def unit_items(model: EngineModel, s: dict[str, Arr], unit: int) -> tuple[tuple[CauseItem, ...], int]:
    """The unit's sensors not in NORMAL, as cause items (at most MAX_CAUSE_ITEMS), and how many more."""
    members = model.unit_members[model.unit_ptr[unit] : model.unit_ptr[unit + 1]]
    # Python lists and scalars: a unit has a few dozen sensors and only a few are not normal
    moved = [(i, c) for i, c in zip(members.tolist(), s["ucode"].take(members).tolist(), strict=True) if c]
    value, since, banded = s["last_value"], s["usince"], model.banded
    items = []
    for sensor, code in moved[:MAX_CAUSE_ITEMS]:
        items.append(
            CauseItem(
                model.sensor_ids[sensor],
                model.quantity_names[sensor],
                _STATE_LABEL[_STATE_OF[banded.item(sensor)][code + CODE_OFFSET]],
                _num(value.item(sensor)),
                model.setpoint(sensor, code),
                model.uoms[sensor],
                since.item(sensor),
            )
        )
    return tuple(items), max(0, len(moved) - MAX_CAUSE_ITEMS)


def unit_warning(
    model: EngineModel, s: dict[str, Arr], unit: int, old: int, new: int, rule: int, at: float
) -> Transition:
    uid = model.unit_ids[unit]
    site = int(model.unit_site[unit])
    items, more = unit_items(model, s, unit)
    text = "unit in maintenance mode" if rule == MAINTENANCE_RULE else ""
    if more:
        text = f"{text}; {more} more sensors not normal".lstrip("; ")
    cause = Cause(rule_name(model, rule), items, text)
    region = model.region_ids[int(model.site_region[site])]
    return _warning("unit", uid, old, new, at, cause, site=model.site_ids[site], region=region, unit=uid)


def site_warning(
    model: EngineModel, s: dict[str, Arr], u: dict[str, Arr], site: int, old: int, new: int, at: float
) -> Transition:
    sid = model.site_ids[site]
    lo, hi = int(model.site_ptr[site]), int(model.site_ptr[site + 1])
    colours = u["colour"][lo:hi]
    label = _COLOUR_LABEL[new]
    if new and hi > lo:
        top = lo + int(np.argmax(colours))
        items, _ = unit_items(model, s, top)
        rule = rule_name(model, int(u["rule"][top]))
        cause = Cause(rule, items, f"highest hazard source {model.unit_ids[top]} is {label} ({rule})")
    else:
        cause = Cause("highest_unit", (), "every hazard source is normal")
    return _warning(
        "site", sid, old, new, at, cause, site=sid, region=model.region_ids[int(model.site_region[site])]
    )


def _warning(
    entity_type: EntityType,
    entity: str,
    old: int,
    new: int,
    at: float,
    cause: Cause,
    site: str = "",
    region: str = "",
    unit: str = "",
) -> Transition:
    """A unit's or site's colour change; its id comes from the input alone."""
    label = _COLOUR_LABEL[new]
    return Transition(
        id=transition_id("warning", entity_type, entity, label, at),
        kind="warning",
        entity_type=entity_type,
        entity=entity,
        old=_COLOUR_LABEL[old],
        new=label,
        at=at,
        cause=cause,
        site=site,
        region=region,
        unit=unit,
    )
