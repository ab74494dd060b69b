"""The four-colour picture: live colour and static grade read together (riskwatch/picture.py)."""

from __future__ import annotations

import pytest

from riskwatch.picture import picture_colour, picture_table


@pytest.mark.parametrize(
    ("live", "grade", "shown"),
    [
        ("yellow", "orange", "orange"),  # grade C raises a live warning one level
        ("orange", "red", "red"),  # grade D too
        ("blue", "red", "yellow"),
        ("red", "red", "red"),  # nothing above red
        ("normal", "red", "normal"),  # no live warning: nothing to raise (the grade letter shows)
        ("orange", "yellow", "orange"),  # grades A and B leave the live colour as it is
        ("yellow", "blue", "yellow"),
        ("yellow", None, "yellow"),  # no grade in the registry
        ("橙色", "orange", "red"),  # Chinese labels parse like the rest of riskwatch
    ],
)
def test_a_live_warning_is_raised_one_level_at_c_and_d_graded_sites(
    live: str, grade: str | None, shown: str
) -> None:
    assert picture_colour(live, grade) == shown


def test_the_picture_is_never_below_the_live_colour_and_the_table_is_the_rule() -> None:
    order = ["normal", "blue", "yellow", "orange", "red"]
    table = picture_table()
    assert set(table) == {"", "blue", "yellow", "orange", "red"}
    for grade, row in table.items():
        for live, shown in row.items():
            assert shown == picture_colour(live, grade or None)
            assert 0 <= order.index(shown) - order.index(live) <= 1


def test_an_unknown_live_colour_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown colour"):
        picture_colour("purple", "red")
