"""The root of every riskwatch error; each package puts its own errors under it."""

from __future__ import annotations

# The exit status of a component one of whose threads or tasks died (EX_SOFTWARE): it never sits healthy
# and idle, and its supervisor (riskwatch run, systemd, docker) restarts it. Shared by every component.
EXIT_TASK_DIED = 70


class RiskwatchError(Exception):
    """Base error. Its message is shown to the user as is, so say what to do next."""


class ConfigError(RiskwatchError):
    """A configuration file is wrong: names the file, the path inside it and why."""

    def __init__(self, file: str, path: str, reason: str) -> None:
        self.file, self.path, self.reason = file, path, reason
        super().__init__(f"{file}: {path}: {reason}")


class StackError(RiskwatchError):
    """A local service could not be provisioned, started, checked or stopped."""
