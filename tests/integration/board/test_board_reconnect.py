"""The page says plainly when it is disconnected, and a reconnecting page catches up with no gap: the
board's server goes away, three colours change meanwhile, the server comes back on the same store, and
the page shows all three without a reload (EventSource resumes from its last event id)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from alerting.board.screenshots import ROOT, _free_port, _t, login, script, serve_board
from riskwatch.tls import ServerTLS

pytestmark = [pytest.mark.slow]

REGISTRY = ROOT / "deploy/examples/registry.yaml"
MAP_COLOURS = "() => Object.fromEntries(rwBoard.chart.getOption().series.flatMap(s => s.data).map(d => [d.name, d.colour]))"
MAP_LIVE = "() => Object.fromEntries(rwBoard.chart.getOption().series.flatMap(s => s.data).map(d => [d.name, d.live]))"


def test_disconnection_is_shown_and_the_page_catches_up_with_no_gap(
    browser: Any, stack: Any, tmp_path: Path
) -> None:
    port, now = _free_port(), time.time()
    tls = ServerTLS(stack.https_certfile, stack.https_keyfile)  # HTTPS, as the board is served
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    with serve_board(tmp_path, REGISTRY, script(now), port, tls) as base:
        login(page, base)
        page.wait_for_selector("#conn.up", timeout=5_000)
        assert page.is_hidden("#banner")
        assert page.evaluate(MAP_COLOURS)["JC-MK01"] == "yellow"
    page.wait_for_selector("#conn.down", timeout=10_000)  # the server is gone: said plainly
    assert page.is_visible("#banner")
    changes = [
        _t("warning", "site", "JC-MK01", "JC-MK01", "CN-140500", "yellow", "red", now + 1, "l2_10min"),
        _t("warning", "site", "CD-WK01", "CD-WK01", "CN-130800", "blue", "orange", now + 2, "any_l2"),
        _t("warning", "site", "DY-LPG02", "DY-LPG02", "CN-370500", "normal", "yellow", now + 3, "any_l1"),
    ]
    with serve_board(tmp_path, REGISTRY, changes, port, tls):
        page.wait_for_selector("#conn.up", timeout=15_000)
        # The map is the four-colour picture: CD-WK01 and DY-LPG02 are graded C (static scores 68, 71),
        # so their live orange and yellow show one level up; JC-MK01 (B) shows its live red.
        page.wait_for_function(
            f"() => {{ const c = ({MAP_COLOURS})(); return c['JC-MK01'] === 'red' && c['CD-WK01'] === 'red'"
            " && c['DY-LPG02'] === 'orange'; }",
            timeout=10_000,
        )
        live = page.evaluate(MAP_LIVE)
        assert (live["JC-MK01"], live["CD-WK01"], live["DY-LPG02"]) == ("red", "orange", "yellow")
        assert page.is_hidden("#banner")
        # The desk has the alerts opened while the page was away (CD-WK01 orange opens one).
        assert page.evaluate(
            "[...rwBoard.alerts.values()].some(a => a.site === 'CD-WK01' && a.colour === 'orange')"
        )
