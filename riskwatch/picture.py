"""The four-colour picture (四色图): a site's live warning colour read together with its static grade.

The engine's live colour says what the monitoring shows now; the static grade (A–D from the registry's
`static_score`/`static_grade`, graded once by the enterprise risk assessment) says how bad an accident
at that enterprise could be. Alarms and notifications follow the live colour only. What supervisors look
at, the board's map and the API's `picture` field, raises a live warning one level at an enterprise
graded C (orange) or D (red): the same deviation matters more where the inherent risk is higher, and
supervision is to concentrate on red- and orange-graded enterprises (docs/picture.md gives the rule's
sources). A normal site stays normal whatever its grade (the grade letter shows beside it), a red stays
red, and a site without a grade shows its live colour.
"""

from __future__ import annotations

from riskwatch.levels import Colour

STATIC_GRADE_LETTER = {"blue": "A", "yellow": "B", "orange": "C", "red": "D"}  # A = lowest inherent risk
RAISING_GRADES = frozenset({"orange", "red"})  # static grades C and D raise a live warning one level


def picture_colour(live: str, static_grade: str | None) -> str:
    """The colour the 四色图 shows for a site at `live` with `static_grade` (a colour label or None)."""
    colour = Colour.parse(live)
    if colour in (Colour.NORMAL, Colour.RED) or static_grade not in RAISING_GRADES:
        return colour.label
    return Colour(colour + 1).label


def picture_table() -> dict[str, dict[str, str]]:
    """The rule as data, static grade -> live colour -> picture colour, for the board's page (one
    definition, here)."""
    grades = ["", *STATIC_GRADE_LETTER]
    return {g: {c.label: picture_colour(c.label, g or None) for c in Colour} for g in grades}
