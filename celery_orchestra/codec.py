"""Schedules as plain JSON-able data, and back.

The store keeps a job's schedule as a small dict tagged by ``"type"`` instead of a pickled object:
a pickle drags the whole Celery app along, breaks when a class moves between versions, and cannot
be read with plain SQL. Four shapes cover everything a ``beat_schedule`` can hold:

``{"type": "timing", "expression": "every day at 09:15:00"}``
    A natural-language timing, stored in its normalised spelling.
``{"type": "interval", "seconds": 30.0, "relative": false}``
    A ``timedelta``, a number of seconds or a ``celery.schedules.schedule``.
``{"type": "crontab", "minute": "0", "hour": "9", "day_of_week": "mon-fri", ...}``
    A ``celery.schedules.crontab`` by its five field strings.
``{"type": "solar", "event": "sunset", "lat": 48.85, "lon": 2.35}``
    A ``celery.schedules.solar``.

Rebuilding needs what the data deliberately leaves out: the job's zone and anchor, which the store
keeps in their own columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from celery.exceptions import ImproperlyConfigured
from celery.schedules import BaseSchedule, crontab, solar
from celery.schedules import schedule as interval_schedule

from .definitions import SCHEDULE_TYPES
from .errors import OrchestraError
from .model import Interval, TimingSpec, format_duration
from .parser import parse_expression
from .schedule import Timing, timing

__all__ = [
    "CRONTAB_FIELDS",
    "IntervalTiming",
    "ScheduleDataError",
    "ScheduleTypeError",
    "describe_data",
    "kind_of_data",
    "max_runs_of_data",
    "schedule_from_data",
    "schedule_to_data",
]

#: The crontab fields in Celery's keyword order.
CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")

_LONGEST_INTERVAL_SECONDS = timedelta.max.total_seconds()

_ACCEPTED = (
    "a timing string, a Timing, a datetime.timedelta, a number of seconds, "
    "or a celery.schedules schedule, crontab or solar"
)


class ScheduleTypeError(OrchestraError, TypeError):
    """A value of a type that cannot be a schedule (it names the type it got)."""


class ScheduleDataError(OrchestraError, ValueError):
    """A schedule of the right type with an unusable value, or stored data that is malformed."""


class IntervalTiming(Timing):
    """A drift-free cyclic :class:`Timing` rebuilt from a plain interval.

    It behaves exactly like ``timing("every 30 seconds")``; the subclass only remembers that the
    user wrote a ``timedelta`` or a number, so that encoding it again gives the same
    ``"interval"`` data and the store does not see a spurious edit.
    """

    spec: Interval

    def __init__(
        self,
        spec: TimingSpec,
        tz: str | tzinfo | None = None,
        *,
        anchor: datetime | None = None,
        nowfun: Callable[[], datetime] | None = None,
        app: Any = None,
    ) -> None:
        if not isinstance(spec, Interval):
            raise ScheduleTypeError(f"an IntervalTiming needs an Interval spec, got {_type_name(spec)}")
        super().__init__(spec, tz, anchor=anchor, nowfun=nowfun, app=app)

    @property
    def every(self) -> timedelta:
        return self.spec.every


# ---------------------------------------------------------------------------- to data


def schedule_to_data(value: object, *, relative: bool = False) -> dict[str, Any]:
    """Describe ``value`` as JSON-able data.

    ``relative`` mirrors the entry key of the same name in ``beat_schedule``: like Celery's
    ``maybe_schedule`` it applies only to plain durations (a ``timedelta`` or a number); a
    ``celery.schedules.schedule`` carries its own flag.

    Raises :class:`~celery_orchestra.errors.TimingError` for a bad timing string,
    :class:`ScheduleTypeError` for a value that is no schedule at all and
    :class:`ScheduleDataError` for a schedule that could never fire (a zero interval, an empty
    crontab field).
    """
    if isinstance(value, str):
        return {"type": "timing", "expression": str(parse_expression(value))}
    if isinstance(value, IntervalTiming):
        return _interval_data(value.every.total_seconds(), False)
    if isinstance(value, Timing):
        return {"type": "timing", "expression": value.expression}
    if isinstance(value, bool):
        raise ScheduleTypeError(f"a schedule must be {_ACCEPTED}; got a bool ({value!r})")
    if isinstance(value, int | float):
        return _interval_data(float(value), relative)
    if isinstance(value, timedelta):
        return _interval_data(value.total_seconds(), relative)
    if isinstance(value, crontab):
        return _crontab_data(value)
    if isinstance(value, solar):
        return {"type": "solar", "event": str(value.event), "lat": float(value.lat), "lon": float(value.lon)}
    if isinstance(value, interval_schedule):
        run_every = value.run_every
        if not isinstance(run_every, timedelta):
            raise ScheduleDataError(f"celery schedule has no interval (run_every={run_every!r})")
        return _interval_data(run_every.total_seconds(), bool(value.relative))
    raise ScheduleTypeError(f"a schedule must be {_ACCEPTED}; got {_type_name(value)}")


def _type_name(value: object) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _interval_data(seconds: float, relative: bool) -> dict[str, Any]:
    return {"type": "interval", "seconds": _valid_interval_seconds(seconds), "relative": relative}


def _valid_interval_seconds(seconds: float) -> float:
    """``seconds`` if it is a usable interval: finite, representable, and at least a microsecond.

    A zero interval would make beat fire in a hot loop (the predecessor's ``every 00:00:00``).
    """
    if not math.isfinite(seconds):
        raise ScheduleDataError(f"an interval must be a finite number of seconds, got {seconds!r}")
    if seconds > _LONGEST_INTERVAL_SECONDS:
        raise ScheduleDataError(f"an interval of {seconds:g} seconds is longer than Python can represent")
    if timedelta(seconds=seconds) <= timedelta(0):
        raise ScheduleDataError(f"an interval must be longer than zero, got {seconds:g} seconds")
    return seconds


def _crontab_data(value: crontab) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "crontab"}
    for field in CRONTAB_FIELDS:
        data[field] = _crontab_field_text(field, getattr(value, f"_orig_{field}"), getattr(value, field))
    return data


def _crontab_field_text(field: str, original: object, expanded: Iterable[int]) -> str:
    """The field as crontab text: the user's own spelling when it is text or a number.

    Sets, lists and ranges have no spelling of their own, so they are written as the sorted,
    comma-separated values Celery expanded them to (which it has already range-checked).
    """
    if isinstance(original, str):
        return original
    if isinstance(original, int) and not isinstance(original, bool):
        return str(original)
    values = sorted(expanded)
    if not values:
        raise ScheduleDataError(f"crontab field {field!r} is empty, so the job would never run")
    return ",".join(str(v) for v in values)


# ---------------------------------------------------------------------------- from data


def schedule_from_data(
    data: Mapping[str, Any],
    *,
    tz: tzinfo | None,
    anchor: datetime,
    app: Any = None,
    nowfun: Callable[[], datetime] | None = None,
) -> BaseSchedule:
    """Rebuild a live Celery schedule from :func:`schedule_to_data` output.

    ``tz`` is the job's zone (``None``: follow the app's ``timezone``); ``anchor`` is when the job
    was first registered. Non-relative intervals become drift-free cyclic :class:`Timing`\\ s
    counted from ``anchor``, so an interval job keeps its grid across restarts instead of stock
    beat's "last run + interval", which drifts by the scheduler's latency on every run.

    Raises :class:`ScheduleDataError` for malformed data, and
    :class:`~celery_orchestra.errors.TimingError` for an expression this version cannot read.
    """
    checked = _checked(data)
    kind = checked["type"]
    if kind == "timing":
        return timing(checked["expression"], tz, anchor=anchor, app=app, nowfun=nowfun)
    if kind == "interval":
        every = timedelta(seconds=checked["seconds"])
        if not checked["relative"]:
            return IntervalTiming.from_spec(Interval(every), tz, anchor=anchor, app=app, nowfun=nowfun)
        relative_schedule = interval_schedule(every, relative=True, nowfun=nowfun, app=app)
        if tz is not None:
            relative_schedule.tz = tz
        return relative_schedule
    if kind == "crontab":
        fields = {field: checked[field] for field in CRONTAB_FIELDS}
        try:
            cron = crontab(**fields, nowfun=nowfun, app=app)
        except (ValueError, TypeError) as exc:  # celery's ParseException is a ValueError
            raise ScheduleDataError(f"invalid crontab {_crontab_text(checked)!r}: {exc}") from exc
        if tz is not None:
            cron.tz = tz
        return cron
    try:
        return solar(checked["event"], checked["lat"], checked["lon"], nowfun=nowfun, app=app)
    except (ImproperlyConfigured, ImportError) as exc:  # Celery < 5.5 lets the ImportError through
        raise ScheduleDataError(
            "solar schedules need the 'ephem' package; install it with: pip install 'celery[solar]'"
        ) from exc
    except ValueError as exc:
        raise ScheduleDataError(f"invalid solar schedule: {exc}") from exc


_FIELD_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "timing": {"expression": (str,)},
    "interval": {"seconds": (int, float), "relative": (bool,)},
    "crontab": dict.fromkeys(CRONTAB_FIELDS, (str,)),
    "solar": {"event": (str,), "lat": (int, float), "lon": (int, float)},
}


def _checked(data: object) -> dict[str, Any]:
    """``data`` with its fields type-checked, or a :class:`ScheduleDataError` saying what is off.

    Stored data may have been edited by hand or written by another version, so it is checked as
    strictly as user input.
    """
    if not isinstance(data, Mapping):
        raise ScheduleDataError(f"schedule data must be a mapping, got {_type_name(data)}")
    kind = data.get("type")
    if kind not in SCHEDULE_TYPES:
        raise ScheduleDataError(
            f"schedule data has type {kind!r}; expected one of {', '.join(map(repr, SCHEDULE_TYPES))}"
        )
    required = _FIELD_TYPES[kind]
    extra = sorted(set(data) - set(required) - {"type"}, key=str)
    if extra:
        raise ScheduleDataError(f"{kind} schedule data has unexpected keys: {', '.join(map(repr, extra))}")
    checked: dict[str, Any] = {"type": kind}
    for key, types in required.items():
        if key not in data:
            raise ScheduleDataError(f"{kind} schedule data is missing {key!r}")
        value = data[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            wanted = " or ".join(t.__name__ for t in types)
            raise ScheduleDataError(
                f"{kind} schedule data has {key}={value!r}; expected {wanted}, got {_type_name(value)}"
            )
        checked[key] = value
    if kind == "interval":
        checked["seconds"] = _valid_interval_seconds(float(checked["seconds"]))
    return checked


def _crontab_text(data: Mapping[str, Any]) -> str:
    # Cron's own column order (minute hour day-of-month month day-of-week), as people read it.
    return " ".join(str(data[f]) for f in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week"))


# ---------------------------------------------------------------------------- about data


def kind_of_data(data: Mapping[str, Any]) -> str:
    """``"cyclic"`` for intervals, ``"crontab"``, ``"solar"``, or the timing's kind."""
    checked = _checked(data)
    kind = checked["type"]
    if kind == "timing":
        return parse_expression(checked["expression"]).kind
    if kind == "interval":
        return "cyclic"
    return str(kind)


def max_runs_of_data(data: Mapping[str, Any]) -> int | None:
    """1 for one-off timings, ``None`` (unlimited) for everything else."""
    return 1 if kind_of_data(data) == "once" else None


def describe_data(data: Mapping[str, Any]) -> str:
    """A short human description for status tables and logs, e.g. ``every 30 seconds``."""
    checked = _checked(data)
    kind = checked["type"]
    if kind == "timing":
        return str(checked["expression"])
    if kind == "interval":
        every = format_duration(timedelta(seconds=checked["seconds"]))
        return f"every {every} (relative)" if checked["relative"] else f"every {every}"
    if kind == "crontab":
        return f"crontab {_crontab_text(checked)}"
    return f"solar {checked['event']} at {checked['lat']:g}, {checked['lon']:g}"
