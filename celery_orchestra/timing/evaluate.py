"""When does a timing fire? Pure functions over the model, a zone and an anchor.

Rules (README "DST" section), after RFC 5545:

* Elapsed-time kinds (``cyclic``, ``once in``) fire at ``anchor + k * interval``: the wall clock and
  DST do not matter.
* Wall-clock kinds resolve "date D at time T" in the schedule's zone with ``fold=0``. Under PEP 495
  that gives exactly the RFC 5545 reading: a time inside a DST gap is read with the offset from
  *before* the gap (02:30 on a spring-forward night fires at 03:30), and a time that occurs twice
  fires at its first occurrence only. So daily and weekly timings fire once per matching local date,
  never twice and never skipped.
* ``minutely``/``hourly`` fire at every real instant whose wall clock shows the wanted
  minute/second, the repeated hour of a fall-back night included.
* Every kind fires only strictly after its anchor (the moment the job was registered).

All comparisons happen in UTC: aware datetimes sharing one ``tzinfo`` compare by wall time and
ignore ``fold``, which is wrong exactly around DST changes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from .model import (
    EveryDay,
    EveryHour,
    EveryMinute,
    EveryWeek,
    Interval,
    OnceAfter,
    OnceAtClock,
    OnceAtDate,
    TimingSpec,
)
from .zones import require_aware

__all__ = ["first_fire", "next_fire_after", "passed_at_registration", "wall_clock_instant"]

_DayFilter = Callable[[date], bool]

_ONE_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def wall_clock_instant(day: date, at: time, zone: tzinfo) -> datetime:
    """The UTC instant at which the clock in ``zone`` shows ``day`` ``at`` (RFC 5545 for gaps/folds)."""
    return datetime.combine(day, at, tzinfo=zone).replace(fold=0).astimezone(UTC)


def next_fire_after(spec: TimingSpec, after: datetime, *, anchor: datetime, zone: tzinfo) -> datetime | None:
    """The first fire instant strictly after ``after`` (aware, in ``zone``), or ``None`` if none is left."""
    after_utc = require_aware(after, "after")
    anchor_utc = require_aware(anchor, "anchor")
    try:
        fire = _next_utc(spec, max(after_utc, anchor_utc), anchor_utc, zone)
        return None if fire is None else fire.astimezone(zone)
    except (OverflowError, ValueError):
        # The next fire lies beyond year 9999, where datetime ends: within what can be
        # represented, the timing never fires again.
        return None


def first_fire(spec: TimingSpec, *, anchor: datetime, zone: tzinfo) -> datetime | None:
    """The first fire after the anchor; ``None`` for a one-off that was already past (expired)."""
    return next_fire_after(spec, anchor, anchor=anchor, zone=zone)


def passed_at_registration(spec: TimingSpec, *, anchor: datetime, zone: tzinfo) -> bool:
    """Whether a timing has no fire after its anchor because its moment had passed (an expired one-off).

    Not :func:`first_fire` is ``None``: that is also the answer for a moment that lies beyond what
    ``datetime`` can hold in UTC (``9999-12-31 23:59`` in New York is in year 10000 there), and such
    a moment is far in the future, not past.
    """
    anchor_utc = require_aware(anchor, "anchor")
    try:
        return _next_utc(spec, anchor_utc, anchor_utc, zone) is None
    except (OverflowError, ValueError):
        return False


def _next_utc(spec: TimingSpec, after: datetime, anchor: datetime, zone: tzinfo) -> datetime | None:
    match spec:
        case Interval(every=every):
            steps = (after - anchor) // every + 1
            return anchor + max(steps, 1) * every
        case EveryMinute(second=second):
            return _next_wall_match(after, zone, period=60, position=second)
        case EveryHour(minute=minute, second=second):
            return _next_wall_match(after, zone, period=3600, position=minute * 60 + second)
        case EveryDay(at=at, step=1):
            return _next_on_days(after, at, zone, lambda _day: True)
        case EveryDay(at=at, step=step):
            return _next_every_n_days(after, anchor, at, step, zone)
        case EveryWeek(days=days, at=at):
            return _next_on_days(after, at, zone, lambda day: day.weekday() in days)
        case OnceAfter(delay=delay):
            return _unless_past(anchor + delay, after)
        case OnceAtClock(at=at, weekday=weekday):
            wanted = _next_on_days(anchor, at, zone, lambda day: weekday is None or day.weekday() == weekday)
            return None if wanted is None else _unless_past(wanted, after)
        case OnceAtDate(when=when):
            instant = wall_clock_instant(when.date(), when.time(), zone)
            # Past at registration: expired, never fired (the predecessor fired it on every start).
            return _unless_past(instant, after) if instant >= anchor else None
    raise TypeError(f"not a timing model object: {spec!r}")


def _unless_past(fire: datetime, after: datetime) -> datetime | None:
    return fire if fire > after else None


def _next_on_days(after: datetime, at: time, zone: tzinfo, matches: _DayFilter) -> datetime | None:
    # Start a day early: the instant for "yesterday at T" can still lie after `after` when a DST
    # change moved the local date boundary.
    day = after.astimezone(zone).date() - _ONE_DAY
    for _ in range(9):
        if matches(day):
            fire = wall_clock_instant(day, at, zone)
            if fire > after:
                return fire
        day += _ONE_DAY
    return None


def _next_every_n_days(after: datetime, anchor: datetime, at: time, step: int, zone: tzinfo) -> datetime | None:
    first = _next_on_days(anchor, at, zone, lambda _day: True)
    assert first is not None
    if first > after:
        return first
    start = first.astimezone(zone).date()
    elapsed_days = (after.astimezone(zone).date() - start).days
    day = start + timedelta(days=(elapsed_days // step) * step)
    while True:
        fire = wall_clock_instant(day, at, zone)
        if fire > after:
            return fire
        day += timedelta(days=step)


def _next_wall_match(after: datetime, zone: tzinfo, *, period: int, position: int) -> datetime:
    """First instant after ``after`` whose local clock is ``position`` seconds into a ``period``.

    For each UTC offset in force around ``after`` we compute the candidate instant under that
    offset and keep it only if the zone really has that offset then; the earliest survivor wins.
    That fires in both copies of a repeated hour and never inside a gap.
    """
    period_us = period * 1_000_000
    position_us = position * 1_000_000
    start = after
    while True:
        start_us = (start - _EPOCH) // _MICRO
        offsets = {_offset_us(start + timedelta(seconds=k * period), zone) for k in range(3)}
        best: int | None = None
        for offset in offsets:
            local_us = start_us + offset
            candidate = ((local_us - position_us) // period_us + 1) * period_us + position_us - offset
            if _offset_us(_EPOCH + candidate * _MICRO, zone) == offset and (best is None or candidate < best):
                best = candidate
        if best is not None:
            return _EPOCH + best * _MICRO
        start += timedelta(seconds=period)


def _offset_us(instant: datetime, zone: tzinfo) -> int:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset // _MICRO
