"""How the history reader turns InfluxDB's answers into rows, against a loopback HTTP server that answers
the way InfluxDB 1.8's /query does (chunked: one JSON document per line). The real database is exercised by
the reports' integration tests; these cover the answers it gives only now and then."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from alerting.history.influx import HistoryUnavailable, InfluxConnection, InfluxHistory


@contextmanager
def _serve(documents: list[object], status: int = 200) -> Iterator[str]:
    body = b"".join(orjson.dumps(doc) + b"\n" for doc in documents)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _history(url: str) -> InfluxHistory:
    return InfluxHistory(InfluxConnection(url=url, token="reader:secret", timeout_s=5.0))


def _totals_answer(*rows: list[object]) -> dict[str, object]:
    series = {"name": "minute", "columns": ["time", "count", "sum"], "values": list(rows)}
    return {"results": [{"statement_id": 0, "series": [series]}]}


def test_minute_totals_counts_a_minute_whose_aggregates_are_still_null_as_empty() -> None:
    # Seen once against a live InfluxDB while the historian was writing the minute: a row whose count and
    # sum are null. It must read as a minute holding nothing yet, not end the caller with a TypeError.
    answer = _totals_answer([60_000, 3, 180], [120_000, None, None], [180_000, 2, None])
    with _serve([answer]) as url:
        totals = _history(url).minute_totals(0.0, 240.0)
    assert totals == {60.0: (3, 180), 120.0: (0, 0), 180.0: (2, 0)}


def test_minute_totals_reads_every_chunk_of_a_chunked_answer() -> None:
    chunks = [_totals_answer([60_000 * m, 1, 60]) for m in range(1, 4)]
    with _serve(chunks) as url:
        totals = _history(url).minute_totals(0.0, 240.0)
    assert totals == {60.0: (1, 60), 120.0: (1, 60), 180.0: (1, 60)}


def test_a_refused_query_is_reported_with_influxdb_s_reason() -> None:
    refused = {"results": [{"statement_id": 0, "error": "database not found: riskwatch"}]}
    with _serve([refused]) as url, pytest.raises(HistoryUnavailable, match="database not found: riskwatch"):
        _history(url).minute_totals(0.0, 60.0)


def test_an_http_error_names_the_server_and_status() -> None:
    with (
        _serve([{"error": "authorization failed"}], status=401) as url,
        pytest.raises(HistoryUnavailable, match=r"answered HTTP 401: .*authorization failed"),
    ):
        _history(url).minute_totals(0.0, 60.0)
