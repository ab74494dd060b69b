"""SSE live feed: audit events from the store by sequence number, so a reconnect with Last-Event-ID
resumes exactly where it left off; the hub only wakes streams, it never carries the data."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import web

from alerting.store import Store

KEEPALIVE_S = 15.0


class EventHub:
    """Wakes every open stream when the store has new events. Use from the event loop's thread."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


async def stream(
    request: web.Request,
    store: Store,
    hub: EventHub,
    after: int,
    visible: Callable[[str], bool] | None = None,
) -> web.StreamResponse:
    """Audit events after `after`; with `visible`, only those of alerts it accepts (a user's scope)."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(b": riskwatch alert events\n\n")
    seq = after
    try:
        while True:
            events = store.events_after(seq)
            for event in events:
                if visible is not None and not visible(event.alert_id):
                    seq = event.seq
                    continue
                frame = f"id: {event.seq}\nevent: {event.type}\ndata: ".encode() + event.to_bytes() + b"\n\n"
                await response.write(frame)
                seq = event.seq
            if not events:
                await hub.wait(KEEPALIVE_S)
                if not store.events_after(seq, limit=1):
                    await response.write(b": keepalive\n\n")
    except ConnectionResetError:
        pass  # the client went away
    return response
