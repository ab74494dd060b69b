"""The bridge's /metrics and /healthz answers carry the security headers."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from ingest.service import BridgeService
from riskwatch.httpheaders import SECURITY_HEADERS
from tests.unit.ingest.test_service import service  # noqa: F401  (the fixture)


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/anything"])
def test_bridge_http_answers_carry_security_headers(service: BridgeService, path: str) -> None:  # noqa: F811
    service.start()
    try:
        url = f"http://127.0.0.1:{service.settings.metrics_port}{path}"
        try:
            response = urllib.request.urlopen(url, timeout=5)
        except urllib.error.HTTPError as exc:
            response = exc
        assert {name: response.headers.get(name) for name, _ in SECURITY_HEADERS} == dict(SECURITY_HEADERS)
    finally:
        service.abort()
