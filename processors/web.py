"""HTTP views (Faust web): current colour and cause of a site or a region, and a site's open alarms.

    GET /site/{site}/          {"site", "region", "colour", "since", "cause", "static_grade", "grade",
                                "picture", "units": [...], "open_alarms", "readings_evaluated"}
    GET /site/{site}/alarms/   {"site", "alarms": [transition, ...]}  (sensors not normal, newest first)
    GET /region/{region}/      {"region", "colour", "counts", "sites": {site: colour}, "cause"}
    GET /healthz               {"ok", "ready", "problems", "last_run_s_ago"}: 503 when a task died or stalled

Requests are routed by Faust to the worker that owns the key's partition (`table_route`); until the
worker's producer knows the table's partitions, a request gets 503 and the lookup is started. Faust's own
pages (/table, /router, statistics) are off (see `build_app`); every answer carries SECURITY_HEADERS.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import faust
from faust.web import Request, Response, View

from processors import faust_internals
from processors.app import WorkerContext
from riskwatch.httpheaders import SECURITY_HEADERS
from riskwatch.picture import STATIC_GRADE_LETTER, picture_colour
from riskwatch.regions import RegionState
from riskwatch.wire.transitions import Transition

ROUTE_LOOKUP_S = 2.0


def _level(t: Transition | None) -> dict[str, Any]:
    if t is None:
        return {"colour": "normal", "since": None, "cause": None}
    return {"colour": t.new, "since": t.at, "cause": asdict(t.cause), "transition_id": t.id}


def site_document(ctx: WorkerContext, site: str) -> dict[str, Any]:
    open_levels = ctx.states.open_levels(site)
    units = [
        {"unit": entity, **_level(t)} for (etype, entity), t in sorted(open_levels.items()) if etype == "unit"
    ]
    alarms = sum(1 for etype, _ in open_levels if etype == "sensor")
    level = _level(open_levels.get(("site", site)))
    static = ctx.registry.sites[site].static_grade
    return {
        "site": site,
        "region": ctx.registry.sites[site].region,
        **level,
        # the live colour read with the registry's static grade: the four-colour picture (riskwatch/picture.py)
        "static_grade": static,
        "grade": STATIC_GRADE_LETTER.get(static or "", ""),
        "picture": picture_colour(level["colour"], static),
        "units": units,
        "open_alarms": alarms,
        # every reading the engine evaluated for the site, exact across restarts (kept in the snapshot):
        # what a count of the readings sent is checked against
        "readings_evaluated": ctx.states.evaluated(site),
    }


def alarms_document(ctx: WorkerContext, site: str) -> dict[str, Any]:
    open_levels = ctx.states.open_levels(site)
    alarms = sorted((t for (etype, _), t in open_levels.items() if etype == "sensor"), key=lambda t: -t.at)
    return {"site": site, "alarms": [asdict(t) for t in alarms]}


def _site_response(
    view: View, ctx: WorkerContext, site: str, document: Callable[[WorkerContext, str], dict[str, Any]]
) -> Response:
    """404 for an unknown site, 503 while partitions move, else the site's JSON document."""
    if site not in ctx.registry.sites:
        return view.notfound(f"unknown site {site!r}")
    if not ctx.ready:
        return view.error(503, "worker is rebalancing; retry in a few seconds")
    return view.json(document(ctx, site))


async def _secure(request: Any, response: Any) -> None:
    """aiohttp's on_response_prepare hook: every answer, errors included, gets the security headers."""
    for name, value in SECURITY_HEADERS:
        response.headers[name] = value


def _routable(app: faust.App, table: Any) -> Callable[[Callable[..., Awaitable[Response]]], Any]:
    """A table-routed view answers 503 (retry) rather than 500 while its table cannot be routed: Faust
    routes by the changelog's partitions as its producer knows them, which is not before it asked."""

    def wrap(get: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        @functools.wraps(get)
        async def routed(view: View, request: Request, **kwargs: Any) -> Response:
            topic = table.changelog_topic.get_topic_name()
            if not await faust_internals.producer_knows_partitions(app, topic, ROUTE_LOOKUP_S):
                return view.error(503, "worker is still looking up its partitions; retry in a few seconds")
            return await get(view, request, **kwargs)

        return routed

    return wrap


def install(app: faust.App, ctx: WorkerContext, tables: Any) -> None:
    app.web.web_app.on_response_prepare.append(_secure)  # type: ignore[attr-defined]
    snapshots = tables.snapshots.table
    region_table = tables.regions

    @app.page("/site/{site}/")
    class SiteView(View):
        @_routable(app, snapshots)
        @app.table_route(table=snapshots, match_info="site")  # type: ignore[arg-type]  # site from the path
        async def get(self, request: Request, site: str) -> Response:
            return _site_response(self, ctx, site, site_document)

    @app.page("/site/{site}/alarms/")
    class SiteAlarmsView(View):
        @_routable(app, snapshots)
        @app.table_route(table=snapshots, match_info="site")  # type: ignore[arg-type]  # site from the path
        async def get(self, request: Request, site: str) -> Response:
            return _site_response(self, ctx, site, alarms_document)

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            ok, doc = ctx.health.status()
            return self.json({**doc, "ready": ctx.ready}, status=200 if ok else 503)

    @app.page("/region/{region}/")
    class RegionView(View):
        @_routable(app, region_table)
        @app.table_route(table=region_table, match_info="region")  # type: ignore[arg-type]  # region from the path
        async def get(self, request: Request, region: str) -> Response:
            if region not in ctx.registry.regions:
                return self.notfound(f"unknown region {region!r}")
            stored = region_table.get(region.encode())
            state = RegionState.from_bytes(stored) if stored else RegionState()
            return self.json(
                {
                    "region": region,
                    "colour": state.colour,
                    "counts": state.counts(),
                    "sites": state.sites,
                    "cause": state.cause,
                }
            )
