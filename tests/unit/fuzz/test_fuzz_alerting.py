"""Property-based fuzz of alerting's decoders: Kafka records (rw.warnings / rw.alarms), HTTP request
bodies through the real aiohttp app, and routing files. Every input is accepted or refused with a reason
(a dead letter, a 4xx, a ConfigError naming file, field and why); none raises."""

from __future__ import annotations

import asyncio
import datetime
import json
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alerting.api.app import build_app
from alerting.api.auth import TokenAuth, User
from alerting.api.feed import EventHub
from alerting.config import load_config
from alerting.lifecycle.manager import AlertManager
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from riskwatch.errors import ConfigError
from tests.unit.alerting.conftest import BASE_YAML, FakeClock, make_config, warning
from tests.unit.alerting.test_hostile import Pipeline

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def encode(value: Any) -> bytes:
    """JSON as a hostile client writes it: big integers, lone surrogates escaped as \\udXXX."""
    return json.dumps(value, ensure_ascii=True).encode()


# -- Kafka records

VALID = orjson.loads(warning().to_bytes())
FIELDS = [*sorted(VALID), "cause.rule", "cause.items", "cause.text", "cause.items.0.value", "extra"]


def mutate(changes: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    doc = json.loads(json.dumps(VALID))
    for name in dropped:
        doc.pop(name, None)
    for path, value in changes.items():
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:  # an earlier change may have put a scalar or a short list on the path
            if isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            elif isinstance(target, dict):
                target = target.setdefault(part, {})
            else:
                target = None
                break
        if isinstance(target, dict):
            target[last] = value
    return doc


records = (
    st.binary(max_size=300)
    | st.builds(
        lambda changes, dropped: encode(mutate(changes, dropped)),
        st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
        st.lists(st.sampled_from(sorted(VALID)), max_size=2),
    )
    | json_values.map(encode)
)


@FUZZ
@given(raw=records, topic=st.sampled_from(["rw.warnings", "rw.alarms"]))
@example(raw=encode({**VALID, "id": [1]}), topic="rw.warnings")
@example(raw=encode({**VALID, "at": -1e11}), topic="rw.warnings")
@example(raw=encode({**VALID, "entity": "\ud800"}), topic="rw.warnings")
@example(raw=encode({**VALID, "at": 10**30}), topic="rw.warnings")
def test_every_record_is_applied_or_dead_lettered_with_a_reason(raw: bytes, topic: str) -> None:
    p = Pipeline(Path(":memory:"))
    applied = p.ingest(raw, topic=topic)
    letters = p.store.deadletters()
    if applied:
        assert letters == []
        p.dispatcher.step(p.clock())  # whatever was accepted can be rendered and queued
        assert p.store.pending_intents() == [] and p.store.deadletters() == []
    else:
        [letter] = letters
        assert letter.reason in ("malformed_record", "notification_error") and letter.detail
        assert (letter.source, letter.offset, letter.component) == (topic, 7, "alerting")


# -- HTTP request bodies through the real app

TOKENS = {"tok-sup": User("wang", "supervisor")}
body_fields = st.fixed_dictionaries(
    {},
    optional={
        name: json_values | st.text(max_size=2500)
        for name in ("note", "reason", "minutes", "until", "site", "unit", "start", "end")
    },
)
bodies = (
    body_fields.map(encode)
    | json_values.map(encode)
    | st.binary(max_size=200)
    | st.integers(0, 80_000).map(lambda n: encode({"note": "x" * n}))
)
safe_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


class Api:
    """One real app on a loopback test server for the whole fuzz run (starting one per example is slow)."""

    def __init__(self, db: Path) -> None:
        self.loop = asyncio.new_event_loop()
        cfg = make_config()
        self.manager = AlertManager(Store(db), cfg, SiteDirectory(cfg.sites), FakeClock())
        self.manager.handle(warning())
        self.alert_id = self.manager.store.list_alerts()[0].id
        app = build_app(self.manager, TokenAuth(TOKENS), EventHub())

        async def start() -> TestClient:
            client = TestClient(TestServer(app, host="127.0.0.1"))
            await client.start_server()
            return client

        self.client = self.loop.run_until_complete(start())

    def request(self, method: str, path: str, data: bytes | None = None) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            headers = {"Authorization": "Bearer tok-sup"}
            async with self.client.request(method, path, headers=headers, data=data) as response:
                return response.status, orjson.loads(await response.read())

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


def _answered(status: int, doc: Any) -> None:
    assert status in (200, 201, 400, 404, 409, 413, 422), (status, doc)
    if status >= 400:
        assert isinstance(doc["error"], str) and doc["error"]


def test_every_request_body_gets_an_answer_never_a_500(tmp_path: Path) -> None:
    api = Api(tmp_path / "a.db")

    @FUZZ
    @given(
        action=st.sampled_from(["ack", "notes", "close", "shelve", "maintenance"]),
        body=bodies,
        other_id=st.none() | safe_text,
    )
    def check(action: str, body: bytes, other_id: str | None) -> None:
        alert_id = api.alert_id if other_id is None else urllib.parse.quote(other_id, safe="") or "x"
        if alert_id in (".", ".."):  # a dot segment is resolved away by URL normalisation: another path
            alert_id = "x"
        path = "/api/maintenance" if action == "maintenance" else f"/api/alerts/{alert_id}/{action}"
        _answered(*api.request("POST", path, body))

    @FUZZ
    @given(
        query=st.dictionaries(st.sampled_from(["state", "colour", "site", "limit"]), safe_text, max_size=4)
    )
    def check_list(query: dict[str, str]) -> None:
        _answered(*api.request("GET", "/api/alerts?" + urllib.parse.urlencode(query)))

    try:
        check()
        check_list()
        assert api.request("GET", "/api/alerts/%ED%A0%80")[0] == 404
    finally:
        api.close()


# -- routing files

BASE = yaml.safe_load(BASE_YAML)
SECTIONS = [*sorted(BASE), "defaults", "inhibit", "api_tokens"]
yaml_values = json_values | st.dates() | st.times().map(str)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _set(doc: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    target: Any = doc
    for part in path[:-1]:
        nxt = target.get(part) if isinstance(target, dict) else None
        if not isinstance(nxt, dict):
            target[part] = nxt = {}
        target = nxt
    target[path[-1]] = value
    return doc


def _paths(doc: Any, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    out = [list(prefix)] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, str(key)))
    return out


PATHS = _paths(BASE) + [[s] for s in SECTIONS] + [["defaults", "ack_url"], ["defaults", "alarm_colours"]]


def test_every_routing_file_loads_or_is_refused_naming_file_field_and_why(tmp_path: Path) -> None:
    file = tmp_path / "routes.yaml"

    @FUZZ
    @given(
        changes=st.lists(st.tuples(st.sampled_from(PATHS), yaml_values), max_size=3),
        text=st.none() | st.text(max_size=200),
    )
    @example(changes=[], text="[" * 5000)
    @example(changes=[], text="[" * 2000 + "]" * 2000)
    @example(changes=[(["defaults", "ack_url"], "{alert_id:>999999999}")], text=None)
    @example(changes=[(["defaults", "alarm_colours"], 5)], text=None)
    @example(changes=[(["route", "group_wait"], float("inf"))], text=None)
    @example(changes=[(["receivers", "officer", "channels"], datetime.date(2000, 1, 1))], text=None)
    def check(changes: list[tuple[list[str], Any]], text: str | None) -> None:
        doc = json.loads(json.dumps(BASE))
        for path, value in changes:
            _set(doc, path, value)
        if text is None:
            text = yaml.dump(doc, Dumper=DUMPER, allow_unicode=True)
        file.write_text(text, "utf-8", "surrogatepass")
        try:
            load_config(file)
        except ConfigError as exc:
            assert exc.file == str(file) and exc.path and exc.reason

    check()
