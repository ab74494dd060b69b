"""Using the local stack from the demo and the benchmark: start it if needed (and say so), stop it only if
we started it. The stack's own CLI does the work (`riskwatch stack up/down`), as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from simulators.pipeline import REPO
from simulators.sensors import SimulatorError


def stack_ready(home: Path) -> bool:
    from deploy.stack import Stack

    stack = Stack(home)
    if not stack.configured:
        return False
    try:
        return all(s.ready for s in stack.status())
    except Exception:  # a half-configured stack is "not ready", and `stack up` will say why
        return False


def ensure_stack(home: Path, registry: Path | None = None, echo: bool = True) -> tuple[Any, bool]:
    """The running stack's info, starting it first if it is not running; (info, started_by_us)."""
    from deploy.stack import Stack

    started = False
    if not stack_ready(home):
        argv = [sys.executable, "-m", "riskwatch", "stack", "--home", str(home), "up"]
        if registry is not None:
            argv += ["--registry", str(registry)]
        out = None if echo else subprocess.DEVNULL
        if subprocess.run(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT if not echo else None
        ).returncode:
            raise SimulatorError(f"'riskwatch stack up' failed (home {home}); see its output above")
        started = True
    return Stack(home).info(), started


def stop_stack(home: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "riskwatch", "stack", "--home", str(home), "down"], cwd=REPO, check=False
    )
