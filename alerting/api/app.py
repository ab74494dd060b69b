"""The aiohttp application: list/filter, acknowledge, note, close, shelve, maintenance, SSE stream.

401 = no or unknown token, 403 = the role may not do this, 400 = malformed request (with a reason),
404 = no such alert, 409 = the alert's state does not allow it (e.g. close before acknowledge).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from alerting.api.auth import TokenAuth, User
from alerting.api.feed import EventHub, stream
from alerting.api.page import alert_page
from alerting.lifecycle.manager import AlertManager, UnknownAlert
from alerting.lifecycle.model import Alert, InvalidInput, LifecycleError
from alerting.metrics import AlertingMetrics

USER = web.AppKey("user_by_request", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STATES = {"active-unacknowledged", "active-acknowledged", "cleared-unacknowledged", "cleared-acknowledged",
           "closed"}  # fmt: skip
_COLOURS = {"red", "orange", "yellow", "blue", "normal"}


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def _error(status: int, reason: str) -> web.Response:
    response = _json({"error": reason}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="riskwatch"'
    return response


def _view(alert: Alert) -> dict[str, Any]:
    return alert.to_doc()


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        doc = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("body must be a JSON object")
    return doc


def _text(doc: dict[str, Any], name: str, required: bool = False) -> str:
    value = doc.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be a string")
    if required and not value.strip():
        raise InvalidInput(f"`{name}` is required")
    return value


def _time(doc: dict[str, Any], name: str) -> float:
    """ISO 8601 with an offset, or epoch seconds."""
    value = doc.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return moment.timestamp()
    raise InvalidInput(
        f"`{name}` must be epoch seconds or an ISO time with offset, e.g. 2026-11-23T22:00+08:00"
    )


def build_app(
    manager: AlertManager, auth: TokenAuth, hub: EventHub, metrics: AlertingMetrics | None = None
) -> web.Application:
    """The HTTP API over one AlertManager; `/metrics` serves Prometheus text when metrics are given."""

    def guarded(
        action: str, handler: Callable[[web.Request, User], Awaitable[web.StreamResponse]]
    ) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            user = auth.user(request.headers.get("Authorization"))
            if user is None:
                return _error(401, "missing or unknown bearer token")
            if not user.may(action):
                return _error(403, f"role {user.role} may not {action}")
            try:
                return await handler(request, user)
            except UnknownAlert as exc:
                return _error(404, str(exc))
            except InvalidInput as exc:
                return _error(400, str(exc))
            except LifecycleError as exc:
                return _error(409, str(exc))

        return wrapper

    async def list_alerts(request: web.Request, user: User) -> web.Response:
        q = request.query
        state, colour, site = q.get("state"), q.get("colour"), q.get("site")
        if state and state not in _STATES:
            raise InvalidInput(f"unknown state {state!r}; one of {', '.join(sorted(_STATES))}")
        if colour and colour not in _COLOURS:
            raise InvalidInput(f"unknown colour {colour!r}; one of {', '.join(sorted(_COLOURS))}")
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            raise InvalidInput("`limit` must be an integer") from None
        if not 1 <= limit <= 1000:
            raise InvalidInput("`limit` must be between 1 and 1000")
        alerts = manager.store.list_alerts(state=state, site=site, colour=colour, limit=limit)
        return _json({"alerts": [_view(a) for a in alerts]})

    async def get_alert(request: web.Request, user: User) -> web.Response:
        alert_id = request.match_info["id"]
        alert = manager.store.get_alert(alert_id)
        if alert is None:
            raise UnknownAlert(f"no alert {alert_id!r}")
        audit = [orjson.loads(e.to_bytes()) for e in manager.store.events_for(alert_id)]
        return _json({"alert": _view(alert), "audit": audit})

    async def ack(request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        return _json(
            {"alert": _view(manager.acknowledge(request.match_info["id"], user.name, _text(doc, "note")))}
        )

    async def note(request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        alert = manager.add_note(request.match_info["id"], user.name, _text(doc, "note", required=True))
        return _json({"alert": _view(alert)})

    async def close(request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        text = _text(doc, "note")
        if not text.strip():
            raise InvalidInput("closing needs a disposal `note`: what was done and what was found")
        return _json({"alert": _view(manager.close(request.match_info["id"], user.name, text))})

    async def shelve(request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        if "minutes" in doc:
            minutes = doc["minutes"]
            if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
                raise InvalidInput("`minutes` must be a positive number")
            until = manager.clock() + 60.0 * minutes
        else:
            until = _time(doc, "until")
        reason = _text(doc, "reason", required=True)
        return _json({"alert": _view(manager.shelve(request.match_info["id"], user.name, until, reason))})

    async def maintenance(request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        site = _text(doc, "site", required=True)
        window = manager.add_maintenance(
            site,
            _text(doc, "unit"),
            _time(doc, "start"),
            _time(doc, "end"),
            _text(doc, "reason", True),
            user.name,
        )
        return _json({"maintenance": window}, 201)

    async def events(request: web.Request, user: User) -> web.StreamResponse:
        after = request.headers.get("Last-Event-ID") or request.query.get("after")
        try:
            start = int(after) if after is not None else manager.store.last_seq()
        except ValueError:
            raise InvalidInput("Last-Event-ID / `after` must be an event sequence number") from None
        return await stream(request, manager.store, hub, start)

    async def health(request: web.Request) -> web.Response:
        return _json({"ok": True, "outbox": manager.store.outbox_status()})

    async def prometheus(request: web.Request) -> web.Response:
        assert metrics is not None
        for status in ("pending", "delivered", "failed"):
            metrics.outbox.labels(status).set(0)
        for status, count in manager.store.outbox_status().items():
            metrics.outbox.labels(status).set(count)
        metrics.open_alerts.set(manager.store.open_alert_count())
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", health)
    app.router.add_get("/alerts/{id}", alert_page)  # the acknowledge link in every message
    if metrics is not None:
        app.router.add_get("/metrics", prometheus)
    app.router.add_get("/api/alerts", guarded("read", list_alerts))
    app.router.add_get("/api/alerts/{id}", guarded("read", get_alert))
    app.router.add_post("/api/alerts/{id}/ack", guarded("ack", ack))
    app.router.add_post("/api/alerts/{id}/notes", guarded("note", note))
    app.router.add_post("/api/alerts/{id}/close", guarded("close", close))
    app.router.add_post("/api/alerts/{id}/shelve", guarded("shelve", shelve))
    app.router.add_post("/api/maintenance", guarded("maintenance", maintenance))
    app.router.add_get("/api/events", guarded("read", events))
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
