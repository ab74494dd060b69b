"""The aiohttp application: list/filter, acknowledge, note, close, shelve, maintenance, SSE stream.

401 = no or unknown token, 403 = the role may not do this, 400 = malformed request (with a reason),
404 = no such alert, 409 = the alert's state does not allow it (e.g. close before acknowledge),
413 = body over MAX_BODY_BYTES, 422 = a text over its length limit. Every request is one guarded step:
whatever goes wrong inside it is answered (500 with a reason at worst) and never stops the service.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from alerting.api.auth import SESSION_COOKIE, SESSION_S, Sessions, TokenAuth, User
from alerting.api.feed import EventHub, stream
from alerting.api.history import registry_scope
from alerting.api.history import routes as history_routes
from alerting.api.page import ALERT_ID, alert_page
from alerting.deadletters import store_failed
from alerting.health import Health
from alerting.lifecycle.manager import AlertManager, UnknownAlert
from alerting.lifecycle.model import MAX_NOTE_CHARS, Alert, InvalidInput, LifecycleError
from alerting.metrics import AlertingMetrics
from riskwatch.wire.deadletter import safe_text

log = logging.getLogger("riskwatch.alerting")

USER = web.AppKey("user_by_request", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STATES = {"active-unacknowledged", "active-acknowledged", "cleared-unacknowledged", "cleared-acknowledged",
           "closed"}  # fmt: skip
_COLOURS = {"red", "orange", "yellow", "blue", "normal"}
# Bounds on what a request may carry: every text ends up in the store and in an audit event on rw.alerts.
MAX_BODY_BYTES = 64 * 1024
MAX_ID_CHARS = 200  # site and unit ids
MAX_SHELVE_S = 30 * 86400.0
MAX_MAINTENANCE_S = 366 * 86400.0
MAX_EPOCH = 4_102_444_800.0  # 2100-01-01: later "times" are mistakes
MAX_SEQ = 2**62
# Password guessing: after this many failures for one user name, its password logins wait out the lock.
LOGIN_FAILURES = 5
LOGIN_LOCK_S = 300.0


class OutOfScope(Exception):
    """The alert or site is outside the user's scope (HTTP 403)."""


class TooLarge(InvalidInput):
    """The request body is over MAX_BODY_BYTES (HTTP 413)."""


class TooLong(InvalidInput):
    """A text field is over its length limit (HTTP 422)."""


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
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"request body is over {MAX_BODY_BYTES} bytes") from None
    try:
        doc = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("body must be a JSON object")
    return doc


def _text(doc: dict[str, Any], name: str, required: bool = False, limit: int = MAX_NOTE_CHARS) -> str:
    value = doc.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be a string")
    if len(value) > limit:
        raise TooLong(f"`{name}` is {len(value)} characters; at most {limit}")
    if required and not value.strip():
        raise InvalidInput(f"`{name}` is required")
    return value


def _time(doc: dict[str, Any], name: str) -> float:
    """ISO 8601 with an offset, or epoch seconds."""
    value = doc.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch(name, value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return _epoch(name, moment.timestamp())
        except (ValueError, OverflowError):
            pass
    raise InvalidInput(
        f"`{name}` must be epoch seconds or an ISO time with offset, e.g. 2026-11-23T22:00+08:00"
    )


def _epoch(name: str, value: float) -> float:
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not 0 <= seconds <= MAX_EPOCH:
        raise InvalidInput(f"`{name}` is out of range (epoch seconds between 0 and {MAX_EPOCH:.0f})")
    return seconds


def _alert_id(request: web.Request) -> str:
    """The alert id in the path; anything that is not an id cannot name an alert."""
    alert_id = request.match_info["id"]
    if not ALERT_ID.fullmatch(alert_id):
        raise UnknownAlert(f"no alert {safe_text(alert_id, 200)!r}")
    return alert_id


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The last guard of every request: an unexpected error is answered, logged and left behind."""
    try:
        return await handler(request)
    except web.HTTPException as exc:  # the router's own 404/405/413: answered as JSON like the rest
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
    except Exception as exc:
        if store_failed(exc):
            log.error("store failed answering %s %s: %r", request.method, safe_text(request.path, 200), exc)
            return _error(503, f"the alert store is unavailable: {safe_text(exc, 200)}")
        log.exception("error answering %s %s", request.method, safe_text(request.path, 200))
        return _error(500, f"internal error: {type(exc).__name__}")


# No inline script anywhere (pages load their scripts from /board/static); styles may be set inline
# because the chart library positions its tooltips with style attributes. No framing: no clickjacking.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.secure:  # browsers that once reached the board over HTTPS never fall back to HTTP
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _same_origin(request: web.Request) -> bool:
    """A browser's POST names its page's origin; it must be this host (absent: not a browser)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin in (f"http://{request.host}", f"https://{request.host}")


def build_app(
    manager: AlertManager,
    auth: TokenAuth,
    hub: EventHub,
    metrics: AlertingMetrics | None = None,
    health: Health | None = None,
    board: Any | None = None,
    history: Any | None = None,
    registry: Any | None = None,
) -> web.Application:
    """The HTTP API over one AlertManager; `/metrics` serves Prometheus text when metrics are given
    (give none to serve them on a separate address with `metrics_app`);
    `/healthz` is unhealthy (503) once one of the service's tasks in `health` has died. With a `board`
    (alerting.board.web.Board) it serves the monitoring-centre board and browser sessions too. `history`
    (alerting.history.influx.InfluxHistory) and the site `registry` serve /api/history/*."""
    sessions = Sessions(manager.store, auth, manager.clock)
    gate = Gate(manager, auth, sessions, board)
    guarded = gate.guarded
    alerts = AlertRoutes(manager, hub, board)
    logins = LoginRoutes(manager, auth, sessions)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_headers, _guard])
    app.router.add_get("/healthz", _healthz(manager, health))
    app.router.add_post("/api/login", logins.login)
    app.router.add_post("/api/logout", logins.logout)
    app.router.add_get("/api/me", guarded("read", logins.me))
    if board is not None:
        app.router.add_get("/alerts/{id}", _desk_link)  # the acknowledge link in every message
        app.router.add_routes(board.routes(guarded))
    else:
        app.router.add_get("/alerts/{id}", alert_page)
    if metrics is not None:
        app.router.add_get("/metrics", _prometheus(manager, metrics))
    app.router.add_get("/api/alerts", guarded("read", alerts.list_alerts))
    app.router.add_get("/api/alerts/{id}", guarded("read", alerts.get_alert))
    app.router.add_post("/api/alerts/{id}/ack", guarded("ack", alerts.ack))
    app.router.add_post("/api/alerts/{id}/notes", guarded("note", alerts.note))
    app.router.add_post("/api/alerts/{id}/close", guarded("close", alerts.close))
    app.router.add_post("/api/alerts/{id}/shelve", guarded("shelve", alerts.shelve))
    app.router.add_post("/api/maintenance", guarded("maintenance", alerts.maintenance))
    app.router.add_get("/api/events", guarded("read", alerts.events))
    app.router.add_routes(
        history_routes(guarded, manager.store.path, history, registry_scope(registry), _time)
    )
    return app


def _no_board_region(site: str, fallback: str = "") -> str:
    return fallback


class Gate:
    """Who is asking (bearer token or session cookie with its CSRF token), and whether they may."""

    def __init__(self, manager: AlertManager, auth: TokenAuth, sessions: Sessions, board: Any | None) -> None:
        self.manager, self.auth, self.sessions, self.board = manager, auth, sessions, board

    def authenticate(self, request: web.Request) -> tuple[User | None, str]:
        """The user, by bearer token or by session cookie; for a POST with a cookie, why it is refused."""
        if "Authorization" in request.headers:
            return self.auth.user(request.headers.get("Authorization")), ""
        found = self.sessions.lookup(request.cookies.get(SESSION_COOKIE))
        if found is None:
            return None, ""
        user, csrf = found
        if request.method not in ("GET", "HEAD"):
            given = request.headers.get("X-CSRF-Token", "")
            if not _same_origin(request) or not hmac.compare_digest(given.encode(), csrf.encode()):
                return user, "missing or wrong X-CSRF-Token (or a foreign Origin) for a session request"
        return user, ""

    def in_scope(self, user: User, alert_id: str) -> None:
        alert = self.manager.store.get_alert(alert_id)
        if alert is None:
            raise UnknownAlert(f"no alert {alert_id!r}")
        region = alert.region or (self.board.region_of(alert.site) if self.board is not None else "")
        if not user.sees(alert.site, region):
            raise OutOfScope(f"alert {alert_id} is at site {alert.site}, not in your scope")

    def guarded(
        self,
        action: str,
        handler: Callable[[web.Request, User], Awaitable[web.StreamResponse]],
    ) -> Handler:
        """`handler` behind authentication, the role's permission for `action` and the alert's scope;
        the lifecycle's refusals answered with their HTTP status."""

        async def wrapper(request: web.Request) -> web.StreamResponse:
            user, refused = self.authenticate(request)
            if user is None:
                if SESSION_COOKIE in request.cookies and "Authorization" not in request.headers:
                    return _error(401, "unknown or expired session: log in again")
                return _error(401, "missing or unknown bearer token")
            if refused:
                return _error(403, refused)
            if not user.may(action):
                return _error(403, f"role {user.role} may not {action}")
            if "id" in request.match_info and request.path.startswith("/api/alerts/"):
                try:
                    self.in_scope(user, _alert_id(request))
                except UnknownAlert as exc:
                    return _error(404, str(exc))
                except OutOfScope as exc:
                    return _error(403, str(exc))
            try:
                return await handler(request, user)
            except UnknownAlert as exc:
                return _error(404, str(exc))
            except TooLarge as exc:
                return _error(413, str(exc))
            except TooLong as exc:
                return _error(422, str(exc))
            except InvalidInput as exc:
                return _error(400, str(exc))
            except LifecycleError as exc:
                return _error(409, str(exc))
            except OutOfScope as exc:
                return _error(403, str(exc))

        return wrapper


class AlertRoutes:
    """The alert desk's API: list and read alerts, acknowledge, note, close, shelve; maintenance windows;
    the SSE stream of lifecycle events, each limited to the user's scope."""

    def __init__(self, manager: AlertManager, hub: EventHub, board: Any | None) -> None:
        self.manager, self.hub = manager, hub
        self.region_of = board.region_of if board is not None else _no_board_region

    async def list_alerts(self, request: web.Request, user: User) -> web.Response:
        q = request.query
        state, colour, site = q.get("state"), q.get("colour"), q.get("site")
        if site is not None and len(site) > MAX_ID_CHARS:
            raise TooLong(f"`site` is {len(site)} characters; at most {MAX_ID_CHARS}")
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
        allow = None
        if not user.whole_province:
            region_of = self.region_of
            allow = lambda a: user.sees(a.site, a.region or region_of(a.site))  # noqa: E731
        alerts = self.manager.store.list_alerts(
            state=state, site=site, colour=colour, limit=limit, allow=allow
        )
        return _json({"alerts": [_view(a) for a in alerts]})

    async def get_alert(self, request: web.Request, user: User) -> web.Response:
        alert_id = _alert_id(request)
        alert = self.manager.store.get_alert(alert_id)
        if alert is None:
            raise UnknownAlert(f"no alert {alert_id!r}")
        audit = [orjson.loads(e.to_bytes()) for e in self.manager.store.events_for(alert_id)]
        return _json({"alert": _view(alert), "audit": audit})

    async def ack(self, request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        return _json(
            {"alert": _view(self.manager.acknowledge(_alert_id(request), user.name, _text(doc, "note")))}
        )

    async def note(self, request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        alert = self.manager.add_note(_alert_id(request), user.name, _text(doc, "note", required=True))
        return _json({"alert": _view(alert)})

    async def close(self, request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        text = _text(doc, "note")
        if not text.strip():
            raise InvalidInput("closing needs a disposal `note`: what was done and what was found")
        return _json({"alert": _view(self.manager.close(_alert_id(request), user.name, text))})

    async def shelve(self, request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        if "minutes" in doc:
            minutes = doc["minutes"]
            longest = MAX_SHELVE_S / 60
            if (
                not isinstance(minutes, int | float)
                or isinstance(minutes, bool)
                or not 0 < minutes <= longest
            ):
                raise InvalidInput(f"`minutes` must be a positive number, at most {longest:.0f}")
            until = self.manager.clock() + 60.0 * minutes
        else:
            until = _time(doc, "until")
            if until - self.manager.clock() > MAX_SHELVE_S:
                raise InvalidInput(f"`until` is more than {MAX_SHELVE_S / 86400:.0f} days away")
        reason = _text(doc, "reason", required=True)
        return _json({"alert": _view(self.manager.shelve(_alert_id(request), user.name, until, reason))})

    async def maintenance(self, request: web.Request, user: User) -> web.Response:
        doc = await _body(request)
        site = _text(doc, "site", required=True, limit=MAX_ID_CHARS)
        if not user.sees(site, self.region_of(site)):
            raise OutOfScope(f"site {site} is not in your scope")
        unit = _text(doc, "unit", limit=MAX_ID_CHARS)
        start, end = _time(doc, "start"), _time(doc, "end")
        if end - start > MAX_MAINTENANCE_S:
            raise InvalidInput(f"a maintenance window lasts at most {MAX_MAINTENANCE_S / 86400:.0f} days")
        window = self.manager.add_maintenance(site, unit, start, end, _text(doc, "reason", True), user.name)
        return _json({"maintenance": window}, 201)

    async def events(self, request: web.Request, user: User) -> web.StreamResponse:
        after = request.headers.get("Last-Event-ID") or request.query.get("after")
        if after is None:
            start = self.manager.store.last_seq()
        else:
            try:
                start = int(after) if len(after) <= 20 else -1
            except ValueError:
                start = -1
            if not 0 <= start <= MAX_SEQ:
                raise InvalidInput("Last-Event-ID / `after` must be an event sequence number")
        if user.whole_province:
            return await stream(request, self.manager.store, self.hub, start)
        region_of = self.region_of
        seen: dict[str, bool] = {}

        def visible(alert_id: str) -> bool:
            if alert_id not in seen:
                alert = self.manager.store.get_alert(alert_id)
                seen[alert_id] = alert is not None and user.sees(
                    alert.site, alert.region or region_of(alert.site)
                )
            return seen[alert_id]

        return await stream(request, self.manager.store, self.hub, start, visible)


class LoginRoutes:
    """Browser sessions: log in (token, user + password, or a one-time link), who am I, log out."""

    def __init__(self, manager: AlertManager, auth: TokenAuth, sessions: Sessions) -> None:
        self.clock, self.auth, self.sessions = manager.clock, auth, sessions
        self.failed_logins: dict[str, list[float]] = {}  # user name -> times of recent failed password logins

    async def login(self, request: web.Request) -> web.Response:
        """Token, user + password, or a one-time link's secret -> a session cookie and its CSRF token."""
        if not _same_origin(request):
            return _error(403, "login from a foreign origin")
        try:
            doc = await _body(request)
            once, token = _text(doc, "once", limit=200), _text(doc, "token", limit=200)
            name, password = _text(doc, "user", limit=200), _text(doc, "password", limit=200)
        except InvalidInput as exc:
            return _error(400, str(exc))
        user = None
        if once:
            user = self.sessions.use_login_link(once)
        elif token:
            user = self.auth.by_token(token)
        elif name and password:
            user, locked = await self.password_login(name, password)
            if locked:
                return _error(429, locked)
        if user is None:
            log.info("board login refused (%s)", "link" if once else "token" if token else "password")
            return _error(401, "unknown token, user or password, or a used or expired link")
        key, csrf = self.sessions.open(user)
        log.info("board login: %s (%s)", user.name, user.role)
        response = _json({"user": user.name, "role": user.role, "csrf": csrf})
        response.set_cookie(
            SESSION_COOKIE, key, max_age=int(SESSION_S), path="/", httponly=True, samesite="Strict",
            secure=request.secure,
        )  # fmt: skip
        return response

    async def me(self, request: web.Request, user: User) -> web.Response:
        found = self.sessions.lookup(request.cookies.get(SESSION_COOKIE))
        csrf = found[1] if found is not None else ""
        return _json({"user": user.name, "role": user.role, "actions": user.actions(), "csrf": csrf})

    async def logout(self, request: web.Request) -> web.Response:
        if not _same_origin(request):
            return _error(403, "logout from a foreign origin")
        self.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = _json({"ok": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def password_login(self, name: str, password: str) -> tuple[User | None, str]:
        """The user for this name and password, or why they must wait: a name with LOGIN_FAILURES recent
        failures is locked for LOGIN_LOCK_S, whatever password comes next."""
        now = self.clock()
        recent = [t for t in self.failed_logins.get(name, []) if now - t < LOGIN_LOCK_S]
        self.failed_logins[name] = recent
        if len(recent) >= LOGIN_FAILURES:
            wait = LOGIN_LOCK_S - (now - recent[0])
            return None, f"too many failed logins for this user; try again in {wait:.0f} s"
        # scrypt costs tens of milliseconds: off the event loop that also consumes and notifies.
        user = await asyncio.to_thread(self.auth.by_password, name, password)
        if user is None:
            recent.append(now)
            if len(self.failed_logins) > 10_000:  # bounded, whatever names are tried
                self.failed_logins.clear()
        return user, ""


async def _desk_link(request: web.Request) -> web.StreamResponse:
    """The acknowledge link in every message: the board's desk at that alert."""
    alert_id = request.match_info["id"]
    if not ALERT_ID.fullmatch(alert_id):
        return _error(400, "not an alert id")
    raise web.HTTPFound(f"/board/#desk/{alert_id}")


def _healthz(manager: AlertManager, health: Health | None) -> Handler:
    async def healthz(request: web.Request) -> web.Response:
        tasks = health.tasks if health is not None else {}
        ok = health is None or health.ok
        try:
            outbox: dict[str, int] | str = manager.store.outbox_status()
        except Exception as exc:
            if not store_failed(exc):
                raise
            ok, outbox = False, f"store unavailable: {safe_text(exc, 200)}"
        return _json({"ok": ok, "tasks": tasks, "outbox": outbox}, 200 if ok else 503)

    return healthz


def _prometheus(manager: AlertManager, metrics: AlertingMetrics) -> Handler:
    async def prometheus(request: web.Request) -> web.Response:
        for status in ("pending", "delivered", "failed"):
            metrics.outbox.labels(status).set(0)
        for status, count in manager.store.outbox_status().items():
            metrics.outbox.labels(status).set(count)
        metrics.open_alerts.set(manager.store.open_alert_count())
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    return prometheus


def metrics_app(manager: AlertManager, metrics: AlertingMetrics) -> web.Application:
    """Only `/metrics`, for a separate (internal) address: the API's port then does not serve them."""
    app = web.Application(middlewares=[_headers, _guard])
    app.router.add_get("/metrics", _prometheus(manager, metrics))
    return app


async def serve(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Listen on host:port, over TLS when `ssl_context` is given."""
    # SSE streams never end by themselves: a stopping (or failed) service waits at most 5 s for requests.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    return runner
