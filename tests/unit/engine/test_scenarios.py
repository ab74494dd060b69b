"""Scenario tests written from the standards (docs/domain.md): set points, coal methane, tailings, kiln."""

from __future__ import annotations

import pytest

from processors.engine import Event
from tests.unit.engine.conftest import MakeRig, ReferenceRig, Rig, site_yaml

CHEM = site_yaml(
    "hazardous_chemicals",
    """
      - id: TANKS
        kind: tank_farm
        sensors:
          - {id: GT-1, type: flammable_gas}
          - {id: GT-2, type: flammable_gas}
          - {id: CO-1, type: co}
          - {id: PT-1, type: pressure, range: [0, 1000], l1_high: 700, l2_high: 800, on_delay_s: 15}
      - id: PROC
        kind: process_unit
        sensors:
          - {id: TT-1, type: temperature, range: [0, 500], l1_high: 300, l2_high: 350, stale_after_s: 3600}
""",
)


def test_flammable_gas_24_26_51_gives_l1_then_l2(make_rig: MakeRig) -> None:
    rig = make_rig(CHEM)
    rig.feed(1, {"GT-1": 24})
    assert rig.alarm("GT-1") == "normal"
    rig.feed(2, {"GT-1": 26})
    assert rig.alarm("GT-1") == "l1_high"
    rig.feed(3, {"GT-1": 51})
    assert rig.changes("GT-1") == [("normal", "l1_high", 2.0), ("l1_high", "l2_high", 3.0)]
    [t] = [t for t in rig.log if t.entity == "GT-1" and t.new == "l2_high"]
    item = t.cause.items[0]
    assert (item.value, item.setpoint, item.unit, item.state) == (51.0, 50.0, "%LEL", "l2_high")
    assert (t.site, t.region, t.unit) == ("S1", "R1", "TANKS")


def test_co_first_alarm_at_20_mg_m3(make_rig: MakeRig) -> None:
    rig = make_rig(CHEM)
    rig.feed(1, {"CO-1": 19.9})
    assert rig.alarm("CO-1") == "normal"
    rig.feed(2, {"CO-1": 20.0})
    assert rig.changes("CO-1") == [("normal", "l1_high", 2.0)]
    assert rig.colour("TANKS") == "blue"


def test_hazard_source_colours_follow_the_default_rules(make_rig: MakeRig) -> None:
    rig = make_rig(CHEM)
    rig.feed(1, {"GT-1": 30})
    assert rig.colour("TANKS") == "blue"  # any L1
    rig.feed(2, {"GT-2": 30})
    assert rig.colour("TANKS") == "yellow"  # two sensors at L1
    rig.feed(3, {"GT-1": 60})
    assert rig.colour("TANKS") == "orange"  # flammable gas L2
    rig.feed(4, {"GT-2": 60})
    assert rig.colour("TANKS") == "red"  # gas L2 on two detectors
    [t] = [t for t in rig.log if t.entity == "TANKS" and t.new == "red"]
    assert t.cause.rule == "gas_l2_two_detectors" and t.at == 4.0
    assert {i.sensor for i in t.cause.items} == {"GT-1", "GT-2"}


def test_l2_lasting_ten_minutes_turns_orange_on_the_timer(make_rig: MakeRig) -> None:
    rig = make_rig(CHEM)
    rig.feed(0, {"TT-1": 360}, now=60)  # temperature on-delay 60 s: L2 at t=60
    assert rig.colour("PROC") == "yellow"
    rig.tick(659)
    assert rig.colour("PROC") == "yellow"
    rig.tick(700)
    assert rig.changes("PROC") == [("normal", "yellow", 60.0), ("yellow", "orange", 660.0)]


def test_site_takes_the_highest_unit_and_region_counts_sites(make_rig: MakeRig) -> None:
    rig = make_rig(CHEM)
    rig.feed(0, {"TT-1": 360}, now=60)
    rig.feed(61, {"GT-1": 30})
    site = [t for t in rig.log if t.entity_type == "site"]
    assert [(t.old, t.new) for t in site] == [("normal", "yellow")]
    region = [t for t in rig.log if t.entity_type == "region"]
    assert [(t.entity, t.new) for t in region] == [("R1", "yellow")]
    assert region[0].counts == {"yellow": 1}  # non-normal sites only
    assert (region[0].site, region[0].cause.rule) == ("S1", "highest_site")  # the site that changed it
    assert region[0].key == b"R1"


COAL = site_yaml(
    "coal_mine",
    """
      - id: FACE
        kind: working_face
        sensors:
          - {id: CH4-FACE, type: methane, location: longwall_face}
      - id: RETURN
        kind: roadway
        sensors:
          - {id: CH4-RET, type: methane, location: face_return_airway}
""",
)


def test_methane_at_a_working_face_orange_at_1_0_red_at_1_5(make_rig: MakeRig) -> None:
    rig = make_rig(COAL)
    rig.feed(1, {"CH4-FACE": 0.99})
    assert rig.colour("FACE") == "normal"
    rig.feed(2, {"CH4-FACE": 1.0})
    assert rig.colour("FACE") == "orange"
    rig.feed(3, {"CH4-FACE": 1.5})
    assert rig.colour("FACE") == "red"
    assert [t.cause.rule for t in rig.log if t.entity == "FACE"] == ["methane_alarm", "methane_power_off"]
    rig.feed(4, {"CH4-FACE": 0.99})  # below the alarm value (no deadband), after the 10 s off-delay
    rig.tick(13.9)
    assert rig.colour("FACE") == "red"
    rig.tick(14)
    assert rig.changes("FACE")[-1] == ("red", "normal", 14.0)


def test_methane_in_the_return_airway_is_red_at_1_0(make_rig: MakeRig) -> None:
    rig = make_rig(COAL)
    rig.feed(1, {"CH4-RET": 1.0})
    assert rig.alarm("CH4-RET") == "l2_high"
    assert rig.colour("RETURN") == "red"


def tailings(make_rig: MakeRig, points: str) -> Rig | ReferenceRig:
    return make_rig(site_yaml("tailings_pond", f"""
      - id: DAM
        kind: dam
        sensors:
{points}
"""))  # fmt: skip


BANDS = "{{blue: 10, yellow: 20, orange: 30, red: 40}}"
DX = "          - {{id: DX-{k}, type: dam_displacement, bands: " + BANDS + "}}"


@pytest.mark.parametrize(
    ("values", "colour"),
    [
        ([12, 12, 12], "blue"),  # 3 blue points: still blue
        ([12, 12, 12, 12], "yellow"),  # 4 blue points -> item yellow
        ([22, 22], "yellow"),
        ([22, 22, 22], "orange"),  # 3 yellow points -> item orange
        ([32], "orange"),
        ([32, 32], "red"),  # 2 orange points -> item red
        ([42], "red"),
        ([32, 12, 12, 12], "orange"),  # highest wins over the 4-blue roll-up
    ],
)
def test_tailings_roll_up_within_an_item(values: list[float], colour: str, make_rig: MakeRig) -> None:
    rig = tailings(make_rig, "\n".join(DX.format(k=k) for k in range(6)))
    rig.feed(1, {f"DX-{k}": v for k, v in enumerate(values)})
    assert rig.colour("DAM") == colour


def test_tailings_four_blue_items_count_as_one_yellow(make_rig: MakeRig) -> None:
    points = """
          - {id: DX-1, type: dam_displacement, bands: {blue: 10, yellow: 20, orange: 30, red: 40}}
          - {id: PH-1, type: phreatic_depth, bands: {blue: 9, yellow: 8, red: 6}}
          - {id: FB-1, type: freeboard, bands: {blue: 3.0, yellow: 2.5, orange: 2.0, red: 1.5}}
          - {id: WL-1, type: water_level, range: [0, 100], bands: {blue: 80, yellow: 85, orange: 90, red: 95}}
"""
    rig = tailings(make_rig, points)
    rig.feed(1, {"DX-1": 12, "PH-1": 8.8, "FB-1": 2.8})
    assert rig.colour("DAM") == "blue"  # three blue items
    rig.feed(2, {"WL-1": 81})
    assert rig.colour("DAM") == "yellow"
    assert [t.cause.rule for t in rig.log if t.entity == "DAM"] == ["tailings_rollup", "tailings_rollup"]
    rig.feed(3, {"PH-1": 6.5})  # below orange = 1.1 x red = 6.6 m on a low-side item
    assert rig.alarm("PH-1") == "l2_low" and rig.colour("DAM") == "orange"


KILN = site_yaml(
    "gas_kiln",
    """
      - id: K1
        kind: kiln
        sensors:
          - {id: PT-GAS, type: gas_main_pressure, range: [0, 20], l1_low: 6.0}
          - {id: XV-1, type: cutoff_valve}
""",
)


def test_kiln_low_pressure_confirmed_in_5_s_stays_below_red(make_rig: MakeRig) -> None:
    rig = make_rig(KILN)
    rig.feed(100, {"PT-GAS": 5.0, "XV-1": 0})
    assert rig.colour("K1") == "blue"
    rig.tick(105, events=[Event("valve_closed", "K1", 105.0)])
    rig.tick(110)
    rig.tick(200)
    assert rig.colour("K1") == "blue"
    assert all(t.new != "red" for t in rig.log)


def test_kiln_low_pressure_without_confirmation_is_red_at_10_s(make_rig: MakeRig) -> None:
    rig = make_rig(KILN)
    rig.feed(100, {"PT-GAS": 5.0, "XV-1": 0})
    rig.tick(109.9)
    assert rig.colour("K1") == "blue"
    rig.tick(110)
    [red] = [t for t in rig.log if t.entity == "K1" and t.new == "red"]
    assert (red.at, red.cause.rule) == (110.0, "kiln_no_cutoff")
    assert red.cause.items[0].sensor == "PT-GAS"


def test_kiln_confirmation_by_the_valve_sensor(make_rig: MakeRig) -> None:
    rig = make_rig(KILN)
    rig.feed(100, {"PT-GAS": 5.0, "XV-1": 0})
    rig.feed(104, {"XV-1": 1})  # closed, read back from the valve's limit switch
    rig.tick(130)
    assert rig.colour("K1") == "blue"


def test_interlock_bypassed_while_in_alarm_is_red_and_maintenance_mutes(make_rig: MakeRig) -> None:
    rig = make_rig(CHEM)
    rig.feed(1, {"GT-1": 30}, events=[Event("interlock_bypassed", "TANKS", 1.0)])
    assert rig.colour("TANKS") == "red"
    rig.tick(2, events=[Event("interlock_restored", "TANKS", 2.0)])
    assert rig.colour("TANKS") == "blue"
    rig.tick(3, events=[Event("maintenance_on", "TANKS", 3.0)])
    assert rig.colour("TANKS") == "normal" and rig.log[-3].cause.rule == "maintenance"
    rig.feed(4, {"GT-1": 60})
    assert rig.colour("TANKS") == "normal"
    assert rig.alarm("GT-1") == "l2_high"  # sensor alarms are still reported
    rig.tick(5, events=[Event("maintenance_off", "TANKS", 5.0)])
    assert rig.colour("TANKS") == "orange"


def test_gateway_offline_makes_its_sensors_stale(make_rig: MakeRig) -> None:
    rig = make_rig(CHEM)
    rig.tick(10, events=[Event("gateway_offline", "G1", 9.0)])
    assert {t.new for t in rig.log if t.kind == "alarm"} == {"stale"}
    assert {t.cause.rule for t in rig.log if t.kind == "alarm"} == {"gateway_offline"}
    assert rig.colour("TANKS") == "blue"
    rig.feed(11, {"GT-1": 5})
    assert rig.alarm("GT-1") == "normal"


TWO_SITES = """
version: 1
regions: [{id: R1}]
sites:
  - id: A
    region: R1
    industry: hazardous_chemicals
    gateways: [{id: GA}]
    units:
      - id: UA
        kind: process_unit
        sensors:
          - {id: PT-A, type: pressure, range: [0, 100], l1_high: 60, l2_high: 80, on_delay_s: 0}
          - {id: TT-A, type: temperature, range: [0, 100], l1_high: 60, l2_high: 80, on_delay_s: 0}
          - {id: O2-A, type: oxygen}
  - id: B
    region: R1
    industry: hazardous_chemicals
    gateways: [{id: GB}]
    units:
      - id: UB
        kind: tank_farm
        sensors:
          - {id: GT-B, type: flammable_gas}
"""


def test_l2_on_two_quantities_is_red_and_the_region_counts_its_sites(make_rig: MakeRig) -> None:
    rig = make_rig(TWO_SITES)
    rig.feed(1, {"PT-A": 85})
    assert rig.colour("UA") == "yellow"
    rig.feed(2, {"TT-A": 85})
    assert rig.colour("UA") == "red"
    assert [t.cause.rule for t in rig.log if t.entity == "UA"][-1] == "l2_two_quantities"
    rig.feed(3, {"GT-B": 30})
    region = [t for t in rig.log if t.entity_type == "region"]
    assert [(t.old, t.new) for t in region] == [("normal", "yellow"), ("yellow", "red")]
    rig.feed(4, {"PT-A": 10, "TT-A": 10})
    rig.tick(20)  # after the 15 s / 60 s off-delays of pressure and temperature
    rig.tick(70)
    last = [t for t in rig.log if t.entity_type == "region"][-1]
    assert (last.new, last.counts) == ("blue", {"blue": 1})


def test_oxygen_low_alarm_at_19_5(make_rig: MakeRig) -> None:
    rig = make_rig(TWO_SITES)
    rig.feed(1, {"O2-A": 19.6})
    assert rig.alarm("O2-A") == "normal"
    rig.feed(2, {"O2-A": 19.5})
    assert rig.alarm("O2-A") == "l1_low"
    [t] = [t for t in rig.log if t.entity == "O2-A"]
    assert (t.cause.items[0].setpoint, t.cause.items[0].unit) == (19.5, "%VOL")
