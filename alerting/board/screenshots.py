"""Regenerate the board's screenshots in docs/board/ with one command:

    python -m alerting.board.screenshots [--out docs/board]

It serves the real board (alerting's HTTP app, the example registry, the shipped map) from a scratch
store that it fills with a scripted afternoon of warnings and alerts, logs in through the login page in
Debian's chromium (Playwright; no browser download), and saves the map with a site's panel open, the
sites table and the alert desk. No Kafka needed: the data are written to the store exactly as alerting's
consumer writes them.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from alerting.api.app import build_app
from alerting.api.auth import TokenAuth, User
from alerting.api.feed import EventHub
from alerting.board.geometry import shipped_map
from alerting.board.web import Board
from alerting.config import parse_config
from alerting.lifecycle.manager import AlertManager
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from riskwatch.registry import load_registry
from riskwatch.tls import ServerTLS
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
TOKEN = "screenshot-token-0123456789"
ROUTES = {
    "people": {"duty": {"name": "值班员"}},
    "channels": {"log": {"type": "webhook", "url": "http://127.0.0.1:9/none"}},
    "receivers": {"duty": {"people": ["duty"], "channels": ["log"]}},
    "route": {"receiver": "duty", "min_colour": "yellow"},
}


def _t(
    kind: str, etype: str, entity: str, site: str, region: str, old: str, new: str, at: float,
    rule: str = "", items: tuple[CauseItem, ...] = (), unit: str = "",
) -> Transition:  # fmt: skip
    return Transition(
        transition_id(kind, etype, entity, new, at), kind, etype, entity, old, new, at,  # type: ignore[arg-type]
        Cause(rule, items), site, region, unit,
    )  # fmt: skip


def script(now: float) -> list[Transition]:
    """An afternoon: a refinery leak (red), an LPG terminal that was orange two hours ago, a kiln's gas
    main low (orange), a coal face's methane at L1 (yellow), a tailings point gone stale (blue)."""
    gas = (
        CauseItem("DYSH-T1-LEL-01", "flammable_gas", "l2_high", 61.0, 50.0, "%LEL", now - 540),
        CauseItem("DYSH-T1-LEL-02", "flammable_gas", "l2_high", 55.0, 50.0, "%LEL", now - 500),
    )
    out = [
        _t("warning", "site", "DY-LPG02", "DY-LPG02", "CN-370500", "normal", "orange", now - 9000, "any_l2"),
        _t("warning", "site", "DY-LPG02", "DY-LPG02", "CN-370500", "orange", "normal", now - 7000),
        _t("alarm", "sensor", "DYSH-T1-LEL-01", "DY-SH01", "CN-370500", "normal", "l2_high", now - 540, "", gas[:1], "DYSH-T1"),
        _t("alarm", "sensor", "DYSH-T1-LEL-02", "DY-SH01", "CN-370500", "normal", "l2_high", now - 500, "", gas[1:], "DYSH-T1"),
        _t("warning", "unit", "DYSH-T1", "DY-SH01", "CN-370500", "normal", "red", now - 480, "gas_l2_two_detectors", gas, "DYSH-T1"),
        _t("warning", "site", "DY-SH01", "DY-SH01", "CN-370500", "normal", "red", now - 480, "gas_l2_two_detectors", gas),
        _t("warning", "site", "SH-BL01", "SH-BL01", "CN-130582", "normal", "orange", now - 1500, "any_l2"),
        _t("warning", "site", "JC-MK01", "JC-MK01", "CN-140500", "normal", "yellow", now - 3000, "any_l1"),
        _t("warning", "site", "CD-WK01", "CD-WK01", "CN-130800", "normal", "blue", now - 4000, "fault_or_stale"),
    ]  # fmt: skip
    for region, colour in (("CN-370500", "red"), ("CN-130582", "orange"), ("CN-140500", "yellow"),
                           ("CN-130800", "blue")):  # fmt: skip
        out.append(_t("warning", "region", region, "", region, "normal", colour, now - 400))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def record(manager: AlertManager, transitions: list[Transition]) -> None:
    """Apply transitions as alerting's consumer does: the alert change and the level in one commit."""
    for t in transitions:
        with manager.store.transaction():
            if manager.handle(t):
                manager.store.record_level(t)


@contextmanager
def serve_board(
    store_dir: Path,
    registry_path: Path,
    transitions: list[Transition],
    port: int | None = None,
    tls: ServerTLS | None = None,
) -> Iterator[str]:
    """The real board app on a loopback port (free by default), in a thread, over the store in
    `store_dir` after adding `transitions` to it; over HTTPS with `tls`."""
    registry = load_registry(registry_path)
    cfg = parse_config(ROUTES, "screenshots")
    store = Store(store_dir / "alerting.db")
    hub = EventHub()
    manager = AlertManager(store, cfg, SiteDirectory({}), time.time, hub.notify)
    record(manager, transitions)
    try:
        geometry: dict[str, Any] | None = shipped_map(set(registry.regions))
    except Exception:
        geometry = None
    board = Board(store, hub, registry, geometry)
    app = build_app(manager, TokenAuth({TOKEN: User("值班长", "supervisor")}), hub, board=board)
    port = port or _free_port()
    ready, stop = threading.Event(), threading.Event()

    def run() -> None:
        async def main() -> None:
            runner = web.AppRunner(app, shutdown_timeout=1.0)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.context() if tls else None).start()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)
            await runner.cleanup()

        asyncio.run(main())

    thread = threading.Thread(target=run, name="board", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(5)
        store.close()


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def login(page: Any, base: str, token: str = TOKEN) -> None:
    page.goto(base + "/board/login")
    page.fill("#token", token)
    page.click("#submit")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "board")
    parser.add_argument("--lang", choices=["zh", "en"], default="zh")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_board(Path(tmp), ROOT / "deploy/examples/registry.yaml", script(time.time())) as base,
        sync_playwright() as p,
    ):
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1440, "height": 860})
        page.add_init_script(
            f"localStorage.setItem('rw-lang', '{args.lang}'); localStorage.setItem('rw-muted', '1')"
        )
        login(page, base)
        page.wait_for_timeout(800)
        # Click the red site's marker where the map draws it, as a person would.
        x, y = page.evaluate("() => rwBoard.chart.convertToPixel({geoIndex: 0}, [118.956, 38.0766])")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_selector("#panel:not([hidden]) h2", timeout=5_000)
        page.wait_for_timeout(600)
        page.screenshot(path=str(args.out / "map.png"))
        page.click("#tab-sites")
        page.wait_for_timeout(400)
        page.screenshot(path=str(args.out / "sites.png"))
        page.click("#tab-desk")
        page.click('#alerts li[data-entity="DY-SH01"]')
        page.wait_for_selector("#do-ack")
        page.fill("#note", "已签收，赶赴现场")
        page.click("#do-ack")
        page.wait_for_selector('#detail-state[data-state="active-acknowledged"]')
        page.wait_for_timeout(400)
        page.screenshot(path=str(args.out / "desk.png"))
        browser.close()
    for name in ("map", "sites", "desk"):
        print(f"wrote {args.out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
