"""Warning colours and sensor alarm states: the vocabulary every component shares.

See docs/domain.md "Words": red (重大) > orange (较大) > yellow (一般) > blue (低).
"""

from __future__ import annotations

from enum import IntEnum


class Colour(IntEnum):
    """Four-colour warning level; the integer order is severity, so max() is 'take the highest' (就高)."""

    NORMAL = 0
    BLUE = 1
    YELLOW = 2
    ORANGE = 3
    RED = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def label_zh(self) -> str:
        return _ZH[self]

    @classmethod
    def parse(cls, text: str) -> Colour:
        """Colour from its lowercase name ('red') or Chinese name ('红')."""
        key = text.strip().lower()
        for colour in cls:
            if key in (colour.label, _ZH[colour], _ZH[colour][0]):
                return colour
        raise ValueError(f"unknown colour {text!r}; expected one of {', '.join(c.label for c in cls)}")


_ZH = {
    Colour.NORMAL: "正常",
    Colour.BLUE: "蓝色",
    Colour.YELLOW: "黄色",
    Colour.ORANGE: "橙色",
    Colour.RED: "红色",
}


class AlarmState(IntEnum):
    """Sensor-level alarm state (docs/domain.md "Words"). Values are stored in numpy int8 arrays."""

    NORMAL = 0
    L1_HIGH = 1
    L1_LOW = 2
    L2_HIGH = 3
    L2_LOW = 4
    FAULT = 5
    STALE = 6

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_l1(self) -> bool:
        return self in (AlarmState.L1_HIGH, AlarmState.L1_LOW)

    @property
    def is_l2(self) -> bool:
        return self in (AlarmState.L2_HIGH, AlarmState.L2_LOW)

    @classmethod
    def parse(cls, text: str) -> AlarmState:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown alarm state {text!r}; expected one of {', '.join(s.label for s in cls)}"
            ) from None
