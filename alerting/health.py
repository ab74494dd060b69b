"""Liveness of the service's own tasks: one that died makes `/healthz` unhealthy and the process exit
non-zero, so a supervisor restarts it instead of it sitting healthy and idle."""

from __future__ import annotations

import asyncio

from riskwatch.errors import RiskwatchError


class TaskDied(RiskwatchError):
    """An internal task of the service stopped: the service cannot do its job any more."""


class Health:
    def __init__(self) -> None:
        self.tasks: dict[str, str] = {}  # name -> "running" or why it stopped

    def watch(self, task: asyncio.Task[object]) -> None:
        self.tasks[task.get_name()] = "running"
        task.add_done_callback(self.record)

    def record(self, task: asyncio.Task[object]) -> None:
        if task.cancelled():  # a clean shutdown cancels every task
            self.tasks[task.get_name()] = "stopped"
            return
        exc = task.exception()
        self.tasks[task.get_name()] = "died: " + (f"{type(exc).__name__}: {exc}" if exc else "returned")

    @property
    def failed(self) -> dict[str, str]:
        return {name: state for name, state in self.tasks.items() if state.startswith("died")}

    @property
    def ok(self) -> bool:
        return not self.failed


async def supervise(tasks: list[asyncio.Task[object]], stop: asyncio.Event, health: Health) -> None:
    """Wait until `stop` is set or a task ends; cancel the rest. A task that ended by itself raises
    TaskDied (the process exits non-zero), whether it failed or merely returned."""
    for task in tasks:
        health.watch(task)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    dead = next((t for t in tasks if t in done), None)
    if dead is not None:
        # Mark it now: the done callback runs on a later loop iteration, after the cancellations below.
        health.record(dead)
    for task in [*tasks, stopper]:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:  # reported through `dead` below
            pass
    if dead is not None:
        exc = dead.exception()
        raise TaskDied(f"alerting task {dead.get_name()!r} {health.tasks[dead.get_name()]}") from exc
