"""DST: exact UTC fire instants around the 2024 transitions (RFC 5545 rules).

Transitions used (all verified against the IANA data, the fire times worked out by hand):

* Europe/Berlin: 2024-03-31 01:00 UTC, 02:00 CET (+1) -> 03:00 CEST (+2);
  2024-10-27 01:00 UTC, 03:00 CEST -> 02:00 CET, so 02:00-03:00 local happens twice.
* America/New_York: 2024-03-10 07:00 UTC, 02:00 EST (-5) -> 03:00 EDT (-4);
  2024-11-03 06:00 UTC, 02:00 EDT -> 01:00 EST, so 01:00-02:00 local happens twice.
* Australia/Lord_Howe (a 30-minute shift): 2024-04-06 15:00 UTC, 02:00 +11 -> 01:30 +10:30, so
  01:30-02:00 local happens twice; 2024-10-05 15:30 UTC, 02:00 +10:30 -> 02:30 +11, so 02:00-02:30 local
  does not exist on 2024-10-06.

Rules: a nonexistent local time is read with the offset from before the gap; a repeated local time fires
at its first occurrence only; daily/weekly fire exactly once per matching local date; minutely/hourly fire
at every real instant whose wall clock shows the position (both copies of a repeated hour); cyclic and
"once in" count elapsed time.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from celery_orchestra import timing

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(expression: str, zone: str, anchor: datetime, n: int) -> list[datetime]:
    # Compared in UTC on purpose: under PEP 495, == between datetimes of different zones is always
    # False when one of them lies in a repeated hour, even for the same instant.
    return [fire.astimezone(UTC) for fire in timing(expression, zone, anchor=anchor).next_fires(n, after=anchor)]


def in_utc(fire: datetime | None) -> datetime | None:
    return None if fire is None else fire.astimezone(UTC)


Case = tuple[str, str, datetime, list[datetime]]

DAILY: list[Case] = [
    # Berlin spring forward: 02:30 does not exist on 03-31, read as 02:30 CET = 03:30 CEST
    (
        "every day at 02:30",
        BERLIN,
        utc(2024, 3, 29, 12),
        [utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1, 30), utc(2024, 4, 1, 0, 30), utc(2024, 4, 2, 0, 30)],
    ),
    # the first nonexistent instant 02:00 is 03:00 CEST, the same instant as 03:00 that day
    ("every day at 02:00", BERLIN, utc(2024, 3, 30, 12), [utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 0, 0)]),
    ("every day at 03:00", BERLIN, utc(2024, 3, 30, 12), [utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 1, 0)]),
    (
        "every day at 01:59:59",
        BERLIN,
        utc(2024, 3, 30, 12),
        [utc(2024, 3, 31, 0, 59, 59), utc(2024, 3, 31, 23, 59, 59)],
    ),
    # an ordinary morning time keeps its wall clock: 23 h between the two fires
    ("every day at 09:00", BERLIN, utc(2024, 3, 30, 0), [utc(2024, 3, 30, 8), utc(2024, 3, 31, 7), utc(2024, 4, 1, 7)]),
    # Berlin fall back: 02:30 happens twice on 10-27, fires at the CEST one only
    (
        "every day at 02:30",
        BERLIN,
        utc(2024, 10, 25, 12),
        [utc(2024, 10, 26, 0, 30), utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)],
    ),
    ("every day at 02:00", BERLIN, utc(2024, 10, 26, 12), [utc(2024, 10, 27, 0, 0), utc(2024, 10, 28, 1, 0)]),
    (
        "every day at 02:59:59",
        BERLIN,
        utc(2024, 10, 26, 12),
        [utc(2024, 10, 27, 0, 59, 59), utc(2024, 10, 28, 1, 59, 59)],
    ),
    # 03:00 happens once (CET): 25 h after the previous day's 03:00 CEST
    (
        "every day at 03:00",
        BERLIN,
        utc(2024, 10, 25, 12),
        [utc(2024, 10, 26, 1), utc(2024, 10, 27, 2), utc(2024, 10, 28, 2)],
    ),
    # New York spring forward: 02:30 on 03-10 is read as 02:30 EST = 03:30 EDT
    (
        "every day at 02:30",
        NEW_YORK,
        utc(2024, 3, 8, 12),
        [utc(2024, 3, 9, 7, 30), utc(2024, 3, 10, 7, 30), utc(2024, 3, 11, 6, 30)],
    ),
    # New York fall back: 01:30 EDT on 11-03 and not again at 01:30 EST
    (
        "every day at 01:30",
        NEW_YORK,
        utc(2024, 11, 1, 12),
        [utc(2024, 11, 2, 5, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)],
    ),
    ("every day at 16:04", NEW_YORK, utc(2024, 11, 2, 12), [utc(2024, 11, 2, 20, 4), utc(2024, 11, 3, 21, 4)]),
    # Lord Howe fall back: 01:45 happens at +11 and again at +10:30; only the first counts
    (
        "every day at 01:45",
        LORD_HOWE,
        utc(2024, 4, 5, 0),
        [utc(2024, 4, 5, 14, 45), utc(2024, 4, 6, 14, 45), utc(2024, 4, 7, 15, 15)],
    ),
    # 02:00 on 04-07 is not repeated (the repeat is 01:30-02:00) and only exists at +10:30: 24.5 h later
    (
        "every day at 02:00",
        LORD_HOWE,
        utc(2024, 4, 5, 0),
        [utc(2024, 4, 5, 15, 0), utc(2024, 4, 6, 15, 30), utc(2024, 4, 7, 15, 30)],
    ),
    # Lord Howe spring forward: 02:15 does not exist on 10-06, read at +10:30 = 02:45 +11
    (
        "every day at 02:15",
        LORD_HOWE,
        utc(2024, 10, 4, 0),
        [utc(2024, 10, 4, 15, 45), utc(2024, 10, 5, 15, 45), utc(2024, 10, 6, 15, 15)],
    ),
    # 02:30 on 10-06 is exactly the first instant after the gap
    (
        "every day at 02:30",
        LORD_HOWE,
        utc(2024, 10, 4, 0),
        [utc(2024, 10, 4, 16, 0), utc(2024, 10, 5, 15, 30), utc(2024, 10, 6, 15, 30)],
    ),
    # every 2 days across the Berlin gap: 03-29, 03-31 (gap day), 04-02
    (
        "every 2 days at 02:30",
        BERLIN,
        utc(2024, 3, 28, 12),
        [utc(2024, 3, 29, 1, 30), utc(2024, 3, 31, 1, 30), utc(2024, 4, 2, 0, 30)],
    ),
]


@pytest.mark.parametrize(("expression", "zone", "anchor", "expected"), DAILY)
def test_daily(expression: str, zone: str, anchor: datetime, expected: list[datetime]) -> None:
    assert fires(expression, zone, anchor, len(expected)) == expected


WEEKLY: list[Case] = [
    # 2024-03-31 and 2024-10-27 are Sundays
    (
        "every Sunday at 02:30",
        BERLIN,
        utc(2024, 3, 20),
        [utc(2024, 3, 24, 1, 30), utc(2024, 3, 31, 1, 30), utc(2024, 4, 7, 0, 30)],
    ),
    (
        "every Sunday at 02:30",
        BERLIN,
        utc(2024, 10, 15),
        [utc(2024, 10, 20, 0, 30), utc(2024, 10, 27, 0, 30), utc(2024, 11, 3, 1, 30)],
    ),
    # 2024-03-10 and 2024-11-03 are Sundays
    (
        "every Sunday and Monday at 02:30",
        NEW_YORK,
        utc(2024, 3, 5),
        [utc(2024, 3, 10, 7, 30), utc(2024, 3, 11, 6, 30), utc(2024, 3, 17, 6, 30)],
    ),
    (
        "every Sunday at 01:30",
        NEW_YORK,
        utc(2024, 10, 25),
        [utc(2024, 10, 27, 5, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 10, 6, 30)],
    ),
    # 2024-04-07 and 2024-10-06 are Sundays
    (
        "every Sunday at 01:45",
        LORD_HOWE,
        utc(2024, 3, 25),
        [utc(2024, 3, 30, 14, 45), utc(2024, 4, 6, 14, 45), utc(2024, 4, 13, 15, 15)],
    ),
    (
        "every weekend at 02:15",
        LORD_HOWE,
        utc(2024, 10, 1),
        [utc(2024, 10, 4, 15, 45), utc(2024, 10, 5, 15, 45), utc(2024, 10, 11, 15, 15), utc(2024, 10, 12, 15, 15)],
    ),
]


@pytest.mark.parametrize(("expression", "zone", "anchor", "expected"), WEEKLY)
def test_weekly(expression: str, zone: str, anchor: datetime, expected: list[datetime]) -> None:
    assert fires(expression, zone, anchor, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # after the first 02:30 (CEST) of Berlin's fall-back night, the CET 02:30 is not a fire
        ("every day at 02:30", BERLIN, utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)),
        ("every day at 02:30", BERLIN, utc(2024, 10, 27, 1, 15), utc(2024, 10, 28, 1, 30)),
        ("every day at 01:30", NEW_YORK, utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)),
        ("every day at 01:30", NEW_YORK, utc(2024, 11, 3, 6, 0), utc(2024, 11, 4, 6, 30)),
        ("every Sunday at 01:45", LORD_HOWE, utc(2024, 4, 6, 14, 45), utc(2024, 4, 13, 15, 15)),
        ("every Sunday at 01:45", LORD_HOWE, utc(2024, 4, 6, 15, 5), utc(2024, 4, 13, 15, 15)),
    ],
)
def test_repeated_local_time_is_not_a_second_fire(
    expression: str, zone: str, after: datetime, expected: datetime
) -> None:
    t = timing(expression, zone, anchor=utc(2024, 1, 1))
    assert in_utc(t.next_fire_after(after)) == expected


@pytest.mark.parametrize(
    ("expression", "zone", "first", "last"),
    [
        ("every day at 02:30", BERLIN, "2024-03-25", "2024-04-04"),
        ("every day at 02:30", BERLIN, "2024-10-21", "2024-10-31"),
        ("every day at 01:30", NEW_YORK, "2024-03-05", "2024-03-15"),
        ("every day at 01:30", NEW_YORK, "2024-10-29", "2024-11-08"),
        ("every day at 01:45", LORD_HOWE, "2024-04-02", "2024-04-12"),
        ("every day at 02:15", LORD_HOWE, "2024-10-01", "2024-10-11"),
        ("every day at 00:00", LORD_HOWE, "2024-10-01", "2024-10-11"),
    ],
)
def test_daily_fires_once_per_local_date_across_a_change(expression: str, zone: str, first: str, last: str) -> None:
    tz = ZoneInfo(zone)
    # anchored a second before local midnight, so the first fire is on `first` even for 00:00
    start = datetime.fromisoformat(first).replace(tzinfo=tz) - timedelta(seconds=1)
    t = timing(expression, zone, anchor=start)
    result = t.next_fires(11, after=start)
    local_dates = [fire.astimezone(tz).date().isoformat() for fire in result]
    day = datetime.fromisoformat(first).date()
    assert local_dates == [(day + timedelta(days=k)).isoformat() for k in range(11)]
    assert local_dates[-1] == last


HOURLY: list[Case] = [
    # New York fall back: both 01:30s (EDT 05:30 UTC and EST 06:30 UTC)
    (
        "every hour at 30:00",
        NEW_YORK,
        utc(2024, 11, 3, 4, 0),
        [utc(2024, 11, 3, 4, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30), utc(2024, 11, 3, 7, 30)],
    ),
    # New York spring forward: 01:30 EST then 03:30 EDT, one real hour apart
    (
        "every hour at 30:00",
        NEW_YORK,
        utc(2024, 3, 10, 5, 0),
        [utc(2024, 3, 10, 5, 30), utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7, 30), utc(2024, 3, 10, 8, 30)],
    ),
    # Berlin fall back: 02:00 CEST, 02:00 CET, 03:00 CET
    (
        "every hour at 00:00",
        BERLIN,
        utc(2024, 10, 26, 23, 30),
        [utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 1, 0), utc(2024, 10, 27, 2, 0)],
    ),
    # Berlin spring forward: 01:15 CET, then 03:15 CEST
    (
        "every hour at 15:00",
        BERLIN,
        utc(2024, 3, 30, 23, 30),
        [utc(2024, 3, 31, 0, 15), utc(2024, 3, 31, 1, 15), utc(2024, 3, 31, 2, 15)],
    ),
    # Lord Howe fall back at 15:00 UTC: 00:45 +11, 01:45 +11, 01:45 +10:30 (30 min later), 02:45 +10:30
    (
        "every hour at 45:00",
        LORD_HOWE,
        utc(2024, 4, 6, 13, 0),
        [utc(2024, 4, 6, 13, 45), utc(2024, 4, 6, 14, 45), utc(2024, 4, 6, 15, 15), utc(2024, 4, 6, 16, 15)],
    ),
    # ... while :15 is outside the repeated half hour: 00:15, 01:15 (+11), then 02:15 +10:30, 90 min later
    (
        "every hour at 15:00",
        LORD_HOWE,
        utc(2024, 4, 6, 13, 0),
        [utc(2024, 4, 6, 13, 15), utc(2024, 4, 6, 14, 15), utc(2024, 4, 6, 15, 45), utc(2024, 4, 6, 16, 45)],
    ),
    # Lord Howe spring forward at 15:30 UTC: 00:45, 01:45 (+10:30), then 02:45 +11, 30 min later
    (
        "every hour at 45:00",
        LORD_HOWE,
        utc(2024, 10, 5, 14, 0),
        [utc(2024, 10, 5, 14, 15), utc(2024, 10, 5, 15, 15), utc(2024, 10, 5, 15, 45), utc(2024, 10, 5, 16, 45)],
    ),
    # ... and 02:15 does not exist: 01:15 +10:30, then 03:15 +11, 90 min later
    (
        "every hour at 15:00",
        LORD_HOWE,
        utc(2024, 10, 5, 14, 0),
        [utc(2024, 10, 5, 14, 45), utc(2024, 10, 5, 16, 15), utc(2024, 10, 5, 17, 15)],
    ),
]


@pytest.mark.parametrize(("expression", "zone", "anchor", "expected"), HOURLY)
def test_hourly(expression: str, zone: str, anchor: datetime, expected: list[datetime]) -> None:
    assert fires(expression, zone, anchor, len(expected)) == expected


MINUTELY: list[Case] = [
    # a 30-minute shift keeps the seconds: still every UTC minute at :15 through the change
    (
        "every minute at 15 seconds",
        LORD_HOWE,
        utc(2024, 4, 6, 14, 58),
        [
            utc(2024, 4, 6, 14, 58, 15),
            utc(2024, 4, 6, 14, 59, 15),
            utc(2024, 4, 6, 15, 0, 15),
            utc(2024, 4, 6, 15, 1, 15),
        ],
    ),
    (
        "every minute at 15 seconds",
        LORD_HOWE,
        utc(2024, 10, 5, 15, 28, 30),
        [utc(2024, 10, 5, 15, 29, 15), utc(2024, 10, 5, 15, 30, 15), utc(2024, 10, 5, 15, 31, 15)],
    ),
    (
        "every minute at 0 seconds",
        NEW_YORK,
        utc(2024, 11, 3, 5, 58, 30),
        [utc(2024, 11, 3, 5, 59), utc(2024, 11, 3, 6, 0), utc(2024, 11, 3, 6, 1)],
    ),
    (
        "every minute at 30 seconds",
        BERLIN,
        utc(2024, 3, 31, 0, 59),
        [utc(2024, 3, 31, 0, 59, 30), utc(2024, 3, 31, 1, 0, 30), utc(2024, 3, 31, 1, 1, 30)],
    ),
    (
        "every minute at 59 seconds",
        NEW_YORK,
        utc(2024, 3, 10, 6, 58),
        [utc(2024, 3, 10, 6, 58, 59), utc(2024, 3, 10, 6, 59, 59), utc(2024, 3, 10, 7, 0, 59)],
    ),
    # The wall clock, not UTC: Monrovia kept -00:44:30 until 1972-01-07 00:44:30 UTC, when its clock
    # jumped from 00:00:00 to 00:44:30. Local :15 s is :45 s UTC before, :15 s UTC after; the local
    # minutes 00:00-00:44 of that day never happen.
    (
        "every minute at 15 seconds",
        "Africa/Monrovia",
        utc(1972, 1, 7, 0, 42),
        [
            utc(1972, 1, 7, 0, 42, 45),
            utc(1972, 1, 7, 0, 43, 45),
            utc(1972, 1, 7, 0, 45, 15),
            utc(1972, 1, 7, 0, 46, 15),
        ],
    ),
]


@pytest.mark.parametrize(("expression", "zone", "anchor", "expected"), MINUTELY)
def test_minutely(expression: str, zone: str, anchor: datetime, expected: list[datetime]) -> None:
    assert fires(expression, zone, anchor, len(expected)) == expected


def test_hourly_follows_a_half_and_quarter_hour_wall_clock() -> None:
    # Monrovia 1970: 11:15:30 local at 12:00 UTC; the next local 12:05:00 is 12:49:30 UTC
    anchor = utc(1970, 6, 1, 12)
    result = fires("every hour at 05:00", "Africa/Monrovia", anchor, 2)
    assert result == [utc(1970, 6, 1, 12, 49, 30), utc(1970, 6, 1, 13, 49, 30)]


ONCE: list[Case] = [
    # 02:30 on Berlin's gap night: 03:30 CEST
    ("02:30", BERLIN, utc(2024, 3, 30, 12), [utc(2024, 3, 31, 1, 30)]),
    # registered at 03:10 CEST on the gap night: "02:30 today" (= 03:30 CEST) is still ahead
    ("02:30", BERLIN, utc(2024, 3, 31, 1, 10), [utc(2024, 3, 31, 1, 30)]),
    # repeated time: the first occurrence
    ("02:30", BERLIN, utc(2024, 10, 26, 12), [utc(2024, 10, 27, 0, 30)]),
    ("01:30", NEW_YORK, utc(2024, 11, 2, 12), [utc(2024, 11, 3, 5, 30)]),
    ("next Sunday at 02:30", NEW_YORK, utc(2024, 3, 8), [utc(2024, 3, 10, 7, 30)]),
    ("once on Sunday at 01:45", LORD_HOWE, utc(2024, 4, 1), [utc(2024, 4, 6, 14, 45)]),
    ("02:15", LORD_HOWE, utc(2024, 10, 5, 12), [utc(2024, 10, 5, 15, 45)]),
    # absolute dates follow the same rules
    ("2024-03-31 02:30", BERLIN, utc(2024, 3, 1), [utc(2024, 3, 31, 1, 30)]),
    ("2024-10-27 02:30", BERLIN, utc(2024, 3, 1), [utc(2024, 10, 27, 0, 30)]),
    ("2024-11-03 01:30", NEW_YORK, utc(2024, 3, 1), [utc(2024, 11, 3, 5, 30)]),
    ("2024-03-10 02:30:00", NEW_YORK, utc(2024, 3, 1), [utc(2024, 3, 10, 7, 30)]),
    ("2024-04-07 01:45", LORD_HOWE, utc(2024, 3, 1), [utc(2024, 4, 6, 14, 45)]),
    ("2024-10-06 02:15", LORD_HOWE, utc(2024, 3, 1), [utc(2024, 10, 5, 15, 45)]),
]


@pytest.mark.parametrize(("expression", "zone", "anchor", "expected"), ONCE)
def test_once_at_a_wall_clock_time(expression: str, zone: str, anchor: datetime, expected: list[datetime]) -> None:
    t = timing(expression, zone, anchor=anchor)
    assert t.kind == "once"
    assert fires(expression, zone, anchor, 3) == expected
    assert t.next_fire_after(expected[0]) is None


CYCLIC: list[Case] = [
    # exact elapsed spacing; the wall clock jumps from 01:20 CET to 03:20 CEST in one hour
    (
        "every 1 hour",
        BERLIN,
        utc(2024, 3, 31, 0, 20),
        [utc(2024, 3, 31, 1, 20), utc(2024, 3, 31, 2, 20), utc(2024, 3, 31, 3, 20)],
    ),
    (
        "every 30 minutes",
        NEW_YORK,
        utc(2024, 11, 3, 5, 10),
        [utc(2024, 11, 3, 5, 40), utc(2024, 11, 3, 6, 10), utc(2024, 11, 3, 6, 40), utc(2024, 11, 3, 7, 10)],
    ),
    (
        "every 90 minutes",
        LORD_HOWE,
        utc(2024, 4, 6, 13, 0),
        [utc(2024, 4, 6, 14, 30), utc(2024, 4, 6, 16, 0), utc(2024, 4, 6, 17, 30)],
    ),
    ("every 00:45:00", LORD_HOWE, utc(2024, 10, 5, 15, 0), [utc(2024, 10, 5, 15, 45), utc(2024, 10, 5, 16, 30)]),
    # "every 1 day" is 24 elapsed hours: 09:00 CET becomes 10:00 CEST
    ("every 1 day", BERLIN, utc(2024, 3, 30, 8), [utc(2024, 3, 31, 8), utc(2024, 4, 1, 8)]),
    ("every 48:00:00", NEW_YORK, utc(2024, 11, 2, 5, 30), [utc(2024, 11, 4, 5, 30), utc(2024, 11, 6, 5, 30)]),
    # once in: elapsed time; at 06:30 UTC New York's clock shows 01:30 again, an hour later
    ("once in 1 hour", NEW_YORK, utc(2024, 11, 3, 5, 30), [utc(2024, 11, 3, 6, 30)]),
    ("once in 1 hour and 30 minutes", LORD_HOWE, utc(2024, 10, 5, 15), [utc(2024, 10, 5, 16, 30)]),
]


@pytest.mark.parametrize(("expression", "zone", "anchor", "expected"), CYCLIC)
def test_elapsed_time_kinds_ignore_dst(expression: str, zone: str, anchor: datetime, expected: list[datetime]) -> None:
    n = 3 if expression.startswith("once") else len(expected)
    assert fires(expression, zone, anchor, n) == expected


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK, LORD_HOWE])
def test_cyclic_spacing_is_exact_through_a_whole_year(zone: str) -> None:
    anchor = utc(2024, 1, 1, 0, 0, 7)
    step = timedelta(hours=7, minutes=13, seconds=11)
    result = fires("every 7 hours 13 minutes and 11 seconds", zone, anchor, 1300)
    assert result[0] == anchor + step
    assert all(later - earlier == step for earlier, later in itertools.pairwise(result))


def test_fires_are_reported_in_the_schedule_zone() -> None:
    fire = timing("every day at 02:30", BERLIN, anchor=utc(2024, 3, 30, 12)).next_fire_after(utc(2024, 3, 30, 12))
    assert fire is not None
    local = fire.astimezone(ZoneInfo(BERLIN))
    assert (local.hour, local.minute, local.utcoffset()) == (3, 30, timedelta(hours=2))
