"""Where riskwatch keeps things on disk. The only module that reads the environment for paths."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Per-user cache for downloaded jars and built binaries, shared by every checkout."""
    if explicit := os.environ.get("RISKWATCH_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "riskwatch"


def home_dir() -> Path:
    """Per-checkout working folder (git-ignored): service data, logs, pids, spools."""
    return Path(os.environ.get("RISKWATCH_HOME") or Path.cwd() / ".riskwatch")
