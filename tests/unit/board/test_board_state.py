"""What the board's state is made of: levels moved only forward in event time, a deployment's own map
file, and the one-time login link a launcher hands alerting."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from alerting.board.geometry import load_map
from alerting.cli import login_links
from alerting.store import Store
from riskwatch.errors import ConfigError
from tests.unit.alerting.conftest import warning


def test_a_late_older_record_is_history_not_the_present(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    with store.transaction():
        store.record_level(warning(new="red", at=2000.0))
        store.record_level(warning(new="orange", old="normal", at=1000.0))  # arrives late, happened earlier
    assert [(r.entity, r.level) for r in store.levels()] == [("S1", "red")]
    assert [r.level for r in store.level_history(0)] == ["orange", "red"]  # by event time
    with store.transaction():
        store.record_level(warning(new="normal", old="red", at=3000.0))
    assert [r.level for r in store.levels()] == ["normal"]
    assert store.levels(shown_only=True)[0].level == "normal"  # a colour is shown even when normal
    with store.transaction():
        assert store.prune_level_log(2500.0) == 2
    assert [r.level for r in store.level_history(0)] == ["normal"]


def test_a_deployments_map_names_registry_regions(tmp_path: Path) -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    path = tmp_path / "map.geojson"
    path.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"region": "CN-370500", "name": "东营市"}, "geometry": square}]}))  # fmt: skip
    assert load_map(path)["features"][0]["properties"] == {"name": "CN-370500"}
    path.write_bytes(
        orjson.dumps({"type": "FeatureCollection", "features": [{"properties": {}, "geometry": square}]})
    )
    with pytest.raises(ConfigError, match="needs `region`"):
        load_map(path)
    path.write_text("not json")
    with pytest.raises(ConfigError, match="cannot read the map"):
        load_map(path)


def test_login_link_from_the_environment() -> None:
    assert login_links({"RISKWATCH_LOGIN_LINK": "demo:0123456789abcdef"}) == (("demo", "0123456789abcdef"),)
    assert login_links({"RISKWATCH_LOGIN_LINK": "demo:short"}) == ()  # too easy to guess: refused
    assert login_links({}) == ()
