"""The bulletin's and quality report's joins of history rows with the registry, on hand-made rows."""

from __future__ import annotations

from datetime import date, time

from alerting.history.influx import MinuteRow, TransitionRow
from alerting.reports import daily, quality
from deploy.schedule import next_run
from riskwatch.registry.registry import Registry

REGISTRY = Registry.from_dict({
    "regions": [{"id": "R1", "name": "一区"}],
    "sites": [{
        "id": "S1", "region": "R1", "name": "一号化工厂", "industry": "hazardous_chemicals",
        "gateways": [{"id": "G1"}, {"id": "G2"}],
        "units": [{"id": "U1", "kind": "tank_farm", "gateway": "G1", "sensors": [
            {"id": "A", "type": "flammable_gas"}, {"id": "B", "type": "flammable_gas", "gateway": "G2"}]}],
    }],
})  # fmt: skip
START, END = daily.day_bounds(date(2026, 11, 23), "Asia/Shanghai")


def row(at: float, entity: str, old: str, new: str, rule: str = "r", kind: str = "alarm") -> TransitionRow:
    return TransitionRow(at, kind, "sensor", entity, "S1", "R1", old, new, rule, "{}")


def test_day_bounds_are_local_midnights() -> None:
    assert END - START == 86400 and START % 86400 == 57600  # 16:00 UTC the day before is midnight in China


def test_gateway_offline_from_its_sensors_going_stale_until_one_reports_again() -> None:
    rows = [
        row(START - 100, "A", "normal", "stale", "gateway_offline"),  # offline since before midnight
        row(START + 50, "A", "stale", "normal"),
        row(START + 1000, "B", "normal", "stale", "gateway_offline"),
        row(START + 1300, "B", "stale", "normal"),
        row(START + 5000, "B", "normal", "stale", "stale"),  # a sensor silent on its own: not the gateway
    ]
    offline = daily.gateway_offline(REGISTRY, rows, START, END)
    assert offline == {"G1": [(START, START + 50)], "G2": [(START + 1000, START + 1300)]}


def test_site_colours_start_from_the_last_change_before_midnight() -> None:
    rows = [
        TransitionRow(START - 500, "warning", "site", "S1", "S1", "R1", "normal", "orange", "r", "{}"),
        TransitionRow(START + 600, "warning", "site", "S1", "S1", "R1", "orange", "normal", "r", "{}"),
    ]
    pieces = daily.colours_of_day(REGISTRY, rows, START, END)["S1"]
    assert pieces[0] == (START, START + 600, "orange") and daily.c.peak(pieces) == "orange"


def test_crossings_count_onsets_of_minutes_beyond_the_first_set_point() -> None:
    sp = REGISTRY.sensors["A"].l1_high
    minutes = {"A": [MinuteRow("A", START + 60 * i, 0, v, 0, 60) for i, v in
                     enumerate([sp - 1, sp + 1, sp + 2, sp - 1, sp + 1])]}  # fmt: skip
    assert quality.crossings(REGISTRY, minutes) == 2
    acts = quality.activations([row(1, "A", "normal", "l1_high"), row(2, "A", "l1_high", "l2_high"),
                                row(3, "A", "l2_high", "normal"), row(4, "A", "normal", "stale")])  # fmt: skip
    assert acts == {"A": [1]}


def test_the_scheduled_bulletin_runs_at_the_next_local_time() -> None:
    assert next_run(START, time(7, 30), "Asia/Shanghai") == START + 7.5 * 3600
    assert next_run(START + 8 * 3600, time(7, 30), "Asia/Shanghai") == START + 86400 + 7.5 * 3600


def test_the_bulletin_page_has_a_chart_and_a_table_per_region_and_per_industry() -> None:
    from datetime import date

    zero = dict.fromkeys(("red", "orange", "yellow", "blue", "normal"), 0)
    by_region = {"南湖区": {**zero, "red": 2, "normal": 5}, "北山县": {**zero, "blue": 1}}
    by_industry = {"危险化学品": {**zero, "red": 2, "blue": 1}, "煤矿": {**zero, "normal": 5}}
    b = daily.Bulletin(
        date(2026, 11, 23), "Asia/Shanghai", 0.0, 86400.0, 86400.0, by_region, by_industry,
        zero, zero, zero, [], [], 0, 0, None, 8,
    )  # fmt: skip
    page = daily.render(b)
    assert page.count("<img") >= 2  # the two stacked bar charts (each titled inside its picture)
    for label, counts in (("地区", by_region), ("行业", by_industry)):
        assert f"<th>{label}</th>" in page
        for name, row in counts.items():
            cells = "".join(f"<td>{row[c]}</td>" for c in ("red", "orange", "yellow", "blue", "normal"))
            assert f"<td>{name}</td>{cells}" in page
