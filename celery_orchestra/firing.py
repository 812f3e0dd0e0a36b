"""Nominal fire instants for any Celery schedule, ours or Celery's own.

The scheduler keys its heap and its run ledger on *nominal* fire instants (the moment a run was
meant for, not the moment it was sent), which keeps interval jobs on their grid and makes a fire
instant a stable identity for deduplication. :class:`~celery_orchestra.Timing` answers that
directly. Celery's ``crontab``/``solar``/``schedule`` only answer "how long from now until the
first fire after ``last_run_at``", so for them the instant is derived from that answer and rounded
to the second (their fields have no finer resolution), which makes it stable across calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery.schedules import BaseSchedule

from .schedule import Timing

__all__ = ["fire_after", "fires_between"]

_SECOND = timedelta(seconds=1)


def _round_to_second(instant: datetime) -> datetime:
    rounded = instant.replace(microsecond=0)
    return rounded + _SECOND if instant.microsecond >= 500_000 else rounded


def fire_after(schedule: BaseSchedule, after: datetime) -> datetime | None:
    """The first nominal fire instant strictly after the aware ``after`` (UTC), or ``None``."""
    if isinstance(schedule, Timing):
        fire = schedule.next_fire_after(after)
        return None if fire is None else fire.astimezone(UTC)
    now = schedule.now()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    remaining = schedule.remaining_estimate(after)
    fire = _round_to_second((now + remaining).astimezone(UTC))
    # Rounding can land on `after` itself; the contract is "strictly after".
    return fire if fire > after else _round_to_second(after) + _SECOND


def fires_between(schedule: BaseSchedule, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """Nominal fire instants in ``(after, until]``, at most ``limit`` of them (the earliest)."""
    fires: list[datetime] = []
    cursor = after
    while len(fires) < limit:
        fire = fire_after(schedule, cursor)
        if fire is None or fire > until:
            break
        fires.append(fire)
        cursor = fire
    return fires
