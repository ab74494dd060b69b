"""The local stack's secret files are private from birth, and `stack info` masks passwords unless asked."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from deploy.stack.cli import EXAMPLE_REGISTRY
from deploy.stack.mosquitto import write_auth_files
from deploy.stack.settings import StackSettings
from deploy.stack.stack import SETTINGS_FILE
from riskwatch.cli import main


@pytest.fixture
def no_chmod_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The most permissive umask and a chmod that never comes: a file written first and chmod-ed after
    (the window another local user could read it in, or a crash leaves it so) stays readable here."""
    old = os.umask(0)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_mosquitto_password_and_acl_files_are_0600_from_creation(
    tmp_path: Path, no_chmod_window: None
) -> None:
    write_auth_files(tmp_path / "m", "bridge-pw", {"gw-1": {"site": "s1", "password": "g"}})
    assert {p.name: _mode(p) for p in (tmp_path / "m").iterdir()} == {"passwd": 0o600, "acl": 0o600}


def test_stack_settings_with_their_passwords_are_0600_from_creation(
    tmp_path: Path, no_chmod_window: None
) -> None:
    settings = StackSettings.create()
    settings.save(tmp_path / SETTINGS_FILE)
    assert _mode(tmp_path / SETTINGS_FILE) == 0o600
    assert StackSettings.load(tmp_path / SETTINGS_FILE) == settings
    assert [p.name for p in tmp_path.iterdir()] == [SETTINGS_FILE]  # no temporary left behind


def test_accounts_out_files_are_0600_from_creation(tmp_path: Path, no_chmod_window: None) -> None:
    out = tmp_path / "accounts"
    assert main(["stack", "accounts", "--registry", str(EXAMPLE_REGISTRY), "--out", str(out)]) == 0
    assert {p.name: _mode(p) for p in out.iterdir()} == {
        "passwd": 0o600,
        "acl": 0o600,
        "passwords.json": 0o600,
    }
    assert orjson.loads((out / "passwords.json").read_bytes())["gateways"]


def test_stack_info_prints_passwords_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = StackSettings.create()
    settings.save(tmp_path / SETTINGS_FILE)
    assert main(["stack", "--home", str(tmp_path), "info"]) == 0
    masked = capsys.readouterr().out
    assert settings.bridge_password not in masked and settings.influx_password not in masked
    doc = orjson.loads(masked)
    assert doc["bridge_password"] == doc["influx_token"] == "***" and doc["kafka_bootstrap"]
    assert not any(pw in masked for pw in settings.kafka_passwords.values())
    assert doc["kafka_passwords"] == {c: "***" for c in settings.kafka_passwords}
    assert main(["stack", "--home", str(tmp_path), "info", "--secrets"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["bridge_password"] == settings.bridge_password
    assert shown["kafka_passwords"] == settings.kafka_passwords
    assert set(shown["kafka_passwords"]) == {
        "bridge",
        "worker",
        "alerting",
        "history",
        "tools",
        "admin",
        "broker",
    }
    assert settings.influx_password in shown["influx_token"]
