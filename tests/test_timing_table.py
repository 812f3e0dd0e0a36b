"""Table tests: the predecessor's 23 expressions, the extensions, and its misparses.

Every expected value below was worked out by hand from the specification, not by running the code:
the anchor is 2024-03-03 07:36:47 UTC (a Sunday), which is 08:36:47 CET in Europe/Berlin (UTC+1;
Berlin switches to CEST only on 2024-03-31). So "09:15 Berlin" on 2024-03-03 is 08:15 UTC.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from celery_orchestra import TimeZoneError, Timing, TimingError, timing

ANCHOR = datetime(2024, 3, 3, 7, 36, 47, tzinfo=UTC)
ZONE = "Europe/Berlin"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    expression: str
    kind: str
    first: datetime | None
    second: datetime | None
    normalised: str

    @property
    def max_runs(self) -> int | None:
        return 1 if self.kind == "once" else None


PREDECESSOR_EXAMPLES = [
    # cyclic: anchor + k * interval
    Row("every 00:00:01", "cyclic", utc(2024, 3, 3, 7, 36, 48), utc(2024, 3, 3, 7, 36, 49), "every 1 second"),
    Row("every 48:00:00", "cyclic", utc(2024, 3, 5, 7, 36, 47), utc(2024, 3, 7, 7, 36, 47), "every 2 days"),
    Row(
        "every 31 minutes and 12 seconds",
        "cyclic",
        utc(2024, 3, 3, 8, 7, 59),
        utc(2024, 3, 3, 8, 39, 11),
        "every 31 minutes and 12 seconds",
    ),
    # weekly: Monday 03:15 CET = 02:15 UTC
    Row(
        "every Monday at 03:15:00",
        "weekly",
        utc(2024, 3, 4, 2, 15),
        utc(2024, 3, 11, 2, 15),
        "every Monday at 03:15:00",
    ),
    # once on a weekday: Tuesday 2024-03-05 13:11 CET; Wednesday 03-06 01:15 CET; Thursday 03-07 00:31:41 CET
    Row("next Tuesday at 13:11:00", "once", utc(2024, 3, 5, 12, 11), None, "once on Tuesday at 13:11:00"),
    Row("once, Wednesday at 01:15:00", "once", utc(2024, 3, 6, 0, 15), None, "once on Wednesday at 01:15:00"),
    Row("once on Thursday, 00:31:41", "once", utc(2024, 3, 6, 23, 31, 41), None, "once on Thursday at 00:31:41"),
    # daily: still ahead today (it is 08:36:47 in Berlin)
    Row(
        "every day at 09:15:14",
        "daily",
        utc(2024, 3, 3, 8, 15, 14),
        utc(2024, 3, 4, 8, 15, 14),
        "every day at 09:15:14",
    ),
    Row(
        "every minute at 15 seconds",
        "minutely",
        utc(2024, 3, 3, 7, 37, 15),
        utc(2024, 3, 3, 7, 38, 15),
        "every minute at 15 seconds",
    ),
    # hourly at minute 05, second 00: 09:05 CET is the first after 08:36:47 CET
    Row("every hour at 05:00", "hourly", utc(2024, 3, 3, 8, 5), utc(2024, 3, 3, 9, 5), "every hour at 05:00"),
    Row("every day on 9:03", "daily", utc(2024, 3, 3, 8, 3), utc(2024, 3, 4, 8, 3), "every day at 09:03:00"),
    Row("every day at 9:15", "daily", utc(2024, 3, 3, 8, 15), utc(2024, 3, 4, 8, 15), "every day at 09:15:00"),
    Row("every day at 13 hours", "daily", utc(2024, 3, 3, 12, 0), utc(2024, 3, 4, 12, 0), "every day at 13:00:00"),
    # once in: 07:36:47 + 13:11:52 = 20:48:39 UTC
    Row(
        "once in 13:11:52",
        "once",
        utc(2024, 3, 3, 20, 48, 39),
        None,
        "once in 13 hours 11 minutes and 52 seconds",
    ),
    # once at a clock time: today, still ahead
    Row("11:23:00", "once", utc(2024, 3, 3, 10, 23), None, "once at 11:23:00"),
    Row("9:13", "once", utc(2024, 3, 3, 8, 13), None, "once at 09:13:00"),
    # absolute dates already past at the anchor: expired, never fire
    Row("2023-04-01 09:13", "once", None, None, "once at 2023-04-01 09:13:00"),
    Row("2023-04-01 09:13:11", "once", None, None, "once at 2023-04-01 09:13:11"),
    Row("next 23:00:00", "once", utc(2024, 3, 3, 22, 0), None, "once at 23:00:00"),
    Row(
        "once in 5 hours 2 minutes and 15 seconds",
        "once",
        utc(2024, 3, 3, 12, 39, 2),
        None,
        "once in 5 hours 2 minutes and 15 seconds",
    ),
    Row("once in 1 hour and 10 minutes", "once", utc(2024, 3, 3, 8, 46, 47), None, "once in 1 hour and 10 minutes"),
    Row(
        "once in 2 minutes and 10 seconds",
        "once",
        utc(2024, 3, 3, 7, 38, 57),
        None,
        "once in 2 minutes and 10 seconds",
    ),
    Row("once in 17 seconds", "once", utc(2024, 3, 3, 7, 37, 4), None, "once in 17 seconds"),
]

EXTENSIONS = [
    Row("every 15 minutes", "cyclic", utc(2024, 3, 3, 7, 51, 47), utc(2024, 3, 3, 8, 6, 47), "every 15 minutes"),
    # dates counted from the first fire date: 03-03, 03-05, ...
    Row("every 2 days at 10:00", "daily", utc(2024, 3, 3, 9, 0), utc(2024, 3, 5, 9, 0), "every 2 days at 10:00:00"),
    # Sunday today, so Monday then Tuesday
    Row("every weekday at 08:00", "weekly", utc(2024, 3, 4, 7, 0), utc(2024, 3, 5, 7, 0), "every weekday at 08:00:00"),
    Row(
        "every Monday and Thursday at 9:00",
        "weekly",
        utc(2024, 3, 4, 8, 0),
        utc(2024, 3, 7, 8, 0),
        "every Monday and Thursday at 09:00:00",
    ),
    # a future absolute date after Berlin's DST change: 09:13 CEST = 07:13 UTC
    Row("2024-04-01 09:13", "once", utc(2024, 4, 1, 7, 13), None, "once at 2024-04-01 09:13:00"),
    # the predecessor read these as 12 s and 30 s
    Row("every 120 seconds", "cyclic", utc(2024, 3, 3, 7, 38, 47), utc(2024, 3, 3, 7, 40, 47), "every 2 minutes"),
    Row("once in 300 seconds", "once", utc(2024, 3, 3, 7, 41, 47), None, "once in 5 minutes"),
]

ALL_ROWS = PREDECESSOR_EXAMPLES + EXTENSIONS


def test_the_table_has_all_23_predecessor_examples() -> None:
    assert len(PREDECESSOR_EXAMPLES) == 23
    assert len({row.expression for row in PREDECESSOR_EXAMPLES}) == 23


@pytest.mark.parametrize("row", ALL_ROWS, ids=lambda row: row.expression)
def test_expression_table(row: Row) -> None:
    t = timing(row.expression, ZONE, anchor=ANCHOR)

    assert t.kind == row.kind
    assert t.max_runs == row.max_runs
    assert str(t) == row.normalised
    assert t.expression == row.normalised

    first = t.next_fire_after(ANCHOR)
    assert first == row.first
    if first is not None:
        assert first.utcoffset() is not None
        assert t.next_fire_after(first) == row.second
    # before the anchor, the first fire is still the first one: nothing fires at or before the anchor
    assert t.next_fire_after(ANCHOR - timedelta(days=3)) == row.first
    expected_fires = [fire for fire in (row.first, row.second) if fire is not None]
    assert t.next_fires(2, after=ANCHOR) == expected_fires


@pytest.mark.parametrize("row", ALL_ROWS, ids=lambda row: row.expression)
def test_normalised_text_means_the_same(row: Row) -> None:
    t = timing(row.expression, ZONE, anchor=ANCHOR)
    again = timing(str(t), ZONE, anchor=ANCHOR)
    assert again == t
    assert str(again) == row.normalised


@pytest.mark.parametrize("row", ALL_ROWS, ids=lambda row: row.expression)
def test_pickle_round_trip(row: Row) -> None:
    t = timing(row.expression, ZONE, anchor=ANCHOR)
    restored = pickle.loads(pickle.dumps(t))
    assert isinstance(restored, Timing)
    assert restored == t
    assert hash(restored) == hash(t)
    assert restored.next_fire_after(ANCHOR) == row.first


def test_next_fire_after_is_strictly_after_its_argument() -> None:
    daily = timing("every day at 9:15", ZONE, anchor=ANCHOR)
    assert daily.next_fire_after(utc(2024, 3, 3, 8, 15)) == utc(2024, 3, 4, 8, 15)
    assert daily.next_fire_after(utc(2024, 3, 3, 8, 14, 59, 999999)) == utc(2024, 3, 3, 8, 15)

    cyclic = timing("every 15 minutes", ZONE, anchor=ANCHOR)
    assert cyclic.next_fire_after(utc(2024, 3, 3, 7, 51, 47)) == utc(2024, 3, 3, 8, 6, 47)
    # drift-free: the grid stays on anchor + k * 15 min however far ahead we ask
    assert cyclic.next_fire_after(utc(2024, 3, 10, 0, 0)) == utc(2024, 3, 10, 0, 6, 47)

    once = timing("once in 17 seconds", ZONE, anchor=ANCHOR)
    assert once.next_fire_after(utc(2024, 3, 3, 7, 37, 4)) is None
    assert once.next_fire_after(utc(2024, 3, 3, 7, 37, 3)) == utc(2024, 3, 3, 7, 37, 4)


def test_nothing_fires_at_its_anchor() -> None:
    # The anchor is exactly 09:15:00 Berlin: today's slot is at the anchor, so it does not count.
    at_slot = utc(2024, 3, 3, 8, 15)
    assert timing("every day at 9:15", ZONE, anchor=at_slot).next_fire_after(at_slot) == utc(2024, 3, 4, 8, 15)
    assert timing("9:15", ZONE, anchor=at_slot).next_fire_after(at_slot) == utc(2024, 3, 4, 8, 15)
    assert timing("every hour at 15:00", ZONE, anchor=at_slot).next_fire_after(at_slot) == utc(2024, 3, 3, 9, 15)
    assert timing("every minute at 0 seconds", ZONE, anchor=at_slot).next_fire_after(at_slot) == utc(2024, 3, 3, 8, 16)
    # a Sunday 09:15 anchor and "next Sunday at 09:15": a week later, not now
    assert timing("next Sunday at 9:15", ZONE, anchor=at_slot).next_fire_after(at_slot) == utc(2024, 3, 10, 8, 15)


def test_once_at_a_clock_time_already_past_today_fires_tomorrow() -> None:
    # 08:36:47 Berlin: 08:00 has passed, so tomorrow 08:00 CET
    t = timing("08:00", ZONE, anchor=ANCHOR)
    assert t.next_fires(5, after=ANCHOR) == [utc(2024, 3, 4, 7, 0)]
    assert not t.is_expired


def test_once_on_todays_weekday_counts_while_still_ahead() -> None:
    # The anchor is a Sunday at 08:36:47 Berlin.
    assert timing("next Sunday at 09:00", ZONE, anchor=ANCHOR).next_fire_after(ANCHOR) == utc(2024, 3, 3, 8, 0)
    assert timing("once on Sunday at 08:00", ZONE, anchor=ANCHOR).next_fire_after(ANCHOR) == utc(2024, 3, 10, 7, 0)


def test_every_two_days_counts_from_the_first_fire_date() -> None:
    # Anchor at 13:00 Berlin: today's 10:00 has passed, so the first fire is on Monday 03-04.
    anchor = utc(2024, 3, 3, 12, 0)
    t = timing("every 2 days at 10:00", ZONE, anchor=anchor)
    assert t.next_fires(4, after=anchor) == [
        utc(2024, 3, 4, 9, 0),
        utc(2024, 3, 6, 9, 0),
        utc(2024, 3, 8, 9, 0),
        utc(2024, 3, 10, 9, 0),
    ]
    # asking from the middle of a gap day lands on the grid, not on the next calendar day
    assert t.next_fire_after(utc(2024, 3, 5, 12, 0)) == utc(2024, 3, 6, 9, 0)


def test_expired_absolute_date() -> None:
    t = timing("2023-04-01 09:13", ZONE, anchor=ANCHOR)
    assert t.is_expired
    assert t.next_fire_after(utc(2000, 1, 1)) is None
    assert t.next_fire_after(ANCHOR) is None
    assert t.next_fires(3, after=utc(2023, 1, 1)) == []


def test_future_absolute_date_is_not_expired_and_fires_once() -> None:
    t = timing("2024-04-01 09:13:11", ZONE, anchor=ANCHOR)
    assert not t.is_expired
    assert t.next_fires(3, after=ANCHOR) == [utc(2024, 4, 1, 7, 13, 11)]
    assert t.next_fire_after(utc(2024, 4, 1, 7, 13, 11)) is None


@pytest.mark.parametrize("expression", ["every 15 minutes", "every day at 9:15", "once in 17 seconds", "9:13"])
def test_only_past_absolute_dates_are_expired(expression: str) -> None:
    assert not timing(expression, ZONE, anchor=ANCHOR).is_expired


# ---- the predecessor's misparses ------------------------------------------------------------------

MISPARSES_NOW_ERRORS = [
    # (expression, column, a word the reason must contain)
    ("13:00:00 tomorrow", 10, "tomorrow"),
    ("every 01:00:00 on Monday", 16, "on"),
    ("every at 13:00:00", 7, "at"),
    ("every 00:00:00", 7, "zero"),
    ("once in 00:00:00", 9, "zero"),
    ("every 99:99:99", 7, "60"),
    ("every day at 25:00:00", 14, "24"),
    ("once in Monday at 03:15:00", 9, "Monday"),
]


@pytest.mark.parametrize(("expression", "column", "word"), MISPARSES_NOW_ERRORS)
def test_predecessor_misparses_are_errors(expression: str, column: int, word: str) -> None:
    with pytest.raises(TimingError) as info:
        timing(expression, ZONE, anchor=ANCHOR)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.expression == expression
    assert error.line == 1
    assert error.column == column
    assert word in error.reason
    assert_caret_under(error)


def assert_caret_under(error: TimingError) -> None:
    """str(error) shows the offending line and a caret under ``error.column``."""
    shown = error.expression.splitlines()[error.line - 1]
    rendered = str(error).splitlines()
    assert error.expression in rendered[0] or repr(error.expression) in rendered[0]
    index = next(i for i, text in enumerate(rendered) if text.endswith(shown) and i + 1 < len(rendered))
    indent = len(rendered[index]) - len(shown)
    assert rendered[index + 1] == " " * (indent + error.column - 1) + "^"


def test_syntax_error_lists_what_was_expected() -> None:
    with pytest.raises(TimingError) as info:
        timing("13:00:00 tomorrow", ZONE, anchor=ANCHOR)
    assert info.value.expected == ["'am'/'pm'", "the end of the expression"]

    with pytest.raises(TimingError) as info:
        timing("once in Monday at 03:15:00", ZONE, anchor=ANCHOR)
    assert "a number" in info.value.expected
    assert "a time like 09:15 or 09:15:00" in info.value.expected
    assert not any("weekday" in word for word in info.value.expected)


def test_range_errors_expect_nothing() -> None:
    for expression in ("every 00:00:00", "every 99:99:99", "every day at 25:00:00"):
        with pytest.raises(TimingError) as info:
            timing(expression, ZONE, anchor=ANCHOR)
        assert info.value.expected == []


def test_trailing_word_after_complete_interval_expects_the_end() -> None:
    with pytest.raises(TimingError) as info:
        timing("every 01:00:00 on Monday", ZONE, anchor=ANCHOR)
    assert info.value.expected == ["the end of the expression"]
    assert "<END-OF-FILE>" not in str(info.value)


def test_trailing_word_after_complete_daily_expects_ampm_or_the_end() -> None:
    with pytest.raises(TimingError) as info:
        timing("every day at 9:15 on", ZONE, anchor=ANCHOR)
    assert info.value.column == 19
    assert info.value.expected == ["'am'/'pm'", "the end of the expression"]


@pytest.mark.parametrize("expression", ["tomorrow at 9", "every x", "in x"])
def test_expected_words_are_words_not_grammar_rules(expression: str) -> None:
    with pytest.raises(TimingError) as info:
        timing(expression, ZONE, anchor=ANCHOR)
    rule_names = {"start", "every_day", "every_interval", "clock_time", "unit", "duration", "duration_part", "day_set"}
    assert rule_names.isdisjoint(info.value.expected)
    assert not any(name in str(info.value) for name in ("every_day", "clock_time", "duration_part"))


@pytest.mark.parametrize("expression", ["every 5000 weeks and 30000 days", "once in 36000 days and 36000 hours"])
def test_long_sums_of_units_are_refused(expression: str) -> None:
    # The cap is on the total: every accepted duration's normalised text (one "N days" part at
    # most) parses back, so pickles of accepted timings always load.
    with pytest.raises(TimingError) as info:
        timing(expression, ZONE, anchor=ANCHOR)
    assert "too long" in info.value.reason
    first_digit = next(i for i, char in enumerate(expression) if char.isdigit())
    assert info.value.column == first_digit + 1  # the caret is under the start of the duration


def test_a_non_string_expression_is_a_timing_error() -> None:
    with pytest.raises(TimingError, match="must be a string, not list"):
        timing(["every day"], ZONE, anchor=ANCHOR)  # type: ignore[arg-type]


def test_timing_error_pickles_with_its_position() -> None:
    with pytest.raises(TimingError) as info:
        timing("every day at 25:00:00", ZONE, anchor=ANCHOR)
    restored = pickle.loads(pickle.dumps(info.value))
    assert isinstance(restored, TimingError)
    assert (restored.expression, restored.line, restored.column, restored.reason, restored.expected) == (
        "every day at 25:00:00",
        1,
        14,
        info.value.reason,
        [],
    )
    assert str(restored) == str(info.value)


@pytest.mark.parametrize(
    ("expression", "line", "column"),
    [
        ("every 5 minutes\nfoo", 2, 1),
        ("every 5\nminutes at", 2, 9),
        ("every\nday at 25:00", 2, 8),
    ],
)
def test_errors_on_later_lines(expression: str, line: int, column: int) -> None:
    with pytest.raises(TimingError) as info:
        timing(expression, ZONE, anchor=ANCHOR)
    assert (info.value.line, info.value.column) == (line, column)
    assert_caret_under(info.value)


def test_empty_expression() -> None:
    for expression in ("", "   "):
        with pytest.raises(TimingError) as info:
            timing(expression, ZONE, anchor=ANCHOR)
        assert (info.value.line, info.value.column) == (1, 1)
    # only separators: nothing to read, so the error is at the end of the text
    with pytest.raises(TimingError) as info:
        timing(" , ,", ZONE, anchor=ANCHOR)
    assert (info.value.line, info.value.column) == (1, 5)


# ---- case, spaces and commas ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "normalised"),
    [
        ("EVERY MONDAY AT 03:15:00", "every Monday at 03:15:00"),
        ("  every   Monday ,, at  03:15:00  ", "every Monday at 03:15:00"),
        (",every,monday,at,03:15:00,", "every Monday at 03:15:00"),
        ("every\tMonday\nat 03:15:00", "every Monday at 03:15:00"),
        ("Every Day On 9:03", "every day at 09:03:00"),
        ("ONCE IN 17 SECONDS", "once in 17 seconds"),
        ("once  in   5 hours, 2 minutes, and 15 seconds", "once in 5 hours 2 minutes and 15 seconds"),
        ("NEXT tuesday AT 13:11:00", "once on Tuesday at 13:11:00"),
        ("Once, Wednesday, at 01:15:00", "once on Wednesday at 01:15:00"),
        ("every Minute At 15 Seconds", "every minute at 15 seconds"),
        ("every monday, thursday at 9:00", "every Monday and Thursday at 09:00:00"),
        ("  9:13  ", "once at 09:13:00"),
    ],
)
def test_case_space_and_comma_tolerance(variant: str, normalised: str) -> None:
    t = timing(variant, ZONE, anchor=ANCHOR)
    assert str(t) == normalised
    assert t == timing(normalised, ZONE, anchor=ANCHOR)


# ---- value semantics ------------------------------------------------------------------------------


def test_equality_depends_on_meaning_zone_and_anchor() -> None:
    a = timing("every day at 9:00", ZONE, anchor=ANCHOR)
    assert a == timing("every day at 09:00:00", ZONE, anchor=ANCHOR)
    assert a == timing("every day at 9:00", "europe/berlin", anchor=ANCHOR)
    assert hash(a) == hash(timing("every day at 09:00:00", ZONE, anchor=ANCHOR))
    assert a != timing("every day at 9:01", ZONE, anchor=ANCHOR)
    assert a != timing("every day at 9:00", "UTC", anchor=ANCHOR)
    assert a != timing("every day at 9:00", ZONE, anchor=ANCHOR + timedelta(seconds=1))
    assert a != "every day at 09:00:00"


def test_repr_names_the_expression_kind_and_zone() -> None:
    text = repr(timing("every day on 9:03", ZONE, anchor=ANCHOR))
    assert "'every day at 09:03:00'" in text
    assert "daily" in text
    assert "Europe/Berlin" in text


def test_zone_defaults_to_utc_without_app() -> None:
    t = timing("every day at 9:15", anchor=ANCHOR)
    assert t.next_fire_after(ANCHOR) == utc(2024, 3, 3, 9, 15)


def test_other_zone_moves_wall_clock_fires() -> None:
    # 09:15 IST (+05:30) = 03:45 UTC, already past at 07:36:47 UTC, so tomorrow
    t = timing("every day at 9:15", "Asia/Kolkata", anchor=ANCHOR)
    assert t.next_fires(2, after=ANCHOR) == [utc(2024, 3, 4, 3, 45), utc(2024, 3, 5, 3, 45)]
    # hourly at :05 in a +05:30 zone is :35 UTC; the anchor is 13:06:47 IST, so 14:05 IST comes first
    hourly = timing("every hour at 05:00", "Asia/Kolkata", anchor=ANCHOR)
    assert hourly.next_fires(2, after=ANCHOR) == [utc(2024, 3, 3, 8, 35), utc(2024, 3, 3, 9, 35)]


@pytest.mark.parametrize("zone", ["Europe/Berlinn", "Mars/Olympus", "Not A Zone"])
def test_unknown_time_zone(zone: str) -> None:
    with pytest.raises(TimeZoneError) as info:
        timing("every day at 9:15", zone, anchor=ANCHOR)
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, TimingError)
    message = str(info.value)
    assert repr(zone) in message
    assert "time zone" in message


def test_unknown_time_zone_suggests_the_close_name() -> None:
    with pytest.raises(TimeZoneError, match="did you mean 'Europe/Berlin'"):
        timing("every day at 9:15", "Europe/Berlinn", anchor=ANCHOR)


def test_naive_anchor_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        timing("every 15 minutes", ZONE, anchor=datetime(2024, 3, 3, 7, 36, 47))
