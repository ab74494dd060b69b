"""Tables out: CSV (UTF-8 with a byte-order mark, so Excel shows Chinese), Excel .xlsx (openpyxl), or
a plain text table for the terminal."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

FORMATS = ("table", "csv", "xlsx")
Row = Sequence[object]


def local_time(epoch_s: float | None, tz: str) -> str:
    if epoch_s is None:
        return ""
    return datetime.fromtimestamp(epoch_s, ZoneInfo(tz)).isoformat(timespec="seconds")


def csv_bytes(headers: Sequence[str], rows: Sequence[Row]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def xlsx_bytes(headers: Sequence[str], rows: Sequence[Row], sheet: str = "history") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook(write_only=False)
    ws = book.active
    ws.title = sheet[:31]
    ws.append(list(headers))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append([_cell(v) for v in row])
    for i, header in enumerate(headers, start=1):
        width = max([len(str(header))] + [len(str(r[i - 1])) for r in rows[:200]]) + 2
        ws.column_dimensions[ws.cell(1, i).column_letter].width = min(60, width * 1.6)
    ws.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _cell(value: object) -> object:
    # Excel reads a text starting with = + - @ as a formula: a note typed by a user must stay text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def text_table(headers: Sequence[str], rows: Sequence[Row]) -> str:
    cells = [[str(h) for h in headers]] + [[str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write(headers: Sequence[str], rows: Sequence[Row], fmt: str, out: Path | None, sheet: str) -> str:
    """Write the table to `out` (or return it for printing: table and csv only)."""
    if fmt == "xlsx":
        if out is None:
            raise ValueError("--format xlsx needs --out FILE.xlsx")
        out.write_bytes(xlsx_bytes(headers, rows, sheet))
        return str(out)
    text = csv_bytes(headers, rows).decode("utf-8-sig") if fmt == "csv" else text_table(headers, rows)
    if out is not None:
        out.write_bytes(csv_bytes(headers, rows) if fmt == "csv" else text.encode())
        return str(out)
    return text
