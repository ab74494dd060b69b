"""The shared clock setting: parsing, the simulated time it gives, and the same option in every component."""

from __future__ import annotations

import argparse

import pytest

from alerting.cli import AlertingSettings
from ingest.settings import BridgeSettings
from processors.app import WorkerSettings
from riskwatch.clock import ClockSpec, SimulatedClock, clock_of, parse_clock, real_seconds, speed_of
from riskwatch.errors import ConfigError
from riskwatch.options import add_arguments, settings_from

MIDNIGHT_CST = 1795881600.0  # 2026-11-29T00:00:00+08:00


def test_parse_origin_speed_and_real_instant() -> None:
    spec = parse_clock("2026-11-29T00:00:00+08:00@720x@1000.5")
    assert spec == ClockSpec(MIDNIGHT_CST, 720.0, 1000.5)
    assert parse_clock("2026-11-29T00:00:00+08:00@1.5x").anchor is None
    assert parse_clock(f"{MIDNIGHT_CST}@2x@2026-11-30T00:00:00+00:00") == ClockSpec(
        MIDNIGHT_CST, 2.0, 1795996800.0
    )
    assert parse_clock(str(spec)) == spec  # what `riskwatch run` passes on reads back the same


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-11-29T00:00:00@720x", "UTC offset"),
        ("2026-11-29T00:00:00+08:00", "ORIGIN@SPEEDx"),
        ("2026-11-29T00:00:00+08:00@fastx", "not a number"),
        ("2026-11-29T00:00:00+08:00@0x", "above 0"),
        ("2026-11-29T00:00:00+08:00@100000x", "at most"),
        ("yesterday@2x", "neither epoch seconds nor an ISO time"),
    ],
)
def test_bad_settings_say_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_clock(text)


def test_simulated_time_runs_speed_times_the_monotonic_clock_from_the_anchor() -> None:
    mono = [50.0]
    clock = SimulatedClock(
        ClockSpec(MIDNIGHT_CST, 720.0, anchor=990.0), real=lambda: 1000.0, monotonic=lambda: mono[0]
    )
    assert clock() == MIDNIGHT_CST + 10 * 720  # started 10 real s after the anchor
    mono[0] += 2.5  # 2.5 real seconds: half an hour simulated
    assert clock() == MIDNIGHT_CST + 10 * 720 + 1800
    assert speed_of(clock) == 720 and real_seconds(clock, 1800) == 2.5


def test_no_setting_is_real_time() -> None:
    import time

    assert clock_of(None) is time.time and speed_of(time.time) == 1.0 and speed_of(lambda: 0.0) == 1.0
    unanchored = clock_of(ClockSpec(MIDNIGHT_CST, 60.0))
    assert abs(unanchored() - MIDNIGHT_CST) < 60  # starts at its origin when the process starts


@pytest.mark.parametrize(
    ("model", "required"),
    [
        (WorkerSettings, {"registry": "r.yaml", "kafka": "127.0.0.1:9092", "data_dir": "d"}),
        (BridgeSettings, {"registry": "r.yaml", "kafka": "127.0.0.1:9092"}),
        (AlertingSettings, {"routes": "routes.yaml", "kafka": "127.0.0.1:9092"}),
    ],
)
def test_every_component_reads_the_same_option_from_flag_and_environment(model, required) -> None:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    add_arguments(parser, model)
    env = {f"{model.ENV_PREFIX}_{k.upper()}": v for k, v in required.items()}
    env.update({"RISKWATCH_KAFKA_PASSWORD": "x" * 16})
    flagged = settings_from(model, parser.parse_args(["--clock", "2026-11-29T00:00:00+08:00@720x@5"]), env)
    assert flagged.clock == ClockSpec(MIDNIGHT_CST, 720.0, 5.0)
    from_env = settings_from(
        model, parser.parse_args([]), {**env, f"{model.ENV_PREFIX}_CLOCK": "2026-11-29T00:00:00+08:00@2x"}
    )
    assert from_env.clock == ClockSpec(MIDNIGHT_CST, 2.0)
    assert settings_from(model, parser.parse_args([]), env).clock is None
    with pytest.raises(ConfigError, match=r"--clock.*UTC offset"):
        settings_from(model, parser.parse_args(["--clock", "2026-11-29T00:00@2x"]), env)
