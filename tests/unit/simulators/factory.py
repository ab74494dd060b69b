"""Hand-built sensors with the registry's default set points (docs/domain.md), for plant tests."""

from __future__ import annotations

from simulators.sensors import SimSensor


def sensor(
    sid: str, quantity: str, unit: str = "U1", site: str = "S1", gateway: str = "G1", **kw: object
) -> SimSensor:
    defaults: dict[str, dict[str, object]] = {
        "flammable_gas": dict(
            uom="%LEL", range_low=0.0, range_high=100.0, l1_high=25.0, l2_high=50.0, group="flammable_gas"
        ),
        "h2s": dict(
            uom="mg/m3", range_low=0.0, range_high=150.0, l1_high=10.0, l2_high=20.0, group="toxic_gas"
        ),
        "level": dict(
            uom="m", range_low=0.0, range_high=20.0, l1_high=17.0, l2_high=18.5, l1_low=2.0, group="process"
        ),
        "temperature": dict(
            uom="degC", range_low=-20.0, range_high=80.0, l1_high=45.0, l2_high=55.0, group="process"
        ),
        "pressure": dict(
            uom="kPa", range_low=0.0, range_high=400.0, l1_high=250.0, l2_high=300.0, group="process"
        ),
        "methane": dict(uom="%CH4", range_low=0.0, range_high=4.0, l1_high=1.0, l2_high=1.5, group="methane"),
        "gas_main_pressure": dict(
            uom="kPa",
            range_low=0.0,
            range_high=20.0,
            l1_low=6.0,
            l2_low=4.0,
            role="gas_main_pressure",
            group="gas_main",
        ),
        "cutoff_valve": dict(
            uom="state", range_low=0.0, range_high=1.0, l1_high=0.5, role="cutoff_valve", group="valve"
        ),
        "water_level": dict(
            uom="m",
            range_low=0.0,
            range_high=2000.0,
            bands=(1200.0, 1200.5, 1201.0, 1201.5),
            group="tailings",
        ),
        "freeboard": dict(
            uom="m", range_low=0.0, range_high=20.0, bands=(3.0, 2.5, 2.0, 1.5), group="tailings"
        ),
        "dry_beach_length": dict(
            uom="m", range_low=0.0, range_high=500.0, bands=(150.0, 130.0, 110.0, 100.0), group="tailings"
        ),
        "phreatic_depth": dict(
            uom="m", range_low=0.0, range_high=50.0, bands=(12.0, 10.0, 8.8, 8.0), group="tailings"
        ),
        "dam_displacement": dict(
            uom="mm", range_low=0.0, range_high=1000.0, bands=(20.0, 40.0, 60.0, 80.0), group="tailings"
        ),
        "rainfall": dict(
            uom="mm", range_low=0.0, range_high=500.0, bands=(None, 50.0, 100.0, None), group="tailings"
        ),
    }
    fields = {**defaults[quantity], **kw}
    return SimSensor(id=sid, index=0, site=site, unit=unit, gateway=gateway, quantity=quantity, **fields)  # type: ignore[arg-type]


def indexed(sensors: list[SimSensor]) -> list[SimSensor]:
    """Give the sensors dense indices in list order, as a registry does."""
    from dataclasses import replace

    return [replace(s, index=i) for i, s in enumerate(sensors)]
