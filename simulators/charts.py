"""Line charts of time series for the benchmarks, drawn with matplotlib (a Figure, no pyplot state and
no display needed).

Stacked panels sharing the x axis, one colour per series, vertical markers (e.g. injected incidents).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

BLUE, RED, GREEN, GREY = "#1f77b4", "#d62728", "#2ca02c", "#b4b4b4"


@dataclass(slots=True)
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str = BLUE


@dataclass(slots=True)
class Panel:
    title: str
    series: list[Series]
    markers: list[float] = field(default_factory=list)  # x positions of vertical lines


def plot(path: Path, panels: Sequence[Panel], width_in: float = 9.0, panel_height_in: float = 2.6) -> Path:
    """Write the panels stacked vertically (PNG, or any format matplotlib knows by the suffix)."""
    fig = Figure(figsize=(width_in, panel_height_in * len(panels)))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        for m in panel.markers:
            ax.axvline(m, color=GREY, linewidth=1, zorder=1)
        for s in panel.series:
            ax.plot(s.x, s.y, color=s.colour, label=s.label, linewidth=1.2, zorder=2)
        ax.set_title(panel.title, loc="left", fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if panel.series:
            ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
