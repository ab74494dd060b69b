"""The board in a real browser against the real pipeline: log in; the sites on the map in the engine's
colours; a simulated leak turns CHEM-01 red on the map and puts it on the desk in time; acknowledge and
close it from the page and see who did what in the audit trail; after it clears, the 24 h map still
shows it red; a county officer sees only his county, and the API refuses him the rest."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from deploy.stack import add_gateways
from riskwatch.picture import picture_colour
from riskwatch.registry import load_registry
from simulators.cli import DEFAULT_REGISTRY
from simulators.kafka_watch import TopicReader, TransitionReader
from simulators.scenarios.model import load_scenario
from simulators.scenarios.runner import ScenarioRunner, scope_of, validate_targets
from simulators.simulated_gateway import Broker
from simulators.simulation import Simulation
from tests.integration.board.conftest import PASSWORD, TOKENS, BoardPipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAP_COLOURS = "() => Object.fromEntries(rwBoard.chart.getOption().series.flatMap(s => s.data).map(d => [d.name, d.live]))"
MAP_PICTURE = "() => Object.fromEntries(rwBoard.chart.getOption().series.flatMap(s => s.data).map(d => [d.name, d.colour]))"
SCENARIO = DEFAULT_REGISTRY.parent / "chem_tank_leak.yaml"
state: dict[str, Any] = {}  # what the tests of this module hand on to each other, in order


def login(page: Any, base: str, **how: str) -> None:
    page.goto(base + "/board/")
    page.wait_for_url("**/board/login**")
    if "token" in how:
        page.fill("#token", how["token"])
    else:
        page.fill("#user", how["user"])
        page.fill("#password", how["password"])
    page.click("#submit")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)


def engine_colour(board: BoardPipeline, site: str) -> str:
    with urllib.request.urlopen(f"{board.worker_url}/site/{site}/", timeout=5) as r:
        return str(orjson.loads(r.read()).get("colour") or "normal")


def test_log_in_and_see_every_site_in_the_engines_colour_and_its_picture(
    board: BoardPipeline, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 850})
    login(page, board.url, user="centre", password=PASSWORD)
    assert page.get_attribute("#conn", "class") == "conn up"  # the live feed is connected
    sites = set(load_registry(DEFAULT_REGISTRY).sites)
    deadline = time.time() + 20
    while True:  # the engine may be moving (sensors going stale): equal at some moment, within 1 s
        shown = page.evaluate(MAP_COLOURS)
        expected = {s: engine_colour(board, s) for s in sites}
        if shown == expected or time.time() > deadline:
            break
        page.wait_for_timeout(500)
    assert set(shown) == sites
    assert shown == expected
    # Each marker is drawn in the four-colour picture: the live colour read with the site's static grade.
    registry = load_registry(DEFAULT_REGISTRY)
    drawn = page.evaluate(MAP_PICTURE)
    assert drawn == {s: picture_colour(shown[s], registry.sites[s].static_grade) for s in sites}
    state["page"] = page


def test_incident_turns_the_site_red_on_map_and_desk_in_time(
    board: BoardPipeline, browser: Any, stack: Any, tmp_path: Path
) -> None:
    page = state["page"]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    scenario = load_scenario(SCENARIO)
    registry = load_registry(scenario.registry_path())
    sim = Simulation.from_registry(registry, seed=scenario.seed, speed=scenario.speed)
    validate_targets(sim, scenario)
    passwords = add_gateways(stack, [(g.site, g.id) for g in registry.gateways.values()])
    scope = scope_of(sim, {s.id: s.region for s in registry.sites.values()})
    reader = TransitionReader(TopicReader(stack.kafka("tools"), board.topics.warnings))
    runner = ScenarioRunner(
        scenario, sim, Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls), reader, scope
    )
    thread = threading.Thread(target=runner.run, name="scenario", daemon=True)
    started = time.time()
    thread.start()
    state.update(thread=thread, runner=runner, reader=reader)
    # The scenario's own deadline for CHEM-01 red is 75 s after it starts; the page must show it by then.
    expect = next(e for e in scenario.expect if e.entity == "CHEM-01")
    page.wait_for_function(f"() => ({MAP_COLOURS})()['CHEM-01'] === 'red'", timeout=(expect.by + 5) * 1000)
    state["red_after_s"] = time.time() - started
    # Zoom in on the site with the mouse wheel (its neighbours are a few km away) and click its marker
    # where the map draws it, as a person would: its panel shows the rule and the sensors in alarm.
    site = next(s for s in registry.sites.values() if s.id == "CHEM-01")
    where = f"() => rwBoard.chart.convertToPixel({{geoIndex: 0}}, [{site.lon}, {site.lat}])"
    box = page.locator("#map").bounding_box()
    for _ in range(12):
        x, y = page.evaluate(where)
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(120)
    page.wait_for_timeout(400)
    x, y = page.evaluate(where)
    page.mouse.click(box["x"] + x, box["y"] + y)
    try:
        page.wait_for_selector(f'#panel:not([hidden]) h2:has-text("{site.name}")', timeout=5_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "click.png"))
        panel = page.inner_text("#panel") if page.is_visible("#panel") else "(hidden)"
        raise AssertionError(
            f"no panel for {site.id} after clicking at {x:.0f},{y:.0f}; panel: {panel[:300]!r}; "
            f"page errors: {errors}; see {tmp_path}/click.png"
        ) from None
    assert page.inner_text("#panel-rule") == "gas_l2_two_detectors"
    assert "CHEM-01-TF1-LEL" in page.inner_text("#panel-body")  # a detector in alarm, with its value
    page.click("#panel-close")
    page.click("#tab-desk")
    row = page.wait_for_selector('#alerts li[data-entity="CHEM-01"][data-colour="red"]', timeout=5_000)
    assert row is not None
    assert page.evaluate("rwBoard.beeps") >= 1  # a new red sounds once (muted or not, it is counted)
    assert time.time() - started <= expect.by + 5


def test_acknowledge_and_close_from_the_page_with_the_audit_trail(board: BoardPipeline) -> None:
    page = state["page"]
    page.click('#alerts li[data-entity="CHEM-01"]')
    page.wait_for_selector("#do-ack")
    page.fill("#note", "已签收，赶赴现场")
    page.click("#do-ack")
    page.wait_for_selector('#detail-state[data-state$="-acknowledged"]', timeout=5_000)
    page.click("#do-close")  # no disposal note yet: refused on the page, nothing sent
    assert page.text_content("#result") in ("请填写说明", "a note is required")
    page.fill("#note", "罐区泄漏点已封堵，可燃气体浓度恢复正常")
    page.click("#do-close")
    page.wait_for_selector('#detail-state[data-state="closed"]', timeout=5_000)
    acked, closed = (
        page.inner_text('#audit [data-type="acknowledged"]'),
        page.inner_text('#audit [data-type="closed"]'),
    )
    assert (
        "centre · 签收" in acked and "已签收，赶赴现场" in acked
    )  # who, what, when (the line starts with it)
    assert "centre · 闭环" in closed and "罐区泄漏点已封堵" in closed
    state["alert_id"] = page.url.rsplit("#desk/", 1)[-1]  # closed: off the open list, still on the desk
    assert state["alert_id"].startswith("al-")


def test_after_the_incident_clears_the_24h_map_still_shows_it_red(board: BoardPipeline) -> None:
    page = state["page"]
    state["thread"].join(timeout=150)
    state["reader"].reader.close()
    page.click("#tab-map")
    page.wait_for_function(f"() => ({MAP_COLOURS})()['CHEM-01'] !== 'red'", timeout=90_000)
    page.click('#windows button[data-window="24"]')
    page.wait_for_function(f"() => ({MAP_COLOURS})()['CHEM-01'] === 'red'", timeout=5_000)
    page.click('#windows button[data-window="0"]')
    page.wait_for_function(f"() => ({MAP_COLOURS})()['CHEM-01'] !== 'red'", timeout=5_000)


def test_county_officer_sees_only_his_county_and_the_api_refuses_the_rest(
    board: BoardPipeline, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 850})
    page = context.new_page()
    login(page, board.url, token=TOKENS["RW_B_TOKEN_COUNTY"])
    assert set(page.evaluate(MAP_COLOURS)) == {"COAL-01"}
    page.click("#tab-sites")
    # The tab renders its table on the hash change, after the click returns: wait for its rows.
    page.wait_for_selector("#sites-table tbody tr", timeout=10_000)
    assert page.eval_on_selector_all("#sites-table tbody tr", "rows => rows.map(r => r.dataset.site)") == [
        "COAL-01"
    ]
    # The desk link of CHEM-01's alert shows a refusal, and the API (with his session) says 403.
    page.goto(f"{board.url}/alerts/{state['alert_id']}")
    page.wait_for_selector("#detail-error", timeout=10_000)
    assert page.request.get(f"{board.url}/api/alerts/{state['alert_id']}").status == 403
    assert page.request.get(f"{board.url}/api/board/sites/CHEM-01").status == 403
    listed = page.request.get(f"{board.url}/api/alerts?limit=1000").json()["alerts"]
    assert all(a["site"] == "COAL-01" for a in listed)
    # ... and a POST with his session but without the CSRF token is refused before scope is even asked.
    assert page.request.post(f"{board.url}/api/alerts/{state['alert_id']}/ack", data="{}").status == 403
    context.close()
