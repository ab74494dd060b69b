"""The bulletin's PDF keeps short values on one line: its wide table of orange and red enterprises once
gave 行业, 静态等级 and the time-at-colour columns one character per line."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

from alerting.reports import daily

CAUSE = (
    "两个可燃气体探测器达到二级报警: 1号罐区可燃气体 l2_high 62/50 %LEL; 2号罐区可燃气体 l2_high 55/50 %LEL"
)


def _bulletin() -> daily.Bulletin:
    zero = dict.fromkeys(("red", "orange", "yellow", "blue", "normal"), 0)
    flagged = [
        daily.EnterpriseDay(
            f"S{i}", f"第{i}号危险化学品生产企业有限公司", "南湖区经济开发区", "hazardous_chemicals", "C", peak,
            {"red": 3900.0, "orange": 7260.0, "yellow": 120.0}, [CAUSE], daily.Handling(3, 1, 1, 1, 2, 1),
        )
        for i, peak in enumerate(("red", "orange", "orange"))
    ]  # fmt: skip
    return daily.Bulletin(
        date(2026, 11, 23), "Asia/Shanghai", 0.0, 86400.0, 86400.0, {"南湖区": {**zero, "red": 1}},
        {"危险化学品": {**zero, "red": 1}}, zero, zero, zero, flagged, flagged, 3, 1, 1 / 3, 3,
    )  # fmt: skip


def test_short_columns_of_the_orange_and_red_table_do_not_wrap_in_the_pdf(tmp_path: Path) -> None:
    _, pdf = daily.write(_bulletin(), tmp_path)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    section = text[text.index("三、达到橙色及以上预警的企业") : text.index("四、")]
    lines = section.splitlines()
    header = next(line for line in lines if "企业" in line and "原因" in line)
    for title in ("行业", "静态等级", "最高", "红色时长", "橙色时长", "黄色时长"):
        assert title in header.split(), f"header {title!r} broken: {header!r}"
    rows = [line.split() for line in lines if "危险化学品" in line.split()]
    assert len(rows) == 3, section  # the industry of each enterprise whole on its row's first line
    for cells, peak in zip(rows, ("红", "橙", "橙"), strict=True):
        # the grade, the peak colour and the three durations follow the industry on the same line
        at = cells.index("危险化学品")
        assert cells[at + 1 : at + 6] == ["C", peak, "1小时05分", "2小时01分", "2分"], cells
