"""Charts (matplotlib, Agg) and pages (HTML, then PDF with WeasyPrint) for the reports.

The CJK font is Debian's WenQuanYi Micro Hei (fonts-wqy-microhei, installed by ./dev setup): the charts
and the PDF find it through fontconfig, so Chinese renders without any download at run time.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: charts are files
import matplotlib.pyplot as plt
from matplotlib import font_manager
from matplotlib.ticker import MaxNLocator

from riskwatch.errors import RiskwatchError

CJK_FONT = "WenQuanYi Micro Hei"
FILL = {"red": "#d7263d", "orange": "#f18f01", "yellow": "#f4d35e", "blue": "#2e86de", "normal": "#9aa5b1"}
COLOUR_ZH = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝", "normal": "正常"}
SHOWN = ("red", "orange", "yellow", "blue", "normal")


class RenderError(RiskwatchError):
    """A report could not be drawn (a font or library missing)."""


def _use_cjk_font() -> None:
    names = {f.name for f in font_manager.fontManager.ttflist}
    if CJK_FONT not in names:
        raise RenderError(
            f"the CJK font {CJK_FONT!r} is not installed: install Debian's fonts-wqy-microhei (./dev setup)"
        )
    plt.rcParams["font.family"] = [CJK_FONT]
    plt.rcParams["axes.unicode_minus"] = False


def png_data_uri(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def stacked_bars(title: str, rows: dict[str, dict[str, int]], colours: Sequence[str] = SHOWN) -> str:
    """Horizontal bars, one per row label, stacked by colour counts; returns a PNG data URI."""
    _use_cjk_font()
    labels = list(rows)
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * max(3, len(labels)) + 1.0))
    left = [0] * len(labels)
    for colour in colours:
        values = [rows[label].get(colour, 0) for label in labels]
        ax.barh(labels, values, left=left, color=FILL[colour], label=COLOUR_ZH[colour], edgecolor="white")
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_title(title)
    ax.invert_yaxis()
    ax.legend(ncol=len(colours), loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return png_data_uri(fig)


def bar_series(title: str, xs: Sequence[str], ys: Sequence[float], limit: float | None = None) -> str:
    _use_cjk_font()
    fig, ax = plt.subplots(figsize=(7.2, 2.6))
    ax.bar(range(len(ys)), ys, color="#2e86de", width=1.0)
    if limit is not None:
        ax.axhline(limit, color="#d7263d", linewidth=1, linestyle="--")
    step = max(1, len(xs) // 12)
    ax.set_xticks(range(0, len(xs), step), [xs[i] for i in range(0, len(xs), step)], fontsize=7)
    ax.set_title(title)
    return png_data_uri(fig)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    classes: Sequence[str] = (),
    nowrap: Collection[int] = (),
    wide: bool = False,
) -> str:
    """An HTML table; `classes` per row; the columns in `nowrap` (short values: codes, durations) never
    break inside a cell, so the long columns take the rest; `wide` sets it in a smaller font."""

    def cell(tag: str, j: int, text: object) -> str:
        cls = ' class="nw"' if j in nowrap else ""
        return f"<{tag}{cls}>{html.escape(str(text))}</{tag}>"

    head = "".join(cell("th", j, h) for j, h in enumerate(headers))
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(cell("td", j, v) for j, v in enumerate(row)) + "</tr>")
    kind = ' class="wide"' if wide else ""
    return f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


STYLE = f"""
@page {{ size: A4; margin: 14mm 12mm; @bottom-center {{ content: counter(page) " / " counter(pages); font-size: 8pt; }} }}
body {{ font-family: "{CJK_FONT}", sans-serif; font-size: 9.5pt; color: #1b1f24; }}
h1 {{ font-size: 17pt; margin: 0 0 4pt; }} h2 {{ font-size: 12.5pt; margin: 14pt 0 5pt; border-bottom: 1px solid #ccd; }}
.meta {{ color: #555; margin-bottom: 8pt; }}
table {{ border-collapse: collapse; width: 100%; margin: 4pt 0; }}
th, td {{ border: 1px solid #ccd; padding: 2pt 4pt; text-align: left; vertical-align: top; }}
th {{ background: #eef1f5; }}
/* a short value (an industry, a grade, a duration) on one line: WeasyPrint otherwise shares the width
   out evenly and breaks Chinese between any two characters, one per line in a narrow column */
.nw {{ white-space: nowrap; }}
table.wide {{ font-size: 8pt; }} table.wide th, table.wide td {{ padding: 1.5pt 3pt; }}
table.wide th:nth-child(1) {{ width: 15%; }} table.wide th:nth-child(2) {{ width: 9%; }}
table.wide th:last-child {{ width: 14%; }}
tr.red td:first-child {{ border-left: 5px solid {FILL["red"]}; }}
tr.orange td:first-child {{ border-left: 5px solid {FILL["orange"]}; }}
.kpi {{ display: inline-block; margin: 0 14pt 6pt 0; }} .kpi b {{ font-size: 15pt; display: block; }}
img {{ max-width: 100%; }}
"""


def page(title: str, meta: str, sections: Sequence[str]) -> str:
    return (
        f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<div class="meta">{html.escape(meta)}</div>{"".join(sections)}</body></html>'
    )


def write(page_html: str, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write STEM.html and STEM.pdf (WeasyPrint, from the same HTML) into `out_dir`."""
    from weasyprint import HTML  # imported on use: it loads Pango

    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, pdf_path = out_dir / f"{stem}.html", out_dir / f"{stem}.pdf"
    html_path.write_text(page_html, encoding="utf-8")
    HTML(string=page_html, base_url=str(out_dir)).write_pdf(pdf_path)
    return html_path, pdf_path
