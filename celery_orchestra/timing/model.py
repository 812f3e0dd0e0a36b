"""The timing model: what a parsed expression *means*, as small immutable values.

Each class is one shape of schedule and holds only what that shape needs, already validated by
the parser. ``str()`` of any of them is the normalised expression, which parses back to an equal
value, so the model can be stored as text. Evaluation (when does it fire?) lives in
:mod:`celery_orchestra.timing.evaluate`; nothing here knows about Celery, time zones or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import ClassVar, Literal

Kind = Literal["cyclic", "minutely", "hourly", "daily", "weekly", "once"]

#: Monday is 0, as in :meth:`datetime.date.weekday`.
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WORKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})

_UNITS = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60))


def _plural(count: int | str, unit: str) -> str:
    return f"{count} {unit}" if str(count) == "1" else f"{count} {unit}s"


def format_duration(duration: timedelta) -> str:
    """``5 hours 2 minutes and 15 seconds``: the spelling the parser reads back exactly."""
    micros = duration // timedelta(microseconds=1)
    whole, fraction = divmod(micros, 1_000_000)
    parts = []
    for unit, size in _UNITS[1:]:  # weeks read back fine, but "14 days" is what people write
        count, whole = divmod(whole, size)
        if count:
            parts.append(_plural(count, unit))
    if whole or fraction or not parts:
        seconds = f"{whole}.{fraction:06d}".rstrip("0") if fraction else str(whole)
        parts.append(_plural(seconds, "second"))
    if len(parts) == 1:
        return parts[0]
    return " ".join(parts[:-1]) + " and " + parts[-1]


def format_clock(at: time) -> str:
    return f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}"


def format_days(days: frozenset[int]) -> str:
    if days == WORKDAYS:
        return "weekday"
    if days == WEEKEND:
        return "weekend"
    names = [WEEKDAY_NAMES[d] for d in sorted(days)]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True, slots=True)
class Interval:
    """``every 31 minutes and 12 seconds``: elapsed time, counted from the anchor, drift-free."""

    kind: ClassVar[Kind] = "cyclic"
    every: timedelta

    def __str__(self) -> str:
        return f"every {format_duration(self.every)}"


@dataclass(frozen=True, slots=True)
class EveryMinute:
    """``every minute at 15 seconds``: whenever the wall clock's seconds show ``second``."""

    kind: ClassVar[Kind] = "minutely"
    second: int

    def __str__(self) -> str:
        return f"every minute at {_plural(self.second, 'second')}"


@dataclass(frozen=True, slots=True)
class EveryHour:
    """``every hour at 05:00``: whenever the wall clock shows ``minute:second`` past an hour."""

    kind: ClassVar[Kind] = "hourly"
    minute: int
    second: int = 0

    def __str__(self) -> str:
        return f"every hour at {self.minute:02d}:{self.second:02d}"


@dataclass(frozen=True, slots=True)
class EveryDay:
    """``every day at 09:15`` / ``every 2 days at 10:00``: once per ``step`` local dates.

    With a step above one, the dates are counted from the first date the job fires on.
    """

    kind: ClassVar[Kind] = "daily"
    at: time
    step: int = 1

    def __str__(self) -> str:
        days = "day" if self.step == 1 else f"{self.step} days"
        return f"every {days} at {format_clock(self.at)}"


@dataclass(frozen=True, slots=True)
class EveryWeek:
    """``every Monday and Thursday at 09:00``: on the given weekdays (0 = Monday)."""

    kind: ClassVar[Kind] = "weekly"
    days: frozenset[int]
    at: time

    def __str__(self) -> str:
        return f"every {format_days(self.days)} at {format_clock(self.at)}"


@dataclass(frozen=True, slots=True)
class OnceAfter:
    """``once in 5 hours``: the anchor plus a delay."""

    kind: ClassVar[Kind] = "once"
    delay: timedelta

    def __str__(self) -> str:
        return f"once in {format_duration(self.delay)}"


@dataclass(frozen=True, slots=True)
class OnceAtClock:
    """``11:23:00`` / ``next Tuesday at 13:11``: the first such wall-clock moment after the anchor."""

    kind: ClassVar[Kind] = "once"
    at: time
    weekday: int | None = None

    def __str__(self) -> str:
        if self.weekday is None:
            return f"once at {format_clock(self.at)}"
        return f"once on {WEEKDAY_NAMES[self.weekday]} at {format_clock(self.at)}"


@dataclass(frozen=True, slots=True)
class OnceAtDate:
    """``2023-04-01 09:13``: a calendar date and wall time in the schedule's zone (naive here)."""

    kind: ClassVar[Kind] = "once"
    when: datetime

    def __str__(self) -> str:
        return f"once at {self.when.date().isoformat()} {format_clock(self.when.time())}"


TimingSpec = Interval | EveryMinute | EveryHour | EveryDay | EveryWeek | OnceAfter | OnceAtClock | OnceAtDate
