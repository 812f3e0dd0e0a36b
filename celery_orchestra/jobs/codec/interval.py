"""``{"type": "interval", "seconds": 30.0, "relative": false}``: a ``timedelta``, a number of
seconds, or a ``celery.schedules.schedule``.

A non-relative interval is rebuilt as a drift-free cyclic :class:`IntervalTiming` counted from
the job's anchor, so an interval job keeps its grid across restarts instead of stock beat's
"last run + interval", which drifts by the scheduler's latency on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final

from celery.schedules import BaseSchedule
from celery.schedules import schedule as interval_schedule

from ...errors import ScheduleDataError, ScheduleTypeError
from ...timing.model import Interval, TimingSpec, format_duration
from ...timing.schedule import Timing
from ._common import ScheduleContext, type_name, valid_interval_seconds

__all__ = ["IntervalCodec", "IntervalTiming"]


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
            raise ScheduleTypeError(f"an IntervalTiming needs an Interval spec, got {type_name(spec)}")
        super().__init__(spec, tz, anchor=anchor, nowfun=nowfun, app=app)

    @property
    def every(self) -> timedelta:
        return self.spec.every


class IntervalCodec:
    tag = "interval"
    fields: Final[Mapping[str, tuple[type, ...]]] = {"seconds": (int, float), "relative": (bool,)}

    def encode(self, value: object, *, relative: bool) -> dict[str, Any] | None:
        # `relative` mirrors the beat_schedule key: like Celery's maybe_schedule it applies only to
        # plain durations; a celery.schedules.schedule carries its own flag.
        if isinstance(value, IntervalTiming):
            return self._data(value.every.total_seconds(), False)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self._data(value, relative)
        if isinstance(value, timedelta):
            return self._data(value.total_seconds(), relative)
        if isinstance(value, interval_schedule):
            run_every = value.run_every
            if not isinstance(run_every, timedelta):
                raise ScheduleDataError(f"celery schedule has no interval (run_every={run_every!r})")
            return self._data(run_every.total_seconds(), bool(value.relative))
        return None

    def _data(self, seconds: float, relative: bool) -> dict[str, Any]:
        return {"type": self.tag, "seconds": valid_interval_seconds(seconds), "relative": relative}

    def check(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {**data, "seconds": valid_interval_seconds(data["seconds"])}

    def decode(self, data: Mapping[str, Any], context: ScheduleContext) -> BaseSchedule:
        every = timedelta(seconds=data["seconds"])
        if not data["relative"]:
            return IntervalTiming(
                Interval(every), context.tz, anchor=context.anchor, app=context.app, nowfun=context.nowfun
            )
        relative_schedule = interval_schedule(every, relative=True, nowfun=context.nowfun, app=context.app)
        if context.tz is not None:
            relative_schedule.tz = context.tz
        return relative_schedule

    def kind(self, data: Mapping[str, Any]) -> str:
        return "cyclic"  # a plain interval is what the timing language calls cyclic

    def describe(self, data: Mapping[str, Any]) -> str:
        every = format_duration(timedelta(seconds=float(data["seconds"])))
        return f"every {every} (relative)" if data["relative"] else f"every {every}"
