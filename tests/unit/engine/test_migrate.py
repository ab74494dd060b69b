"""A state restored under an edited registry keeps what is unchanged (by id), starts the new, drops the removed."""

from __future__ import annotations

import pytest

from processors.engine import EngineState, adopt, compile_model, evaluate
from riskwatch.wire.readings import Readings
from tests.unit.engine.conftest import Rig, site_yaml
from tests.unit.engine.test_state import BATCHES, MODEL, run

BEFORE = site_yaml(
    "hazardous_chemicals",
    """
      - id: U1
        kind: process_unit
        sensors:
          - {id: GT-1, type: flammable_gas, on_delay_s: 0, off_delay_s: 0, stale_after_s: 3600}
          - {id: GT-2, type: flammable_gas, on_delay_s: 0, off_delay_s: 0, stale_after_s: 3600}
      - id: U2
        kind: process_unit
        sensors:
          - {id: GT-9, type: flammable_gas, on_delay_s: 0, off_delay_s: 0, stale_after_s: 3600}
          - {id: GT-8, type: flammable_gas, on_delay_s: 0, off_delay_s: 0, stale_after_s: 3600}
""",
)
# GT-2 removed, GT-3 added (before GT-1, so every index moves), U2 (red) removed, GT-1's L1 set point lowered.
AFTER = site_yaml(
    "hazardous_chemicals",
    """
      - id: U1
        kind: process_unit
        sensors:
          - {id: GT-3, type: flammable_gas, on_delay_s: 0, off_delay_s: 0, stale_after_s: 3600}
          - {id: GT-1, type: flammable_gas, on_delay_s: 0, off_delay_s: 0, stale_after_s: 3600,
             l1_high: 20}
""",
)


def _edited(state: EngineState, start: float) -> Rig:
    """A rig on the edited registry whose state is `state` saved, restored and adopted."""
    rig = Rig(AFTER)
    rig.state = adopt(rig.model, EngineState.from_bytes(state.to_bytes()), start)
    return rig


def _before() -> Rig:
    rig = Rig(BEFORE)
    rig.feed(10, {"GT-1": 60.0, "GT-2": 30.0})  # one gas detector at L2: U1 orange
    rig.feed(11, {"GT-9": 60.0, "GT-8": 60.0})  # two: U2 red, and so the site
    assert rig.alarm("GT-1") == "l2_high" and (rig.colour("U1"), rig.colour("U2")) == ("orange", "red")
    return rig


def test_an_unchanged_sensors_alarm_survives_the_edit_and_clears_later() -> None:
    before = _before()
    rig = _edited(before.state, 100.0)
    rig.tick(100)
    assert rig.alarm("GT-1") == "l2_high"  # kept by id, though its index moved from 0 to 1
    assert rig.changes("GT-1") == []  # nothing re-emitted for it
    rig.feed(101, {"GT-1": 5.0})
    assert rig.changes("GT-1") == [("l2_high", "normal", 101.0)]


def test_added_sensors_evaluate_and_removed_ones_vanish() -> None:
    rig = _edited(_before().state, 100.0)
    assert rig.model.sensor_ids == ("GT-3", "GT-1") and len(rig.state.sensor["code"]) == 2
    rig.feed(101, {"GT-3": 60.0})
    assert rig.changes("GT-3") == [("normal", "l2_high", 101.0)]
    assert all(t.entity not in ("GT-2", "GT-8", "GT-9", "U2") for t in rig.log)


def test_a_removed_red_unit_no_longer_colours_its_site() -> None:
    before = _before()
    site_before = before.state.site["colour"][0]
    rig = _edited(before.state, 100.0)
    out = rig.tick(100)
    site = [t for t in out.transitions if t.entity_type == "site"]
    assert site_before > rig.state.site["colour"][0]
    assert [(t.entity, t.old, t.new) for t in site] == [("S1", "red", "orange")]
    assert rig.tick(101).transitions == []


def test_a_lowered_set_point_applies_from_the_next_reading() -> None:
    rig = Rig(BEFORE)
    rig.feed(10, {"GT-1": 22.0})  # below the default L1 of 25 %LEL: normal
    rig = _edited(rig.state, 100.0)
    rig.feed(101, {"GT-1": 22.0})  # the same value is now above the edited L1 of 20
    assert rig.changes("GT-1") == [("normal", "l1_high", 101.0)]


def test_new_sensors_turn_stale_from_the_restore_time() -> None:
    rig = _edited(_before().state, 100.0)
    rig.tick(100 + 3599)
    assert rig.changes("GT-3") == []
    rig.tick(100 + 3600)
    assert rig.changes("GT-3") == [("normal", "stale", 3700.0)]


def test_adopting_under_the_same_registry_continues_identically() -> None:
    state = EngineState.initial(MODEL, now=BATCHES[0][0].ts.min())
    run(state, BATCHES[:30])
    restored = adopt(MODEL, EngineState.from_bytes(state.to_bytes()), BATCHES[29][1])
    assert run(restored, BATCHES[30:]) == run(state, BATCHES[30:])


def test_an_old_snapshot_without_ids_of_another_registry_is_refused() -> None:
    state = EngineState.initial(Rig(BEFORE).model, now=0.0)
    state.ids = None
    with pytest.raises(ValueError, match="another registry"):
        adopt(compile_model(Rig(AFTER).registry), EngineState.from_bytes(state.to_bytes()), 0.0)
    same = adopt(Rig(BEFORE).model, EngineState.from_bytes(state.to_bytes()), 0.0)
    evaluate(Rig(BEFORE).model, same, Readings.empty(), 1.0)  # same registry: restored as before
