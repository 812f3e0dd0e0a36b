"""Schedules as plain JSON-able data, and back: one codec per schedule type, in a registry.

The store keeps a job's schedule as a small dict tagged by ``"type"`` instead of a pickled object:
a pickle drags the whole Celery app along, breaks when a class moves between versions, and cannot
be read with plain SQL. Each type's shape, encoding, decoding, kind and description live in its
own module (:mod:`.timing`, :mod:`.interval`, :mod:`.crontab`, :mod:`.solar`), each implementing
:class:`~celery_orchestra.interfaces.ScheduleCodec`; this module only looks the codec up.

Rebuilding needs what the data deliberately leaves out: the job's zone and anchor, which the store
keeps in their own columns.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from datetime import datetime, tzinfo
from typing import Any, Final

from celery.schedules import BaseSchedule

from ...errors import ScheduleDataError, ScheduleTypeError
from ...interfaces import ScheduleCodec
from ._common import ScheduleContext, type_name
from .crontab import CRONTAB_FIELDS, CrontabCodec
from .interval import IntervalCodec, IntervalTiming
from .solar import SolarCodec
from .timing import TimingCodec

__all__ = [
    "CODECS",
    "CRONTAB_FIELDS",
    "SCHEDULE_TYPES",
    "IntervalTiming",
    "ScheduleContext",
    "data_key",
    "describe_data",
    "kind_of_data",
    "max_runs_of_data",
    "max_runs_of_kind",
    "schedule_from_data",
    "schedule_to_data",
]

#: Every codec, in the order a value is offered to them: an :class:`IntervalTiming` is a
#: ``Timing`` too, so the interval codec must see it first.
CODECS: Final[tuple[ScheduleCodec, ...]] = (IntervalCodec(), TimingCodec(), CrontabCodec(), SolarCodec())
_BY_TYPE: Final[dict[str, ScheduleCodec]] = {codec.tag: codec for codec in CODECS}
#: The ``"type"`` tags of schedule data, in the order they are documented.
SCHEDULE_TYPES: Final = ("timing", "interval", "crontab", "solar")

_ACCEPTED: Final = (
    "a timing string, a Timing, a datetime.timedelta, a number of seconds, "
    "or a celery.schedules schedule, crontab or solar"
)


def schedule_to_data(value: object, *, relative: bool = False) -> dict[str, Any]:
    """Describe ``value`` as JSON-able data.

    ``relative`` mirrors the entry key of the same name in ``beat_schedule``: like Celery's
    ``maybe_schedule`` it applies only to plain durations (a ``timedelta`` or a number); a
    ``celery.schedules.schedule`` carries its own flag.

    Raises :class:`~celery_orchestra.errors.TimingError` for a bad timing string,
    :class:`~celery_orchestra.errors.ScheduleTypeError` for a value that is no schedule at all and
    :class:`~celery_orchestra.errors.ScheduleDataError` for a schedule that could never fire (a
    zero interval, an empty crontab field).
    """
    if isinstance(value, bool):
        raise ScheduleTypeError(f"a schedule must be {_ACCEPTED}; got a bool ({value!r})")
    for codec in CODECS:
        data = codec.encode(value, relative=relative)
        if data is not None:
            return data
    raise ScheduleTypeError(f"a schedule must be {_ACCEPTED}; got {type_name(value)}")


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
    was first registered. Raises :class:`~celery_orchestra.errors.ScheduleDataError` for malformed
    data, and :class:`~celery_orchestra.errors.TimingError` for an expression this version cannot
    read.
    """
    codec, checked = _checked(data)
    return codec.decode(checked, ScheduleContext(tz, anchor, app, nowfun))


def kind_of_data(data: Mapping[str, Any]) -> str:
    """``"cyclic"`` for intervals, ``"crontab"``, ``"solar"``, or the timing's kind."""
    codec, checked = _checked(data)
    return codec.kind(checked)


def max_runs_of_data(data: Mapping[str, Any]) -> int | None:
    """1 for one-off timings, ``None`` (unlimited) for everything else."""
    return max_runs_of_kind(kind_of_data(data))


def max_runs_of_kind(kind: str) -> int | None:
    """A job of this kind runs at most this often: 1 for ``once``, else ``None`` (unlimited)."""
    return 1 if kind == "once" else None


def describe_data(data: Mapping[str, Any]) -> str:
    """A short human description for status tables and logs, e.g. ``every 30 seconds``."""
    codec, checked = _checked(data)
    return codec.describe(checked)


def data_key(data: object) -> Hashable | None:
    """A hashable key for schedule data, telling ``1``, ``1.0`` and ``True`` apart (they compare
    equal); ``None`` when the data has none (not a mapping, an unhashable value): then nothing
    may be shared or remembered by it, and decoding it will say what is wrong."""
    try:
        key = tuple((name, type(value), value) for name, value in data.items())  # type: ignore[attr-defined]
        hash(key)
    except (AttributeError, TypeError):
        return None
    return key


def _checked(data: object) -> tuple[ScheduleCodec, dict[str, Any]]:
    """The codec for ``data`` and the data with its fields checked, or a :class:`ScheduleDataError`.

    Stored data may have been edited by hand or written by another version, so it is checked as
    strictly as user input.
    """
    if not isinstance(data, Mapping):
        raise ScheduleDataError(f"schedule data must be a mapping, got {type_name(data)}")
    kind = data.get("type")
    codec = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if codec is None:
        raise ScheduleDataError(
            f"schedule data has type {kind!r}; expected one of {', '.join(map(repr, SCHEDULE_TYPES))}"
        )
    required = codec.fields
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
                f"{kind} schedule data has {key}={value!r}; expected {wanted}, got {type_name(value)}"
            )
        checked[key] = value
    return codec, codec.check(checked)
