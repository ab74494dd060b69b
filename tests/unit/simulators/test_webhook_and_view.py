"""The demo's webhook receiver checks signatures and de-duplicates; the live view keeps site colours."""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from riskwatch.wire.transitions import Cause, Transition, transition_id
from simulators.charts import Panel, Series, plot
from simulators.view import DemoState, render, summary
from simulators.webhook import WebhookReceiver


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_receiver_checks_the_hmac_and_counts_each_key_once() -> None:
    receiver = WebhookReceiver(secret="s3cret").start()
    try:
        body = orjson.dumps({"title": "CHEM-01 red", "colour": "red", "idempotency_key": "k1"})
        good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert post(receiver.url, body, {"X-Riskwatch-Signature": good, "Idempotency-Key": "k1"}) == 200
        assert post(receiver.url, body, {"X-Riskwatch-Signature": good, "Idempotency-Key": "k1"}) == 200
        assert (
            post(receiver.url, body, {"X-Riskwatch-Signature": "sha256=00", "Idempotency-Key": "k2"}) == 401
        )
        assert post(receiver.url, b"not json", {"X-Riskwatch-Signature": good}) == 400
    finally:
        receiver.stop()
    unique = receiver.unique()
    assert [(d.key, d.colour, d.signature_ok) for d in unique] == [("k1", "red", True)]
    assert len(receiver.deliveries) == 2 and receiver.rejected == 2
    assert unique[0].mentions("CHEM-01")


def site_warning(site: str, new: str, old: str = "normal") -> Transition:
    return Transition(
        id=transition_id("warning", "site", site, new, 5.0), kind="warning", entity_type="site", entity=site,
        old=old, new=new, at=5.0, cause=Cause("gas_l2_two_detectors"), site=site,
    )  # fmt: skip


def test_demo_state_tracks_site_colours_and_renders() -> None:
    state = DemoState.for_sites(
        {"CHEM-01": ("东港化工", "hazardous_chemicals"), "TAIL-01": ("双峰寺", "tailings_pond")}
    )
    state.on_transition(site_warning("CHEM-01", "red"), 10.0)
    state.on_transition(site_warning("ELSEWHERE", "blue"), 11.0)
    assert state.sites["CHEM-01"].colour == "red" and state.sites["TAIL-01"].colour == "normal"
    assert state.warnings_by_colour == {"red": 1, "blue": 1}
    console = Console(record=True, width=140)
    console.print(render(state))
    text = console.export_text()
    assert "CHEM-01" in text and "red 红色" in text and "gas_l2_two_detectors" in text
    assert "sites now: CHEM-01 red, TAIL-01 normal" in summary(state, 10.0)


def test_the_benchmark_chart_is_a_png_with_its_lines_drawn(tmp_path: Path) -> None:
    import matplotlib.image

    path = plot(
        tmp_path / "p.png",
        [
            Panel("readings/s", [Series("received", [0, 1, 2], [5.0, 7.0, 6.0])], [1.0]),
            Panel("latency s", [Series("p99", [0, 1, 2], [0.1, 0.3, 0.2], "#d62728")]),
        ],
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (520, 900)  # two panels of 2.6 in, 9 in wide, at 100 dpi
    red = (abs(pixels[..., 0] - 0xD6 / 255) < 0.02) & (abs(pixels[..., 1] - 0x27 / 255) < 0.02)
    assert red[260:].sum() > 50 and red[:260].sum() == 0  # the p99 line, in the lower panel only


@pytest.mark.parametrize("q", [50, 99])
def test_latency_histogram_percentiles_within_one_percent(q: float) -> None:
    import numpy as np

    from simulators.latency import LatencyHistogram

    values = np.random.default_rng(1).lognormal(-3, 1, 100_000)
    h = LatencyHistogram()
    h.add(values[:50_000])
    h.add(values[50_000:])
    assert h.percentile(q) == pytest.approx(np.percentile(values, q), rel=0.015)
    assert h.max == values.max() and h.total == 100_000
