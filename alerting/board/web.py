"""The monitoring-centre board: pages, its JSON views and its live feed, inside alerting's HTTP app.

Pages and scripts are static files (no inline script: the Content-Security-Policy forbids it); every
datum comes from the JSON views below, each filtered to the user's scope. The live feed merges two
ordered logs of the store, alert audit events and level changes, under one event id `A.L` (the last
sequence number of each), so a reconnecting EventSource resumes both exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from alerting.api.auth import User
from alerting.api.feed import KEEPALIVE_S, EventHub
from alerting.lifecycle.model import Alert
from alerting.store import Store
from alerting.store.sqlite import LevelRow
from riskwatch.levels import Colour
from riskwatch.picture import STATIC_GRADE_LETTER, picture_table

ASSETS = Path(__file__).parent / "assets"
# Files of pinned npm packages the pages load, by the name they are served under (nothing else is served
# from node_modules).
VENDOR = {"echarts.min.js": "echarts/dist/echarts.min.js"}
PAGES = {"index.html", "login.html", "board.js", "login.js", "board.css"}
WINDOWS_H = (3, 6, 24, 48)
PICTURE = picture_table()
HISTORY_S = max(WINDOWS_H) * 3600.0 + 3600.0  # level changes kept for the windows
_CURSOR = re.compile(r"(\d{1,18})\.(\d{1,18})")
_SITE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,119}")

Handler = Callable[[web.Request, User], Awaitable[web.StreamResponse]]


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def worst(labels: list[str]) -> str:
    best = Colour.NORMAL
    for label in labels:
        with contextlib.suppress(ValueError):
            best = max(best, Colour.parse(label))
    return best.label


class Board:
    """What the board knows besides the store: the registry's sites and regions and the map geometry."""

    def __init__(
        self,
        store: Store,
        hub: EventHub,
        registry: Any | None = None,
        geometry: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.hub, self.registry, self.geometry, self.clock = store, hub, registry, geometry, clock
        self._sites: dict[str, dict[str, Any]] = {}
        self._regions: dict[str, dict[str, Any]] = {}
        self._gateway_sensors: dict[str, list[str]] = {}
        self._sensor_gateway: dict[str, str] = {}
        if registry is not None:
            self._index(registry)
        self._map_bytes = orjson.dumps(geometry or {"type": "FeatureCollection", "features": []})

    def _index(self, registry: Any) -> None:
        for region in registry.regions.values():
            self._regions[region.id] = {"id": region.id, "name": region.name or region.id}
        units: dict[str, list[dict[str, Any]]] = {}
        for unit in registry.units.values():
            units.setdefault(unit.site, []).append(
                {"id": unit.id, "name": unit.name or unit.id, "kind": unit.kind}
            )
        gateways: dict[str, list[str]] = {}
        for gateway in registry.gateways.values():
            gateways.setdefault(gateway.site, []).append(gateway.id)
        for sensor in registry.sensor_list:
            self._gateway_sensors.setdefault(sensor.gateway, []).append(sensor.id)
            self._sensor_gateway[sensor.id] = sensor.gateway
        for site in registry.sites.values():
            self._sites[site.id] = {
                "id": site.id, "name": site.name or site.id, "region": site.region,
                "region_name": self._regions.get(site.region, {}).get("name", site.region),
                "industry": site.industry, "static": site.static_grade or "",
                "grade": STATIC_GRADE_LETTER.get(site.static_grade or "", ""), "score": site.static_score,
                "lat": site.lat, "lon": site.lon, "units": units.get(site.id, []),
                "gateways": gateways.get(site.id, []),
                "gateway_sizes": {g: len(self._gateway_sensors.get(g, [])) for g in gateways.get(site.id, [])},
            }  # fmt: skip

    def region_of(self, site: str, fallback: str = "") -> str:
        found = self._sites.get(site)
        return found["region"] if found is not None else fallback

    def sees_alert(self, user: User, alert: Alert) -> bool:
        return user.sees(alert.site, alert.region or self.region_of(alert.site))

    def sees_row(self, user: User, row: LevelRow) -> bool:
        return user.sees(row.site, row.region or self.region_of(row.site))

    def row_doc(self, row: LevelRow) -> dict[str, Any]:
        """A level for the page; a sensor's carries its gateway (all of a gateway's sensors stale = offline)."""
        doc = row.to_doc()
        if row.entity_type == "sensor":
            doc["gateway"] = self._sensor_gateway.get(row.entity, "")
        return doc

    def sites_for(self, user: User) -> list[dict[str, Any]]:
        return [s for s in self._sites.values() if user.sees(s["id"], s["region"])]

    # -- views
    def routes(self, guarded: Callable[[str, Handler], Any]) -> list[web.RouteDef]:
        return [
            web.get("/", self.home),
            web.get("/board", self.home),
            web.get("/favicon.ico", self.no_icon),
            web.get("/board/", self.page("index.html")),
            web.get("/board/login", self.page("login.html")),
            web.get("/board/static/{name}", self.static),
            web.get("/board/vendor/{name}", self.vendor),
            web.get("/api/board/map.json", guarded("read", self.map_json)),
            web.get("/api/board/state", guarded("read", self.state)),
            web.get("/api/board/sites/{id}", guarded("read", self.site_panel)),
            web.get("/api/board/window", guarded("read", self.window)),
            web.get("/api/board/events", guarded("read", self.events)),
        ]

    async def home(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/board/")

    async def no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    def page(self, name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return _file(ASSETS / name)

        return handler

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in PAGES:
            raise web.HTTPNotFound()
        return _file(ASSETS / name)

    async def vendor(self, request: web.Request) -> web.StreamResponse:
        relative = VENDOR.get(request.match_info["name"])
        if relative is None:
            raise web.HTTPNotFound()
        path = ASSETS / "node_modules" / relative
        if not path.is_file():
            return web.Response(status=503, text="board assets are not installed: run ./dev setup (npm ci)")
        return _file(path, max_age=86400)

    async def map_json(self, request: web.Request, user: User) -> web.Response:
        return web.Response(body=self._map_bytes, content_type="application/json")

    def _cursor(self) -> str:
        return f"{self.store.last_seq()}.{self.store.last_level_seq()}"

    async def state(self, request: web.Request, user: User) -> web.Response:
        """Everything a page needs to start: sites, regions, current levels, open alerts, and the feed
        cursor taken first (whatever changes while this is read arrives again on the feed, harmlessly)."""
        cursor = self._cursor()
        levels = [self.row_doc(r) for r in self.store.levels(shown_only=True) if self.sees_row(user, r)]
        alerts = self.store.list_alerts(limit=5000, open_only=True, allow=lambda a: self.sees_alert(user, a))
        sites = self.sites_for(user)
        regions = sorted({s["region"] for s in sites})
        return _json({
            "cursor": cursor, "now": self.clock(), "sites": sites,
            "regions": [self._regions.get(r, {"id": r, "name": r}) for r in regions],
            "levels": levels, "alerts": [a.to_doc() for a in alerts],
            # The four-colour picture's rule (riskwatch/picture.py): static grade -> live -> shown colour.
            "picture": PICTURE,
            "user": {"name": user.name, "role": user.role, "actions": user.actions(),
                     "scope": {"regions": sorted(user.regions), "sites": sorted(user.sites)}},
        })  # fmt: skip

    async def site_panel(self, request: web.Request, user: User) -> web.Response:
        site_id = request.match_info["id"]
        site = self._sites.get(site_id) if _SITE_ID.fullmatch(site_id) else None
        if site is None:
            return _json({"error": "no such site"}, 404)
        if not user.sees(site["id"], site["region"]):
            return _json({"error": f"site {site_id} is not in your scope"}, 403)
        now = self.clock()
        rows = self.store.levels(site=site_id)
        stale = {r.entity for r in rows if r.kind == "alarm" and r.level == "stale"}
        gateways = [
            {
                "id": g,
                "online": not (sensors := self._gateway_sensors.get(g, [])) or not set(sensors) <= stale,
            }
            for g in site["gateways"]
        ]
        history = [r.to_doc() for r in self.store.level_history(now - 24 * 3600.0, site_id, ("site",))]
        alerts = self.store.list_alerts(site=site_id, open_only=True, limit=200)
        return _json({
            "site": site, "now": now,
            "levels": [r.to_doc() for r in rows if r.kind == "warning"],
            "alarms": [r.to_doc() for r in rows if r.kind == "alarm" and r.level != "normal"],
            "gateways": gateways, "history": history, "alerts": [a.to_doc() for a in alerts],
        })  # fmt: skip

    async def window(self, request: web.Request, user: User) -> web.Response:
        """The worst colour of each site and region over the last N hours, from the level history."""
        try:
            hours = int(request.query.get("hours", ""))
        except ValueError:
            hours = 0
        if hours not in WINDOWS_H:
            return _json({"error": f"`hours` must be one of {', '.join(map(str, WINDOWS_H))}"}, 400)
        return _json({"hours": hours, **self.worst_since(user, self.clock() - hours * 3600.0)})

    def worst_since(self, user: User, start: float) -> dict[str, dict[str, str]]:
        seen: dict[tuple[str, str], list[str]] = {}
        for row in self.store.level_history(start, entity_types=("site", "region")):
            if row.kind == "warning" and row.entity_type in ("site", "region") and self.sees_row(user, row):
                # The colour before the first change in the window held at the window's start.
                seen.setdefault((row.entity_type, row.entity), [row.old]).append(row.level)
        out: dict[str, dict[str, str]] = {"sites": {}, "regions": {}}
        for row in self.store.levels(shown_only=True):
            if row.kind == "warning" and row.entity_type in ("site", "region") and self.sees_row(user, row):
                seen.setdefault((row.entity_type, row.entity), [row.level])
        for (kind, entity), labels in seen.items():
            out["sites" if kind == "site" else "regions"][entity] = worst(labels)
        return out

    async def events(self, request: web.Request, user: User) -> web.StreamResponse:
        given = request.headers.get("Last-Event-ID") or request.query.get("after") or ""
        match = _CURSOR.fullmatch(given)
        if given and match is None:
            return _json({"error": "Last-Event-ID / `after` must be a board cursor A.L"}, 400)
        if match is None:
            audit_seq, level_seq = self.store.last_seq(), self.store.last_level_seq()
        else:
            audit_seq, level_seq = int(match[1]), int(match[2])
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await response.write(b"retry: 1000\n: riskwatch board\n\n")
        alert_cache: dict[str, Alert | None] = {}
        try:
            while True:
                frames: list[bytes] = []
                events = self.store.events_after(audit_seq)
                changes = self.store.level_changes_after(level_seq)
                for event in events:
                    audit_seq = event.seq
                    alert = self.store.get_alert(event.alert_id)
                    alert_cache[event.alert_id] = alert
                    if alert is None or not self.sees_alert(user, alert):
                        continue
                    if event.type in ("notified", "suppressed", "delivery_failed"):
                        continue  # delivery detail: in the audit trail, not news for the board
                    body = orjson.dumps({"event": orjson.loads(event.to_bytes()), "alert": alert.to_doc()})
                    frames.append(_frame("alert", f"{audit_seq}.{level_seq}", body))
                for seq, row in changes:
                    level_seq = seq
                    if self.sees_row(user, row):
                        frames.append(
                            _frame("level", f"{audit_seq}.{level_seq}", orjson.dumps(self.row_doc(row)))
                        )
                if frames:
                    await response.write(b"".join(frames))
                elif events or changes:
                    # Nothing in scope, but the cursor moved: tell the client so a reconnect starts here.
                    await response.write(f"id: {audit_seq}.{level_seq}\n: skipped\n\n".encode())
                else:
                    await self.hub.wait(KEEPALIVE_S)
                    if not self.store.events_after(audit_seq, limit=1) and not self.store.level_changes_after(
                        level_seq, limit=1
                    ):
                        await response.write(b": keepalive\n\n")
        except ConnectionResetError:
            pass  # the page went away
        return response


def _frame(kind: str, cursor: str, body: bytes) -> bytes:
    return f"id: {cursor}\nevent: {kind}\ndata: ".encode() + body + b"\n\n"


_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json"}


def _file(path: Path, max_age: int = 0) -> web.StreamResponse:
    response = web.FileResponse(path)
    response.content_type = _TYPES.get(path.suffix, "application/octet-stream")
    response.headers["Cache-Control"] = f"max-age={max_age}" if max_age else "no-cache"
    return response
