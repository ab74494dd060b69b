"""Bounded decompression of bodies that arrive from outside: a telemetry batch from Kafka, a site snapshot
from the changelog. Both refuse a body before it can allocate more than its caller allows (a small record
must not be able to inflate into gigabytes) and refuse anything truncated, trailing or of another size,
each with the caller's own error type and a message naming what was being read."""

from __future__ import annotations

import zlib

import lz4.block

from riskwatch.errors import RiskwatchError

Body = bytes | memoryview


def inflate_zlib(
    body: Body, limit: int, what: str, error: type[RiskwatchError], *, exact: bool = False
) -> bytes:
    """The zlib stream's content: at most `limit` bytes (exactly `limit` when `exact`), nothing after it."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise error(f"{what} does not decompress: {exc}") from exc
    if len(out) > limit:
        raise error(f"{what} decompresses to more than the {limit} bytes it can hold")
    if not inflater.eof:
        raise error(f"{what} does not decompress: truncated zlib stream")
    if inflater.unused_data:
        raise error(f"{what} has {len(inflater.unused_data)} bytes after its compressed stream")
    if exact and len(out) != limit:
        raise error(f"{what} decompresses to {len(out)} bytes, not {limit}")
    return out


def unblock_lz4(block: Body, size: int, limit: int, what: str, error: type[RiskwatchError]) -> bytes:
    """The LZ4 block's content, which must be exactly the `size` its container stated: a size over
    `limit` is refused before anything is allocated."""
    if size > limit:
        raise error(f"{what} claims {size} bytes, more than the {limit} bytes it can hold")
    try:
        out: bytes = lz4.block.decompress(block, uncompressed_size=size)
    except lz4.block.LZ4BlockError as exc:
        raise error(f"{what} does not decompress: {exc}") from exc
    if len(out) != size:  # a block shorter than stated decompresses without complaint
        raise error(f"{what} decompresses to {len(out)} bytes, not {size}")
    return out
