"""The published protocol documents stay in step with the code."""

from __future__ import annotations

from pathlib import Path

import orjson

from riskwatch.wire.deadletter import Reason
from riskwatch.wire.gateway_protocol import EVENT_KINDS

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_every_reason_code_is_documented() -> None:
    text = (DOCS / "gateway-protocol.md").read_text(encoding="utf-8")
    missing = [r.value for r in Reason if f"`{r.value}`" not in text]
    assert missing == []


def test_schema_is_json_and_lists_the_event_kinds_the_parser_accepts() -> None:
    schema = orjson.loads((DOCS / "gateway-protocol.schema.json").read_bytes())
    assert schema["$defs"]["event"]["properties"]["kind"]["enum"] == list(EVENT_KINDS)
    assert schema["$defs"]["reading"]["required"] == ["s", "v", "t"]
