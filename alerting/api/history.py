"""History routes of the API: a sensor's minute aggregates, an entity's colour timeline, alerts with
their audit trail; JSON, CSV or Excel. Each is scoped like the rest of the API: a county user asking for
a sensor, an entity or a site outside its regions gets 403, and the alert export holds only its sites."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from alerting.api.auth import User
from alerting.history import export, tables
from alerting.history.alerts import AlertArchive
from alerting.history.influx import HistoryUnavailable, InfluxHistory
from alerting.lifecycle.model import InvalidInput

MAX_RANGE_S = 31 * 86400.0
CONTENT = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class OutOfScope(Exception):
    pass


def _range(q: Any, parse_time: Callable[[dict[str, Any], str], float]) -> tuple[float, float]:
    start = parse_time({"from": _num_or_text(q.get("from"))}, "from")
    end = parse_time({"to": _num_or_text(q.get("to"))}, "to")
    if not 0 < end - start <= MAX_RANGE_S:
        raise InvalidInput(f"`to` must be after `from` and at most {MAX_RANGE_S / 86400:.0f} days later")
    return start, end


def _num_or_text(value: str | None) -> object:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _answer(table: tables.Table, fmt: str, name: str) -> web.Response:
    headers, rows = table
    if fmt == "json":
        return web.Response(
            body=orjson.dumps({"columns": headers, "rows": rows}), content_type="application/json"
        )
    body = export.csv_bytes(headers, rows) if fmt == "csv" else export.xlsx_bytes(headers, rows, name)
    response = web.Response(body=body, headers={"Content-Type": CONTENT[fmt]})
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


def routes(
    guarded: Callable[[str, Callable[[web.Request, User], Awaitable[web.StreamResponse]]], Any],
    store_path: str,
    history: InfluxHistory | None,
    site_of: Callable[[str], tuple[str, str] | None],
    parse_time: Callable[[dict[str, Any], str], float],
    tz: str = "Asia/Shanghai",
) -> list[web.RouteDef]:
    """`site_of(entity)` -> (site, region) of a site, unit, sensor or region id (None: unknown)."""

    def fmt_of(request: web.Request) -> str:
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "csv", "xlsx"):
            raise InvalidInput("`format` must be json, csv or xlsx")
        return fmt

    def check_scope(user: User, entity: str) -> None:
        found = site_of(entity)
        if found is None:
            raise InvalidInput(f"no site, unit, sensor or region {entity[:200]!r} in the registry")
        if not user.sees(*found):
            raise PermissionError(f"{entity} is not in your scope")

    async def influx_table(request: web.Request, user: User, what: str) -> web.Response:
        entity = request.match_info["id"]
        try:
            check_scope(user, entity)
        except PermissionError as exc:
            return web.json_response({"error": str(exc)}, status=403)
        if history is None:
            return web.json_response({"error": "no InfluxDB configured (--influx-url)"}, status=503)
        start, end = _range(request.query, parse_time)
        make = tables.sensor_table if what == "sensor" else tables.colour_table
        try:
            table = await asyncio.to_thread(make, history, entity, start, end, tz)
        except HistoryUnavailable as exc:
            return web.json_response({"error": str(exc)}, status=503)
        return _answer(table, fmt_of(request), f"{what}-{entity}")

    async def sensor(request: web.Request, user: User) -> web.Response:
        return await influx_table(request, user, "sensor")

    async def colours(request: web.Request, user: User) -> web.Response:
        return await influx_table(request, user, "colours")

    async def alerts(request: web.Request, user: User) -> web.Response:
        start, end = _range(request.query, parse_time)
        site = request.query.get("site")
        if site is not None:
            try:
                check_scope(user, site)
            except PermissionError as exc:
                return web.json_response({"error": str(exc)}, status=403)

        def read() -> tables.Table:
            archive = AlertArchive(store_path)
            try:
                visible = lambda a: user.sees(a.site, a.region or (site_of(a.site) or ("", ""))[1])  # noqa: E731
                return tables.alert_table(archive, start, end, tz, {site} if site else None, visible)
            finally:
                archive.close()

        return _answer(await asyncio.to_thread(read), fmt_of(request), "alerts")

    return [
        web.get("/api/history/sensor/{id}", guarded("read", sensor)),
        web.get("/api/history/colours/{id}", guarded("read", colours)),
        web.get("/api/history/alerts", guarded("read", alerts)),
    ]


def registry_scope(registry: Any) -> Callable[[str], tuple[str, str] | None]:
    """(site, region) of every site, unit, sensor and region id of a site registry."""
    where: dict[str, tuple[str, str]] = {}
    if registry is not None:
        for region in registry.regions:
            where[region] = ("", region)
        for site in registry.sites.values():
            where[site.id] = (site.id, site.region)
        for unit in registry.units.values():
            where[unit.id] = (unit.site, where.get(unit.site, ("", ""))[1])
        for s in registry.sensor_list:
            where[s.id] = (s.site, where.get(s.site, ("", ""))[1])
    return where.get
