"""A tiny PNG line-chart writer (zlib + struct, no matplotlib): stacked panels of time series.

Enough for the benchmark's throughput and latency plots: axes, min/max labels in a 3x5 pixel font,
one colour per series, vertical markers (e.g. injected incidents).
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Colour = tuple[int, int, int]
BLUE, RED, GREEN, GREY, BLACK = (31, 119, 180), (214, 39, 40), (44, 160, 44), (180, 180, 180), (0, 0, 0)

# 3x5 glyphs, rows top to bottom, 3 bits each (4 = left pixel).
_FONT = {
    "0": (7, 5, 5, 5, 7),
    "1": (2, 6, 2, 2, 7),
    "2": (7, 1, 7, 4, 7),
    "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7),
    "6": (7, 4, 7, 5, 7),
    "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7),
    "9": (7, 5, 7, 1, 7),
    ".": (0, 0, 0, 0, 2),
    "/": (1, 1, 2, 4, 4),
    "-": (0, 0, 7, 0, 0),
    " ": (0, 0, 0, 0, 0),
    "a": (0, 7, 1, 7, 7),
    "c": (0, 7, 4, 4, 7),
    "d": (1, 1, 7, 5, 7),
    "e": (7, 5, 7, 4, 7),
    "g": (7, 5, 7, 1, 7),
    "i": (2, 0, 2, 2, 2),
    "k": (4, 5, 6, 5, 5),
    "l": (2, 2, 2, 2, 2),
    "m": (0, 7, 7, 5, 5),
    "n": (0, 6, 5, 5, 5),
    "p": (7, 5, 7, 4, 4),
    "r": (0, 7, 4, 4, 4),
    "s": (7, 4, 7, 1, 7),
    "t": (2, 7, 2, 2, 3),
    "u": (0, 5, 5, 5, 7),
    "x": (0, 5, 2, 5, 5),
    "y": (5, 5, 7, 1, 7),
    "h": (4, 4, 7, 5, 5),
    "o": (0, 7, 5, 5, 7),
    "=": (0, 7, 0, 7, 0),
    "(": (1, 2, 2, 2, 1),
    ")": (4, 2, 2, 2, 4),
    "w": (0, 5, 5, 7, 7),
    "b": (4, 4, 7, 5, 7),
    "f": (3, 2, 7, 2, 2),
    "v": (0, 5, 5, 5, 2),
    "%": (5, 1, 2, 4, 5),
    ":": (0, 2, 0, 2, 0),
    ">": (4, 2, 1, 2, 4),
    "j": (1, 0, 1, 5, 7),
}


@dataclass(slots=True)
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    colour: Colour = BLUE


@dataclass(slots=True)
class Panel:
    title: str
    series: list[Series]
    markers: list[float] = field(default_factory=list)


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.px = np.full((height, width, 3), 255, dtype=np.uint8)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: Colour) -> None:
        h, w = self.px.shape[:2]
        self.px[max(0, y0) : min(h, y1 + 1), max(0, x0) : min(w, x1 + 1)] = colour

    def line(self, x0: float, y0: float, x1: float, y1: float, colour: Colour) -> None:
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        xs = np.rint(np.linspace(x0, x1, n)).astype(int)
        ys = np.rint(np.linspace(y0, y1, n)).astype(int)
        h, w = self.px.shape[:2]
        ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        self.px[ys[ok], xs[ok]] = colour
        self.px[np.minimum(ys[ok] + 1, h - 1), xs[ok]] = colour  # 2 px thick

    def text(self, x: int, y: int, text: str, colour: Colour = BLACK, scale: int = 2) -> None:
        for ch in text.lower():
            rows = _FONT.get(ch, _FONT[" "])
            for r, bits in enumerate(rows):
                for c in range(3):
                    if bits & (4 >> c):
                        self.rect(
                            x + c * scale,
                            y + r * scale,
                            x + c * scale + scale - 1,
                            y + r * scale + scale - 1,
                            colour,
                        )
            x += 4 * scale

    def png(self) -> bytes:
        h, w = self.px.shape[:2]
        raw = b"".join(b"\x00" + self.px[row].tobytes() for row in range(h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _fmt(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:.1f}m"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.0f}k"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.3g}"


def plot(path: Path, panels: Sequence[Panel], width: int = 900, panel_height: int = 260) -> Path:
    """Write the panels stacked vertically, sharing the x axis range."""
    canvas = Canvas(width, panel_height * len(panels))
    xs = [x for p in panels for s in p.series for x in s.x] or [0.0, 1.0]
    x_lo, x_hi = min(xs), max(max(xs), min(xs) + 1e-9)
    left, right = 70, width - 20
    for k, panel in enumerate(panels):
        top, bottom = k * panel_height + 30, (k + 1) * panel_height - 30
        ys = [y for s in panel.series for y in s.y] or [0.0, 1.0]
        y_hi = max(max(ys), 1e-9) * 1.1
        canvas.text(left, top - 22, panel.title)
        canvas.rect(left, top, left, bottom, BLACK)
        canvas.rect(left, bottom, right, bottom, BLACK)
        canvas.text(4, top, _fmt(y_hi))
        canvas.text(4, bottom - 10, "0")
        canvas.text(left, bottom + 8, f"{_fmt(x_lo)} s")
        canvas.text(right - 60, bottom + 8, f"{_fmt(x_hi)} s")

        def sx(x: float) -> float:
            return left + (x - x_lo) / (x_hi - x_lo) * (right - left)

        def sy(y: float, bottom: int = bottom, top: int = top, y_hi: float = y_hi) -> float:
            return bottom - y / y_hi * (bottom - top)

        for m in panel.markers:
            canvas.line(sx(m), top, sx(m), bottom, GREY)
        lx = left + 8 * len(panel.title) + 30  # legend after the title
        for s in panel.series:
            pts = [(sx(x), sy(y)) for x, y in zip(s.x, s.y, strict=True)]
            for (x0, y0), (x1, y1) in itertools.pairwise(pts):
                canvas.line(x0, y0, x1, y1, s.colour)
            canvas.rect(lx, top - 18, lx + 14, top - 12, s.colour)
            canvas.text(lx + 20, top - 22, s.label)
            lx += 40 + 8 * len(s.label)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canvas.png())
    return path
