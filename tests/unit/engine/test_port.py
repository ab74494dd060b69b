"""The real engine through the processors' engine port, on per-site sub-registries as the worker uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.engine_port import load_engine
from processors.state.sites import SiteIndex
from riskwatch.registry import load_registry
from riskwatch.wire.gateway_protocol import GatewayRecord
from riskwatch.wire.readings import Readings

EXAMPLE = Path(__file__).parents[3] / "deploy" / "examples" / "registry.yaml"


def test_engine_port_binds_the_real_engine_and_round_trips_a_site() -> None:
    engine = load_engine()
    index = SiteIndex(load_registry(EXAMPLE))
    site = index.sub_registry("SH-BL01")  # the glass-kiln plant
    model = engine.compile_model(site)
    state = engine.initial(model, 100.0)  # the worker starts a fresh site state at its clock's now
    pt = site.sensors["SH-K1-PT01"].index
    state, out = engine.evaluate(model, state, Readings.of([pt], [5.0], [100.0]), 100.0)
    assert [(t.entity, t.new) for t in out if t.kind == "alarm"] == [("SH-K1-PT01", "l1_low")]
    state, out = engine.evaluate(model, state, Readings.empty(), 111.0)
    assert [(t.entity, t.new, t.at) for t in out if t.entity == "SH-K1"] == [("SH-K1", "red", 110.0)]
    closed = GatewayRecord(
        "event", "SH-BL01", "SH-BL01-GW1", 112.0, 112.5, kind="valve_closed", target="SH-K1"
    )
    state, out = engine.apply_gateway(model, state, [closed], 113.0)
    assert [(t.entity, t.new) for t in out if t.entity == "SH-K1"] == []  # red stays: confirmed too late
    restored = engine.from_bytes(engine.to_bytes(state))
    assert engine.to_bytes(restored) == engine.to_bytes(state)


def test_an_engine_without_apply_gateway_gets_the_protocol_event_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The port's own record-to-event mapping (for engines that take only `Event`s) passes the gateway
    protocol's kinds unchanged: a valve re-opening reaches the engine and re-arms the cut-off rule."""
    import sys
    import types

    import processors.engine as real

    bare = types.ModuleType("bare_engine")
    for name in ("compile_model", "EngineState", "evaluate", "Event", "adopt"):
        setattr(bare, name, getattr(real, name))
    monkeypatch.setitem(sys.modules, "bare_engine", bare)
    engine = load_engine("bare_engine")
    site = SiteIndex(load_registry(EXAMPLE)).sub_registry("SH-BL01")
    model = engine.compile_model(site)
    state = engine.initial(model, 100.0)
    records = [
        GatewayRecord("event", "SH-BL01", "SH-BL01-GW1", t, t, kind=kind, target="SH-K1")
        for t, kind in ((100.0, "valve_closed"), (101.0, "valve_opened"))
    ]
    state, _ = engine.apply_gateway(model, state, records, 101.0)
    assert engine.ignored(state)["rejected"] == 0
    pt = site.sensors["SH-K1-PT01"].index
    state, _ = engine.evaluate(model, state, Readings.of([pt], [5.0], [102.0]), 102.0)
    state, out = engine.evaluate(model, state, Readings.empty(), 113.0)
    assert [(t.entity, t.new) for t in out if t.entity == "SH-K1"] == [("SH-K1", "red")]  # valve open again
