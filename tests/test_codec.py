"""Schedules to JSON-able data and back: celery_orchestra.codec."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.schedules import crontab, schedule, solar
from hypothesis import given
from hypothesis import strategies as st

from celery_orchestra.errors import ScheduleDataError, ScheduleTypeError, TimingError
from celery_orchestra.jobs.codec import (
    IntervalTiming,
    describe_data,
    kind_of_data,
    max_runs_of_data,
    schedule_from_data,
    schedule_to_data,
)
from celery_orchestra.timing.model import Interval
from celery_orchestra.timing.schedule import Timing, timing

ANCHOR = datetime(2024, 3, 3, 7, 36, 47, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def round_trip(data: dict[str, Any], tz: Any = PARIS) -> dict[str, Any]:
    rebuilt = schedule_from_data(json.loads(json.dumps(data)), tz=tz, anchor=ANCHOR)
    return schedule_to_data(rebuilt)


# ---------------------------------------------------------------------------- timing strings


def test_timing_string_is_stored_normalised() -> None:
    assert schedule_to_data("every day at 9:15") == {"type": "timing", "expression": "every day at 09:15:00"}
    assert schedule_to_data("every 00:00:01") == {"type": "timing", "expression": "every 1 second"}


def test_normalised_expression_matches_the_timing_objects_own() -> None:
    for text in ("once in 13:11:52", "next Tuesday at 13:11:00", "every hour at 05:00", "2023-04-01 09:13"):
        assert schedule_to_data(text)["expression"] == timing(text).expression


def test_bad_timing_string_raises_timing_error_with_position() -> None:
    with pytest.raises(TimingError) as caught:
        schedule_to_data("every day at foo")
    assert caught.value.column == 14
    assert caught.value.expression == "every day at foo"


def test_timing_object_is_stored_by_its_expression() -> None:
    value = timing("every Monday at 03:15:00", "Europe/Berlin", anchor=ANCHOR)
    assert schedule_to_data(value) == {"type": "timing", "expression": "every Monday at 03:15:00"}


def test_timing_data_rebuilds_a_timing_in_the_jobs_zone_and_anchor() -> None:
    rebuilt = schedule_from_data({"type": "timing", "expression": "every day at 09:15:00"}, tz=PARIS, anchor=ANCHOR)
    assert isinstance(rebuilt, Timing)
    assert rebuilt.zone == PARIS
    assert rebuilt.anchor == ANCHOR
    # 09:15 in Paris in March (CET, UTC+1) is 08:15 UTC.
    assert rebuilt.next_fire_after(ANCHOR) == datetime(2024, 3, 3, 8, 15, tzinfo=UTC)


def test_timing_data_without_zone_follows_the_app() -> None:
    app = Celery("codec-test", set_as_current=False)
    app.conf.timezone = "Asia/Tokyo"
    rebuilt = schedule_from_data(
        {"type": "timing", "expression": "every day at 09:00:00"}, tz=None, anchor=ANCHOR, app=app
    )
    assert isinstance(rebuilt, Timing)
    assert rebuilt.zone is None
    assert rebuilt.tz == ZoneInfo("Asia/Tokyo")


# ---------------------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(timedelta(minutes=5), 300.0), (30, 30.0), (0.5, 0.5), (schedule(timedelta(hours=2)), 7200.0)],
)
def test_intervals_are_stored_as_seconds(value: object, seconds: float) -> None:
    assert schedule_to_data(value) == {"type": "interval", "seconds": seconds, "relative": False}


def test_relative_flag_applies_to_plain_durations_and_comes_with_celery_schedules() -> None:
    assert schedule_to_data(timedelta(days=1), relative=True)["relative"] is True
    assert schedule_to_data(schedule(60, relative=True))["relative"] is True
    # Like Celery's maybe_schedule: a schedule object keeps its own flag.
    assert schedule_to_data(schedule(60), relative=True)["relative"] is False


@pytest.mark.parametrize("value", [0, -5, 0.0, timedelta(0), timedelta(seconds=-1), schedule(0)])
def test_zero_or_negative_intervals_are_refused(value: object) -> None:
    with pytest.raises(ScheduleDataError, match="longer than zero"):
        schedule_to_data(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300])
def test_unrepresentable_intervals_are_refused(value: float) -> None:
    with pytest.raises(ScheduleDataError):
        schedule_to_data(value)


def test_non_relative_interval_becomes_a_drift_free_cyclic_timing() -> None:
    rebuilt = schedule_from_data({"type": "interval", "seconds": 30.0, "relative": False}, tz=None, anchor=ANCHOR)
    assert isinstance(rebuilt, IntervalTiming)
    assert rebuilt.kind == "cyclic"
    assert rebuilt.spec == Interval(timedelta(seconds=30))
    # The grid stays on anchor + n * 30 s however late the last run was.
    late_run = ANCHOR + timedelta(seconds=47)
    assert rebuilt.next_fire_after(late_run) == ANCHOR + timedelta(seconds=60)


def test_fractional_interval_round_trips() -> None:
    data = schedule_to_data(0.25)
    rebuilt = schedule_from_data(data, tz=None, anchor=ANCHOR)
    assert isinstance(rebuilt, IntervalTiming)
    assert rebuilt.every == timedelta(milliseconds=250)
    assert schedule_to_data(rebuilt) == data


def test_relative_interval_becomes_celerys_own_schedule_in_the_jobs_zone() -> None:
    rebuilt = schedule_from_data({"type": "interval", "seconds": 86400, "relative": True}, tz=PARIS, anchor=ANCHOR)
    assert type(rebuilt) is schedule
    assert rebuilt.relative is True
    assert rebuilt.run_every == timedelta(days=1)
    assert rebuilt.tz == PARIS


def test_interval_timing_refuses_other_specs() -> None:
    with pytest.raises(ScheduleTypeError, match="Interval"):
        IntervalTiming(timing("every day at 09:00").spec, anchor=ANCHOR)


# ---------------------------------------------------------------------------- crontab


def test_crontab_is_stored_by_its_field_strings() -> None:
    data = schedule_to_data(crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"))
    assert data == {
        "type": "crontab",
        "minute": "*/15",
        "hour": "9-17",
        "day_of_week": "mon-fri",
        "day_of_month": "*",
        "month_of_year": "*",
    }


def test_crontab_numbers_sets_and_ranges_become_text() -> None:
    data = schedule_to_data(crontab(minute=0, hour=range(9, 12), day_of_week={6, 0}, month_of_year=[1, 7]))
    assert data["minute"] == "0"
    assert data["hour"] == "9,10,11"
    assert data["day_of_week"] == "0,6"
    assert data["month_of_year"] == "1,7"


@pytest.mark.parametrize(
    "cron",
    [
        crontab(),
        crontab(minute=0, hour=0),
        crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"),
        crontab(minute={0, 30}, hour=[8, 20], day_of_month="1,15", month_of_year="*/3"),
        crontab(minute=30, hour=2, day_of_month=29, month_of_year=2),
    ],
)
def test_crontab_round_trip_keeps_fields_and_gets_the_jobs_zone(cron: crontab) -> None:
    data = schedule_to_data(cron)
    rebuilt = schedule_from_data(json.loads(json.dumps(data)), tz=PARIS, anchor=ANCHOR)
    assert isinstance(rebuilt, crontab)
    assert rebuilt == cron
    assert (rebuilt.minute, rebuilt.hour, rebuilt.day_of_week) == (cron.minute, cron.hour, cron.day_of_week)
    assert (rebuilt.day_of_month, rebuilt.month_of_year) == (cron.day_of_month, cron.month_of_year)
    assert rebuilt.tz == PARIS
    assert schedule_to_data(rebuilt) == data


def test_crontab_without_zone_follows_the_app() -> None:
    app = Celery("codec-test", set_as_current=False)
    app.conf.timezone = "America/Boise"
    rebuilt = schedule_from_data(schedule_to_data(crontab(minute=0)), tz=None, anchor=ANCHOR, app=app)
    assert rebuilt.tz == ZoneInfo("America/Boise")


def test_empty_crontab_field_is_refused() -> None:
    with pytest.raises(ScheduleDataError, match="'minute' is empty"):
        schedule_to_data(crontab(minute=set()))


def test_invalid_stored_crontab_is_a_clear_error() -> None:
    data = schedule_to_data(crontab(minute=0))
    data["hour"] = "25"
    with pytest.raises(ScheduleDataError, match="invalid crontab '0 25 \\* \\* \\*'"):
        schedule_from_data(data, tz=None, anchor=ANCHOR)


@given(
    minutes=st.sets(st.integers(0, 59), min_size=1, max_size=6),
    hours=st.sets(st.integers(0, 23), min_size=1, max_size=4),
    days=st.sets(st.integers(0, 6), min_size=1),
)
def test_crontab_round_trip_for_any_value_sets(minutes: set[int], hours: set[int], days: set[int]) -> None:
    cron = crontab(minute=minutes, hour=hours, day_of_week=days)
    rebuilt = schedule_from_data(schedule_to_data(cron), tz=None, anchor=ANCHOR)
    assert rebuilt == cron


# ---------------------------------------------------------------------------- solar


def test_solar_round_trip() -> None:
    pytest.importorskip("ephem")
    original = solar("sunset", 48.85, 2.35)
    data = schedule_to_data(original)
    assert data == {"type": "solar", "event": "sunset", "lat": 48.85, "lon": 2.35}
    rebuilt = schedule_from_data(json.loads(json.dumps(data)), tz=PARIS, anchor=ANCHOR)
    assert isinstance(rebuilt, solar)
    assert rebuilt == original
    assert schedule_to_data(rebuilt) == data


def test_solar_without_ephem_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ephem", None)  # makes `import ephem` fail
    data = {"type": "solar", "event": "sunrise", "lat": 10, "lon": 20}
    with pytest.raises(ScheduleDataError, match=r"pip install 'celery-orchestra\[solar\]'"):
        schedule_from_data(data, tz=None, anchor=ANCHOR)


def test_invalid_stored_solar_event_is_a_clear_error() -> None:
    pytest.importorskip("ephem")
    with pytest.raises(ScheduleDataError, match="invalid solar schedule"):
        schedule_from_data({"type": "solar", "event": "lunch", "lat": 0, "lon": 0}, tz=None, anchor=ANCHOR)


# ---------------------------------------------------------------------------- other types


@pytest.mark.parametrize(
    ("value", "named"),
    [(True, "bool"), (None, "NoneType"), ([1, 2], "list"), (datetime(2024, 1, 1), "datetime.datetime")],
)
def test_other_types_are_refused_by_name(value: object, named: str) -> None:
    with pytest.raises(ScheduleTypeError, match=f"got {named}|got a {named}"):
        schedule_to_data(value)


def test_schedule_type_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        schedule_to_data(object())


# ---------------------------------------------------------------------------- round trips, kinds


SAMPLES: list[object] = [
    "every 31 minutes and 12 seconds",
    "every minute at 15 seconds",
    "once in 17 seconds",
    "2023-04-01 09:13:11",
    timedelta(hours=48),
    42,
    schedule(10, relative=True),
    crontab(minute="5", hour="*/2"),
]


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_to_data_from_data_to_data_is_stable_and_json_safe(value: object) -> None:
    data = schedule_to_data(value)
    assert json.loads(json.dumps(data)) == data
    assert round_trip(data) == data
    assert round_trip(data, tz=None) == data


@pytest.mark.parametrize(
    ("value", "kind", "max_runs"),
    [
        ("every 00:00:01", "cyclic", None),
        ("every Monday at 03:15:00", "weekly", None),
        ("every day at 9:15", "daily", None),
        ("every hour at 05:00", "hourly", None),
        ("every minute at 15 seconds", "minutely", None),
        ("next 23:00:00", "once", 1),
        ("once in 1 hour and 10 minutes", "once", 1),
        (timedelta(seconds=5), "cyclic", None),
        (crontab(), "crontab", None),
    ],
)
def test_kind_and_max_runs(value: object, kind: str, max_runs: int | None) -> None:
    data = schedule_to_data(value)
    assert kind_of_data(data) == kind
    assert max_runs_of_data(data) == max_runs


def test_solar_kind() -> None:
    data = {"type": "solar", "event": "dawn_civil", "lat": 1.5, "lon": -3}
    assert kind_of_data(data) == "solar"
    assert max_runs_of_data(data) is None


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"type": "timing", "expression": "every day at 09:15:00"}, "every day at 09:15:00"),
        ({"type": "interval", "seconds": 90.0, "relative": False}, "every 1 minute and 30 seconds"),
        ({"type": "interval", "seconds": 3600, "relative": True}, "every 1 hour (relative)"),
        (schedule_to_data(crontab(minute=0, hour=9, day_of_week="mon-fri")), "crontab 0 9 * * mon-fri"),
        ({"type": "solar", "event": "sunset", "lat": 48.85, "lon": 2.35}, "solar sunset at 48.85, 2.35"),
    ],
)
def test_describe_data(data: dict[str, Any], text: str) -> None:
    assert describe_data(data) == text


# ---------------------------------------------------------------------------- malformed stored data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("every day", "must be a mapping, got str"),
        ({"expression": "every day at 09:00"}, "has type None"),
        ({"type": "pickle"}, "has type 'pickle'"),
        ({"type": "timing"}, "missing 'expression'"),
        ({"type": "timing", "expression": 5}, "expected str, got int"),
        ({"type": "interval", "seconds": "10", "relative": False}, "expected int or float, got str"),
        ({"type": "interval", "seconds": True, "relative": False}, "expected int or float, got bool"),
        ({"type": "interval", "seconds": 10, "relative": "no"}, "expected bool, got str"),
        ({"type": "interval", "seconds": 0, "relative": False}, "longer than zero"),
        ({"type": "interval", "seconds": 10, "relative": False, "every": 3}, "unexpected keys: 'every'"),
        ({"type": "solar", "event": "sunset", "lat": 1}, "missing 'lon'"),
    ],
)
def test_malformed_data_is_a_schedule_data_error(data: object, message: str) -> None:
    with pytest.raises(ScheduleDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        schedule_from_data(data, tz=None, anchor=ANCHOR)  # type: ignore[arg-type]
    with pytest.raises(ScheduleDataError):
        kind_of_data(data)  # type: ignore[arg-type]


def test_stored_expression_this_version_cannot_read_is_a_timing_error() -> None:
    with pytest.raises(TimingError):
        schedule_from_data({"type": "timing", "expression": "every blue moon"}, tz=None, anchor=ANCHOR)
