"""The Celery face of a timing: :class:`Timing`, a ``celery.schedules.BaseSchedule``.

A thin adapter: parsing is :mod:`celery_orchestra.timing.parser`, fire times are
:mod:`celery_orchestra.timing.evaluate`. What this layer adds is Celery's protocol (``is_due``,
``remaining_estimate``), value equality (so beat notices edits), compact pickling (so stock
``celery beat``'s shelve file stays small and readable by the next version), and the rule for the
zone: an explicit ``tz``, else the app's ``timezone`` setting, else UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from celery.schedules import BaseSchedule, schedstate

from ..errors import TimingError
from .evaluate import next_fire_after, passed_at_registration
from .model import Kind, TimingSpec
from .parser import parse_expression
from .zones import app_zone, require_aware, resolve_zone, zone_name

__all__ = ["NEVER_SECONDS", "Timing", "timing"]

#: What ``is_due`` reports as "seconds until the next check" when the timing will never fire
#: again. Finite on purpose: beat busy-loops or stalls on ``None``, NaN or infinity.
NEVER_SECONDS = 1e8

Now = Callable[[], datetime]


class Timing(BaseSchedule):  # type: ignore[misc]
    """A parsed timing expression bound to a zone and an anchor.

    ``anchor`` is the instant the job was registered: cyclic and ``once in`` timings count from
    it, and no timing fires at or before it.
    """

    def __init__(
        self,
        spec: TimingSpec,
        tz: str | tzinfo | None = None,
        *,
        anchor: datetime | None = None,
        nowfun: Now | None = None,
        app: Any = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app)
        self.spec = spec
        self._zone = None if tz is None else resolve_zone(tz)
        if anchor is None:
            anchor = nowfun() if nowfun is not None else datetime.now(UTC)
        self.anchor: datetime = require_aware(anchor, "anchor")
        self._app_zone: tuple[object, tzinfo] | None = None

    # ---- what it is

    @property
    def expression(self) -> str:
        """The normalised expression; ``timing(t.expression)`` means the same as ``t``."""
        return str(self.spec)

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    @property
    def max_runs(self) -> int | None:
        return 1 if self.spec.kind == "once" else None

    @property
    def zone(self) -> tzinfo | None:
        """The explicit zone, or ``None`` when the timing follows the app's ``timezone``."""
        return self._zone

    @property
    def tz(self) -> tzinfo:  # overrides BaseSchedule's cached_property: the zone may follow the app
        if self._zone is not None:
            return self._zone
        app = self._app
        cached = self._app_zone
        if cached is not None and cached[0] is app:
            return cached[1]
        zone = app_zone(app)
        self._app_zone = (app, zone)
        return zone

    @property
    def is_expired(self) -> bool:
        """A one-off whose moment had already passed when it was registered: it never fires."""
        return self.kind == "once" and passed_at_registration(self.spec, anchor=self.anchor, zone=self.tz)

    # ---- when it fires

    def next_fire_after(self, dt: datetime) -> datetime | None:
        """The first fire instant strictly after the aware ``dt``, in the schedule's zone."""
        return next_fire_after(self.spec, dt, anchor=self.anchor, zone=self.tz)

    def next_fires(self, n: int, after: datetime | None = None) -> list[datetime]:
        """Up to ``n`` fire instants after ``after`` (default: now); fewer if the timing ends."""
        fires: list[datetime] = []
        cursor = self._aware_now() if after is None else after
        while len(fires) < n:
            fire = self.next_fire_after(cursor)
            if fire is None:
                break
            fires.append(fire)
            cursor = fire
        return fires

    # ---- Celery's protocol

    def _aware_now(self) -> datetime:
        now: datetime = self.now()
        return self._last_run(now)

    def _last_run(self, last_run_at: datetime) -> datetime:
        # Celery's convention: a naive datetime is UTC.
        return last_run_at if last_run_at.tzinfo is not None else last_run_at.replace(tzinfo=UTC)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """Time from now until the first fire after ``last_run_at`` (negative when overdue)."""
        fire = self.next_fire_after(self._last_run(last_run_at))
        if fire is None:
            return timedelta(seconds=NEVER_SECONDS)
        return fire - self._aware_now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        """Due when a fire instant lies between ``last_run_at`` and now.

        Runs missed while beat was down are caught up once, not once per missed instant. The
        returned delay is always finite and non-negative (beat busy-loops otherwise).
        """
        now = self._aware_now()
        fire = self.next_fire_after(self._last_run(last_run_at))
        if fire is None:
            return schedstate(False, NEVER_SECONDS)
        if fire <= now:
            following = self.next_fire_after(now)
            delay = NEVER_SECONDS if following is None else max((following - now).total_seconds(), 0.0)
            return schedstate(True, delay)
        return schedstate(False, max((fire - now).total_seconds(), 0.0))

    # ---- value semantics

    def _identity(self) -> tuple[object, ...]:
        zone = None if self._zone is None else zone_name(self._zone)
        return (self.spec, zone, self.anchor)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Timing):
            return self._identity() == other._identity()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._identity())

    def __reduce__(self) -> tuple[Any, ...]:
        zone = None if self._zone is None else zone_name(self._zone)
        return (_restore_timing, (self.expression, zone, self.anchor, self.nowfun))

    def __str__(self) -> str:
        return self.expression

    def __repr__(self) -> str:
        zone = "app" if self._zone is None else zone_name(self._zone)
        return f"<Timing {self.expression!r} kind={self.kind} tz={zone} anchor={self.anchor.isoformat()}>"


def _restore_timing(expression: str, zone: str | None, anchor: datetime, nowfun: Now | None) -> Timing:
    return Timing(parse_expression(expression), zone, anchor=anchor, nowfun=nowfun)


def timing(
    expression: str,
    tz: str | tzinfo | None = None,
    *,
    anchor: datetime | None = None,
    nowfun: Now | None = None,
    app: Any = None,
) -> Timing:
    """Parse ``expression`` into a :class:`Timing`.

    ``tz`` defaults to the app's ``timezone`` setting, else UTC; ``anchor`` (the instant the job
    was registered) defaults to now. Raises :class:`~celery_orchestra.TimingError` for a bad
    expression and :class:`~celery_orchestra.TimeZoneError` for an unknown zone.
    """
    if not isinstance(expression, str):
        raise TimingError(
            f"a timing expression must be a string, not {type(expression).__name__}", expression=repr(expression)
        )
    return Timing(parse_expression(expression), tz, anchor=anchor, nowfun=nowfun, app=app)
