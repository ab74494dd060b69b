"""Resolve a receiver to the people on call now and the channels to use."""

from __future__ import annotations

from dataclasses import dataclass

from alerting.config import Person, RoutingConfig
from alerting.rosters import on_call


@dataclass(frozen=True, slots=True)
class Recipients:
    receiver: str
    people: tuple[tuple[str, Person], ...]  # (person id, person)
    channels: tuple[str, ...]

    @property
    def mobiles(self) -> tuple[str, ...]:
        return tuple(p.mobile for _, p in self.people if p.mobile)

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(p.email for _, p in self.people if p.email)


def recipients(cfg: RoutingConfig, receiver: str, at: float) -> Recipients:
    rec = cfg.receivers[receiver]
    ids: dict[str, None] = {}
    if rec.roster is not None:
        ids.update(dict.fromkeys(on_call(cfg.rosters[rec.roster], at)))
    ids.update(dict.fromkeys(rec.people))
    return Recipients(receiver, tuple((pid, cfg.people[pid]) for pid in ids), rec.channels)
