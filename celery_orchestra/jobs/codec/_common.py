"""What the schedule codecs share: the decoding context, defaults, type names for messages, the interval check."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from ...errors import ScheduleDataError

__all__ = ["CodecDefaults", "ScheduleContext", "type_name", "valid_interval_seconds"]

_LONGEST_INTERVAL_SECONDS = timedelta.max.total_seconds()


@dataclass(frozen=True, slots=True)
class ScheduleContext:
    """What rebuilding a live schedule needs beyond its data (which deliberately leaves it out).

    ``tz`` is the job's zone (``None``: follow the app's ``timezone``); ``anchor`` is when the job
    was registered; ``nowfun`` is the clock the schedule reads (the scheduler's, in tests a fake).
    """

    tz: tzinfo | None
    anchor: datetime
    app: Any = None
    nowfun: Callable[[], datetime] | None = None


class CodecDefaults:
    """What most codecs do: data needs no normalising, and the kind is the type's tag."""

    tag: str

    def check(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data)

    def kind(self, data: Mapping[str, Any]) -> str:
        return self.tag


def type_name(value: object) -> str:
    """``int``, ``datetime.date``: the type as a user would write it."""
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def valid_interval_seconds(seconds: float) -> float:
    """``seconds`` as a float if it is a usable interval: finite, representable, and at least a microsecond.

    A zero interval would make beat fire in a hot loop (the predecessor's ``every 00:00:00``). An
    ``int`` too large for a float (``10**400``) is refused before it is converted.
    """
    if isinstance(seconds, int) and abs(seconds) > _LONGEST_INTERVAL_SECONDS:
        raise ScheduleDataError(
            f"an interval of more than {_LONGEST_INTERVAL_SECONDS:g} seconds is longer than Python can represent"
        )
    seconds = float(seconds)
    if not math.isfinite(seconds):
        raise ScheduleDataError(f"an interval must be a finite number of seconds, got {seconds!r}")
    if seconds > _LONGEST_INTERVAL_SECONDS:
        raise ScheduleDataError(f"an interval of {seconds:g} seconds is longer than Python can represent")
    if timedelta(seconds=seconds) <= timedelta(0):
        raise ScheduleDataError(f"an interval must be longer than zero, got {seconds:g} seconds")
    return seconds
