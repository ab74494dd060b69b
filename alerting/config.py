"""The routing YAML: schema (frozen pydantic models), cross-reference checks and secret resolution.

Every reference (route -> receiver, receiver -> roster/channel/person, route -> escalation policy) is
checked at load time and reported as ConfigError(file, path, reason). Secrets are referenced by the
NAME of an environment variable and resolved only in `resolve_secrets`, the one reader of the environment.
"""

from __future__ import annotations

import math
import re
import string
import urllib.parse
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerting.channels import channel_module
from alerting.channels.base import ChannelSettings
from riskwatch.errors import ConfigError
from riskwatch.levels import Colour
from riskwatch.secrets import remember

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Role = Literal["duty_officer", "supervisor", "viewer"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """'30s', '5m', '2h', '1d' or a number of seconds -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif (match := _DURATION.match(str(value))) is not None:
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ValueError(f"not a duration: {str(value)[:100]!r} (use e.g. 30s, 5m, 2h)")
    if not 0 <= seconds < 1e12:  # .inf, .nan, negative or beyond any calendar
        raise ValueError(f"not a usable duration: {str(value)[:100]!r} (use e.g. 30s, 5m, 2h)")
    return seconds


def _colour(value: Any) -> Colour:
    return value if isinstance(value, Colour) else Colour.parse(str(value))


def _strs(value: Any) -> tuple[str, ...]:
    """A name or a list of names; anything else is a ValueError (pydantic reports it with its path)."""
    if value is None:
        return ()
    if isinstance(value, str | int):
        return (str(value),)
    if isinstance(value, list | tuple) and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise ValueError(f"must be a name or a list of names, not {str(value)[:100]!r}")


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Person(_Model):
    name: str
    mobile: str = ""
    email: str = ""


class Shift(_Model):
    """On call on `days` from `start` to `end`; end < start crosses midnight; end == start: all day."""

    people: tuple[str, ...]
    days: tuple[Weekday, ...] = WEEKDAYS
    start: time = time(0, 0)
    end: time = time(0, 0)

    @field_validator("people", "days", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> tuple[str, ...]:
        return _strs(v)


class Roster(_Model):
    timezone: str = "Asia/Shanghai"
    shifts: tuple[Shift, ...]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class Receiver(_Model):
    """Who (a roster's on-call people and/or named people) on which channels."""

    roster: str | None = None
    people: tuple[str, ...] = ()
    channels: tuple[str, ...]

    @field_validator("people", "channels", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> tuple[str, ...]:
        return _strs(v)


class Tier(_Model):
    receiver: str
    after: float  # seconds without acknowledgement before this tier is notified

    @field_validator("after", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)


class EscalationPolicy(_Model):
    """Tiers notified in turn while unacknowledged; `loops` extra rounds after the last tier."""

    tiers: tuple[Tier, ...]
    loops: int = Field(default=0, ge=0)
    min_colour: Colour = Colour.ORANGE  # red and orange alerts escalate
    ack_timeout: float | None = None  # acknowledged but not closed: re-notify after this

    @field_validator("min_colour", mode="before")
    @classmethod
    def _col(cls, v: Any) -> Colour:
        return _colour(v)

    @field_validator("ack_timeout", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)


class Match(_Model):
    """Empty tuple = any. Industry comes from the site registry, else from the `sites:` labels."""

    region: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    industry: tuple[str, ...] = ()

    @field_validator("region", "site", "industry", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> tuple[str, ...]:
        return _strs(v)


class RouteSpec(_Model):
    """One node of the routing tree as written; unset fields inherit from the parent."""

    name: str | None = None
    match: Match = Match()
    min_colour: Colour | None = None
    receiver: str | None = None
    escalation: str | None = None
    group_by: tuple[str, ...] | None = None
    group_wait: float | None = None
    group_interval: float | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: tuple[RouteSpec, ...] = ()

    @field_validator("min_colour", mode="before")
    @classmethod
    def _col(cls, v: Any) -> Colour | None:
        return None if v is None else _colour(v)

    @field_validator("group_wait", "group_interval", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)

    @field_validator("group_by", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> tuple[str, ...] | None:
        return None if v is None else _strs(v)


class SiteLabels(_Model):
    """Fallback site facts when no site registry is given."""

    name: str = ""
    region: str = ""
    industry: str = ""


class InhibitRule(_Model):
    """An open alert matching `source` mutes alerts matching `target` that share the `equal` fields."""

    source_entity_types: tuple[str, ...] = ("site",)
    source_min_colour: Colour = Colour.RED
    target_entity_types: tuple[str, ...] = ("unit", "sensor")
    equal: tuple[str, ...] = ("site",)

    @field_validator("source_min_colour", mode="before")
    @classmethod
    def _col(cls, v: Any) -> Colour:
        return _colour(v)


class Scope(_Model):
    """What a user sees and acts on: these regions and these sites; both empty = the whole province."""

    regions: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()


class ApiToken(_Model):
    """A person or system that uses the API and the board: by token, by password, or both."""

    user: str
    role: Role
    token_env: str | None = None  # names the variable holding the bearer token
    password_env: str | None = (
        None  # names the variable holding a password hash (python -m alerting.board.passwords)
    )
    scope: Scope = Scope()

    @model_validator(mode="after")
    def _some_credential(self) -> ApiToken:
        if not self.token_env and not self.password_env:
            raise ValueError("give `token_env`, `password_env` or both")
        return self


class Defaults(_Model):
    language: Literal["zh", "en"] = "zh"
    ack_url: str = "https://127.0.0.1:8080/alerts/{alert_id}"
    # DEFAULT mapping of sensor alarm states to a colour for routing (no public rule exists).
    alarm_colours: dict[str, Colour] = Field(
        default_factory=lambda: {
            "l1_high": Colour.BLUE,
            "l1_low": Colour.BLUE,
            "l2_high": Colour.YELLOW,
            "l2_low": Colour.YELLOW,
            "fault": Colour.BLUE,
            "stale": Colour.BLUE,
        }
    )
    retry_initial: float = 1.0
    retry_max: float = 300.0
    max_attempts: int = 50

    @field_validator("alarm_colours", mode="before")
    @classmethod
    def _cols(cls, v: Any) -> dict[str, Colour]:
        if not isinstance(v, dict):
            raise ValueError("must be a mapping of alarm state to colour")
        return {str(k): _colour(c) for k, c in v.items()}

    @field_validator("ack_url")
    @classmethod
    def _link(cls, v: str) -> str:
        # Checked here so that a mistake fails at load time, not when a message is rendered.
        try:
            fields = [(n, spec, conv) for _, n, spec, conv in string.Formatter().parse(v) if n is not None]
        except ValueError as exc:
            raise ValueError(f"not a link template: {exc}") from None
        if any(n not in ("alert_id", "site") or spec or conv for n, spec, conv in fields):
            raise ValueError("only {alert_id} and {site} may be filled in, as they are")
        # A duty officer opens it on a phone, over networks riskwatch does not control, and logs in there.
        parts = urllib.parse.urlsplit(v.replace("{", "").replace("}", ""))
        if parts.scheme != "https" and (parts.scheme != "http" or parts.hostname not in LOOPBACK_NAMES):
            raise ValueError("must be an https:// link (plain http only for localhost, to try things out)")
        return v

    @field_validator("retry_initial", "retry_max", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)


class RoutingConfig(_Model):
    """The whole routing file, validated and cross-checked."""

    defaults: Defaults = Defaults()
    people: dict[str, Person] = {}
    rosters: dict[str, Roster] = {}
    channels: dict[str, ChannelSettings] = {}
    receivers: dict[str, Receiver]
    escalation_policies: dict[str, EscalationPolicy] = {}
    route: RouteSpec
    inhibit: tuple[InhibitRule, ...] = (InhibitRule(),)
    sites: dict[str, SiteLabels] = {}
    api_tokens: tuple[ApiToken, ...] = ()


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top)"


def _check_channels(file: str, raw: Any) -> dict[str, ChannelSettings]:
    if not isinstance(raw, dict):
        raise ConfigError(file, "channels", "must be a mapping of channel name to settings")
    out: dict[str, ChannelSettings] = {}
    for name, body in raw.items():
        path = f"channels.{name}"
        if not isinstance(body, dict) or "type" not in body:
            raise ConfigError(file, path, "needs a `type:` (webhook, dingtalk, wecom, feishu, email, sms)")
        try:
            model = channel_module(str(body["type"])).Settings
        except KeyError as exc:
            raise ConfigError(file, f"{path}.type", str(exc.args[0])) from None
        try:
            out[str(name)] = model.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = f"{path}.{_loc(err['loc'])}" if err["loc"] else path
            raise ConfigError(file, where, err["msg"].removeprefix("Value error, ")) from None
    return out


def _check_refs(file: str, cfg: RoutingConfig) -> None:
    def need(kind: str, table: Mapping[str, Any], name: str | None, path: str) -> None:
        if name is not None and name not in table:
            known = ", ".join(sorted(table)) or "none defined"
            raise ConfigError(file, path, f"unknown {kind} {name!r} (known: {known})")

    for rname, roster in cfg.rosters.items():
        for i, shift in enumerate(roster.shifts):
            for person in shift.people:
                need("person", cfg.people, person, f"rosters.{rname}.shifts[{i}].people")
    for name, rec in cfg.receivers.items():
        need("roster", cfg.rosters, rec.roster, f"receivers.{name}.roster")
        for person in rec.people:
            need("person", cfg.people, person, f"receivers.{name}.people")
        for channel in rec.channels:
            need("channel", cfg.channels, channel, f"receivers.{name}.channels")
    for name, policy in cfg.escalation_policies.items():
        for i, tier in enumerate(policy.tiers):
            need("receiver", cfg.receivers, tier.receiver, f"escalation_policies.{name}.tiers[{i}].receiver")

    def walk(route: RouteSpec, path: str) -> None:
        need("receiver", cfg.receivers, route.receiver, f"{path}.receiver")
        need("escalation policy", cfg.escalation_policies, route.escalation, f"{path}.escalation")
        for i, child in enumerate(route.routes):
            walk(child, f"{path}.routes[{i}]")

    if cfg.route.receiver is None:
        raise ConfigError(file, "route.receiver", "the root route needs a receiver (the default)")
    walk(cfg.route, "route")


def parse_config(raw: Any, file: str = "<routes>") -> RoutingConfig:
    """Validate an already-parsed YAML document."""
    if not isinstance(raw, dict):
        raise ConfigError(file, "(top)", "expected a mapping with receivers: and route:")
    doc = dict(raw)
    channels = _check_channels(file, doc.pop("channels", {}) or {})
    try:
        cfg = RoutingConfig.model_validate({**doc, "channels": {}})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(file, _loc(err["loc"]), err["msg"].removeprefix("Value error, ")) from None
    cfg = cfg.model_copy(update={"channels": channels})
    _check_refs(file, cfg)
    return cfg


# libyaml's safe loader when present: linear on hostile nesting where the pure-Python one is quadratic.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_config(path: Path | str) -> RoutingConfig:
    """Read and check a routing YAML file."""
    file = str(path)
    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LOADER)
    except OSError as exc:
        raise ConfigError(file, "(file)", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "(file)", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, "(yaml)", f"not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(file, "(yaml)", "not valid YAML: nested too deeply") from None
    return parse_config(raw, file)


class Secret:
    """A resolved secret; prints as *** so it never lands in logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class Secrets:
    """Secrets by config path ('channels.NAME', 'api_tokens.USER'); redacted when printed."""

    def __init__(self, values: Mapping[str, Secret]) -> None:
        self._values = dict(values)

    def get(self, key: str) -> str | None:
        secret = self._values.get(key)
        return None if secret is None else secret.reveal()

    def __repr__(self) -> str:
        return f"Secrets({', '.join(f'{k}=***' for k in sorted(self._values))})"


def resolve_secrets(cfg: RoutingConfig, environ: Mapping[str, str], file: str = "<routes>") -> Secrets:
    """The one place secrets are read from the environment; a missing variable is a ConfigError."""
    wanted: dict[str, tuple[str, str]] = {}
    for name, channel in cfg.channels.items():
        if channel.secret_env:
            wanted[f"channels.{name}"] = (f"channels.{name}.secret_env", channel.secret_env)
        if url_env := getattr(channel, "url_env", None):
            wanted[f"channels.{name}.url"] = (f"channels.{name}.url_env", url_env)
    for i, token in enumerate(cfg.api_tokens):
        if token.token_env:
            wanted[f"api_tokens.{token.user}"] = (f"api_tokens[{i}].token_env", token.token_env)
        if token.password_env:
            wanted[f"passwords.{token.user}"] = (f"api_tokens[{i}].password_env", token.password_env)
    values: dict[str, Secret] = {}
    for key, (path, env_name) in wanted.items():
        value = environ.get(env_name)
        if not value:
            raise ConfigError(file, path, f"environment variable {env_name} is not set or empty")
        values[key] = Secret(value)
        remember(value)  # never in a log line of this process (riskwatch.secrets.install_log_redaction)
    return Secrets(values)
