"""deploy/systemd/ units pass `systemd-analyze verify`, restart on failure, are hardened, take secrets only
from the 0600 env file, and start each component with flags its own CLI accepts."""

from __future__ import annotations

import argparse
import configparser
import importlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.supervisor import HEALTH_PORT_ENV, component_url

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
COMPONENTS = {
    "bridge": "ingest.cli", "worker": "processors.cli", "historian": "processors.history.cli",
    "alerting": "alerting.cli",
}  # fmt: skip
ANALYZE = shutil.which("systemd-analyze") or (
    "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
)
SYSTEM_UNITS = next(
    (p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None
)
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "User": "riskwatch",
    "Group": "riskwatch",
    "CapabilityBoundingSet": "",
}


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    text = (UNITS / name).read_text()
    parser.read_string(text.replace("\\\n", " "))
    return parser


def _env() -> dict[str, str]:
    lines = (UNITS / "riskwatch.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _verify(root: Path, units: list[str]) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", f"--root={root}", *units],
        cwd=root / "etc" / "systemd" / "system",
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A temporary root with systemd's own units, ours, and the riskwatch install they start."""
    if ANALYZE is None or SYSTEM_UNITS is None:
        pytest.skip("systemd-analyze is not installed here (Debian: apt-get install systemd)")
    (tmp_path / "usr" / "lib" / "systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, tmp_path / "usr" / "lib" / "systemd" / "system", symlinks=True)
    system = tmp_path / "etc" / "systemd" / "system"
    system.mkdir(parents=True)
    for unit in UNITS.iterdir():
        if unit.suffix in (".service", ".target", ".timer"):
            shutil.copy(unit, system / unit.name)
    venv = tmp_path / "opt" / "riskwatch" / ".venv" / "bin"
    venv.mkdir(parents=True)
    for exe in ("riskwatch", "python"):
        (venv / exe).write_text("#!/bin/sh\n")
        (venv / exe).chmod(0o755)
    etc = tmp_path / "etc" / "riskwatch"
    etc.mkdir()
    shutil.copy(UNITS / "riskwatch.env", etc / "riskwatch.env")
    (etc / "secrets.env").touch(0o600)
    return tmp_path


ALL_UNITS = [
    *(f"riskwatch-{c}.service" for c in COMPONENTS),
    "riskwatch.target",
    *(f"riskwatch-health@{c}.service" for c in COMPONENTS),
    *(f"riskwatch-health@{c}.timer" for c in COMPONENTS),
]


def test_units_pass_systemd_analyze_verify(root: Path) -> None:
    result = _verify(root, ALL_UNITS)
    # verify exits 0 on unknown keys and only warns: any output at all is a finding.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_verify_catches_a_broken_unit(root: Path) -> None:
    """The check above can fail: a misspelt key and a missing executable are reported."""
    unit = root / "etc" / "systemd" / "system" / "riskwatch-bridge.service"
    unit.write_text(unit.read_text().replace("Restart=on-failure", "Restrat=on-failure"))
    (root / "opt" / "riskwatch" / ".venv" / "bin" / "python").unlink()
    out = _verify(root, ["riskwatch-bridge.service"])
    text = out.stdout + out.stderr
    assert "Unknown key 'Restrat'" in text and "python is not executable" in text, text


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_component_unit_restarts_is_hardened_and_health_checked(component: str) -> None:
    unit = _unit(f"riskwatch-{component}.service")
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["RestartSec"] == "2s"
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"  # never gives up
    assert unit["Unit"]["PartOf"] == "riskwatch.target"
    for key, value in HARDENING.items():
        assert service[key] == value, key
    assert service["ReadWritePaths"] == f"/var/lib/riskwatch/{component}"
    assert service["StateDirectory"] == f"riskwatch/{component}"
    assert f"--component {component} --wait" in service["ExecStartPost"]
    files = (UNITS / f"riskwatch-{component}.service").read_text()
    assert "EnvironmentFile=/etc/riskwatch/secrets.env" in files
    # Secrets are passed by variable name, never expanded onto the command line (visible in ps).
    assert not re.search(r"\$\{?\w*(PASSWORD|TOKEN|SECRET)", service["ExecStart"]), service["ExecStart"]
    wants = [
        line for line in (UNITS / "riskwatch.target").read_text().splitlines() if line.startswith("Wants=")
    ]
    target = " ".join(wants)
    assert f"riskwatch-{component}.service" in target and f"riskwatch-health@{component}.timer" in target


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_exec_start_is_accepted_by_the_component_cli(component: str) -> None:
    """The flags in ExecStart (with riskwatch.env's values) parse with the component's own options."""
    argv = shlex.split(_unit(f"riskwatch-{component}.service")["Service"]["ExecStart"])
    assert argv[:2] == ["/opt/riskwatch/.venv/bin/riskwatch", component]
    env = _env()
    args = [env[a[2:-1]] if a.startswith("${") else a for a in argv[2:]]
    parser = argparse.ArgumentParser()
    importlib.import_module(COMPONENTS[component]).configure(parser)  # type: ignore[attr-defined]
    parsed = parser.parse_args(args)
    assert str(parsed.topic_prefix) == env["RISKWATCH_TOPIC_PREFIX"]


def test_health_ports_come_from_the_env_file() -> None:
    env = _env()
    assert set(HEALTH_PORT_ENV.values()) <= set(env)
    assert component_url("worker", env) == f"http://127.0.0.1:{env['RISKWATCH_WORKER_PORT']}/healthz"
    health = _unit("riskwatch-health@.service")
    assert health["Unit"]["Requisite"] == "riskwatch-%i.service"
    assert "--component %i" in health["Service"]["ExecStart"]
    assert "--restart riskwatch-%i.service" in health["Service"]["ExecStart"]
    assert "secrets.env" not in (UNITS / "riskwatch-health@.service").read_text()


def test_example_secrets_are_empty_and_explain_0600() -> None:
    text = (UNITS / "secrets.env.example").read_text()
    assigned = [line for line in text.splitlines() if "=" in line and not line.startswith("#")]
    assert assigned and all(line.endswith("=") for line in assigned)
    assert "0600" in text
