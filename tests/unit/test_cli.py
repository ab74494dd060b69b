"""The `riskwatch` command: every subcommand answers --help; unknown commands fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from riskwatch.cli import COMMANDS, main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "riskwatch", *args], capture_output=True, text=True, timeout=120
    )


def test_top_level_help_lists_every_command() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name: str) -> None:
    result = _run(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: riskwatch {name}")


def test_unknown_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_bench_help_lists_every_benchmark() -> None:
    result = _run("bench", "--help")
    assert result.returncode == 0
    for name in ("engine", "bridge", "processors", "e2e"):
        assert name in result.stdout
