"""The board at province scale in a real browser (5,000 sites, 500 open alerts) against the real alerting
service on the test stack's Kafka: first full render and warning -> colour on the page."""

from __future__ import annotations

from typing import Any

import pytest

from alerting.board.bench import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_board_at_5000_sites_and_500_alerts(stack: Any) -> None:
    result = run(stack.kafka("tools"), n_sites=5000, n_alerts=500, changes=10, https=stack)
    print(result)
    assert result["sites_on_map"] == 5000 and result["open_alerts"] >= 500
    assert result["first_full_render_s"]["median"] < 10.0
    # Live: a warning on Kafka is on the page within a second (median); the worst case is bounded loosely
    # because the 2-core machine running Kafka, the service and chromium is shared with other work.
    assert result["warning_to_page_s"]["p50"] <= 1.0
    assert result["warning_to_page_s"]["max"] <= 3.0
    # Every figure comes with its same-run baseline: the plain feed saw every change too, and the page's
    # start is measured against fetching its data.
    assert result["warning_to_feed_s"]["p50"] <= 1.0
    assert result["start_data_fetch_s"]["median"] > 0 and result["render_ratio"] > 0
    print(
        f"board: render {result['first_full_render_s']['median']} s = {result['render_ratio']}x the data"
        f" fetch; warning -> page p50 {result['warning_to_page_s']['p50']} s = {result['live_ratio']}x"
        " the plain feed"
    )
