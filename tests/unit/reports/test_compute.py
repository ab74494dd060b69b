"""The bulletin's and the quality report's numbers, from hand-made histories with known answers."""

from __future__ import annotations

import numpy as np

from alerting.reports import compute as c

DAY0, DAY1 = 1_000_000.0, 1_086_400.0


def test_time_at_colour_counts_the_colour_held_at_midnight_and_each_change():
    pieces = c.level_timeline(
        "orange", [(DAY0 + 3600, "red"), (DAY0 + 5400, "normal"), (DAY1 + 10, "red")], DAY0, DAY1
    )
    seconds = c.time_at_level(pieces)
    assert seconds == {"orange": 3600.0, "red": 1800.0, "normal": 86400.0 - 5400.0}
    assert c.peak(pieces) == "red"


def test_a_change_before_the_day_only_sets_the_starting_colour():
    pieces = c.level_timeline("normal", [(DAY0 - 50, "yellow")], DAY0, DAY1)
    assert c.time_at_level(pieces) == {"yellow": 86400.0}
    assert c.peak(c.level_timeline("normal", [(DAY0, "red"), (DAY0, "normal")], DAY0, DAY1)) == "normal"


def test_enterprises_per_colour_by_group_and_change_against_yesterday():
    by = c.count_by({"a": "r1", "b": "r1", "c": "r2"}, {"a": "red", "b": "normal", "c": "red"})
    assert by == {"r1": {"normal": 1, "blue": 0, "yellow": 0, "orange": 0, "red": 1},
                  "r2": {"normal": 0, "blue": 0, "yellow": 0, "orange": 0, "red": 1}}  # fmt: skip
    assert c.colour_change({"red": 2, "normal": 1}, {"red": 1, "orange": 1, "normal": 1})["orange"] == -1


def test_online_rate_of_a_gateway_offline_for_a_known_time():
    offline = c.offline_intervals(
        [(DAY0 + 100, True), (DAY0 + 700, False), (DAY1 - 60, True)], False, DAY0, DAY1
    )
    assert offline == [(DAY0 + 100, DAY0 + 700), (DAY1 - 60, DAY1)]
    assert c.online_rate(offline, DAY0, DAY1) == 1 - 660 / 86400
    assert c.offline_intervals([(DAY0 + 30, False)], True, DAY0, DAY1) == [(DAY0, DAY0 + 30)]


def test_completeness_credits_a_sensor_once_per_owed_window():
    owed = [c.expected_readings(86400, 60), c.expected_readings(86400, 3600), c.expected_readings(86400, 10)]
    assert owed == [1440, 24, 1440]  # a sensor reporting every 10 s owes a minute with data, no more
    hour = (DAY0 // 3600 + 1) * 3600  # windows are aligned on the epoch
    every_minute_of_the_first_half = [hour + 60 * m for m in range(720)]
    per_minute = c.credited_windows(every_minute_of_the_first_half, 60, DAY0, DAY1)
    hourly = c.credited_windows(every_minute_of_the_first_half, 3600, DAY0, DAY1)
    assert (per_minute, hourly) == (720, 12)  # reporting every minute pays an hourly sensor once an hour
    assert c.completeness(per_minute + hourly, owed[0] + owed[1]) == (720 + 12) / (1440 + 24)
    # DAY0 is 46 minutes into an hour: that hour, paid in its minute before DAY0, is the day before's
    assert c.credited_windows([DAY0 - 60, DAY0, DAY0 + 60], 3600, DAY0, DAY1) == 0
    assert c.credited_windows([DAY0, DAY0 + 60], 3600, DAY0, DAY1) == 1


def test_acknowledgement_on_time_late_or_not_yet():
    assert c.ack_verdict(0, 299, 300, 1000) == c.ON_TIME
    assert c.ack_verdict(0, 301, 300, 1000) == c.LATE
    assert c.ack_verdict(0, None, 300, 1000) == c.LATE
    assert c.ack_verdict(0, None, 300, 100) == c.NOT_ACKED
    assert c.closed_loop_rate([True, False, True, True]) == 0.75
    assert c.closed_loop_rate([]) is None


def test_flood_share_counts_ten_minute_periods_with_more_than_ten():
    times = [DAY0 + i for i in range(11)] + [DAY0 + 600 + i for i in range(10)]
    counts = c.per_window(times, DAY0, DAY1)
    assert counts.size == 144 and counts[0] == 11 and counts[1] == 10
    assert c.flood_share(counts) == 1 / 144


def test_chattering_is_three_activations_within_a_minute():
    assert c.chattering([0, 30, 60])
    assert not c.chattering([0, 31, 62])
    assert not c.chattering([0, 10])


def test_standing_alarm_is_active_more_than_a_day_at_the_end():
    active = c.active_intervals(False, [(DAY0 - 3600, True)], DAY0 - 7 * 86400, DAY1)
    assert c.standing(active, DAY1)
    assert not c.standing(c.active_intervals(False, [(DAY0 + 10, True)], DAY0 - 86400, DAY1), DAY1)


def test_suggestions_come_from_the_alarms_own_history():
    short = c.suggest([0, 100, 200, 300], [4, 6, 8, 12], 25.0, 0.5, 0.0, [26, 26, 27, 30])
    assert short.kind == "delay" and short.value == 20.0 and short.removes == 4
    bouncing = c.suggest(
        [0, 900, 1500, 2100], [400, 400, 400, 400], 25.0, 0.5, 10.0, [25.5, 26.0, 27.0, 29.0]
    )
    assert bouncing.kind == "deadband" and 1.0 <= bouncing.value <= 4.0
    standing = c.suggest([0], [80000], 25.0, 0.5, 10.0, list(np.linspace(20, 40, 100)))
    assert standing.kind == "set_point" and standing.value == float(
        np.round(np.percentile(np.linspace(20, 40, 100), 95), 3)
    )
