"""Nominal fire instants for any Celery schedule, ours or Celery's own.

The scheduler keys its heap and its run ledger on *nominal* fire instants (the moment a run was
meant for, not the moment it was sent), which keeps interval jobs on their grid and makes a fire
instant a stable identity for deduplication. :class:`~celery_orchestra.Timing` answers that
directly. Celery's ``crontab``/``solar``/``schedule`` only answer "how long from now until the
first fire after ``last_run_at``", so for them the instant is derived from that answer and rounded
to the second (their fields have no finer resolution), which makes it stable across calls.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery.schedules import BaseSchedule

from .model import Interval
from .schedule import Timing

__all__ = ["MissedFires", "fire_after", "missed_fires", "next_fire"]

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
    # Celery before 5.5 matches a crontab's fields against `after` in whatever zone it is given
    # (5.5+ converts to the schedule's zone itself): hand it over in the schedule's zone.
    remaining = schedule.remaining_estimate(after.astimezone(schedule.tz))
    fire = _round_to_second((now + remaining).astimezone(UTC))
    # Rounding can land on `after` itself; the contract is "strictly after".
    return fire if fire > after else _round_to_second(after) + _SECOND


def next_fire(
    schedule: BaseSchedule,
    *,
    last_fire_at: datetime | None,
    anchor: datetime,
    resumed_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """A job's next nominal fire instant (UTC): the first after its last run, anchor or resume.

    The one rule for "where the next fire is counted from", shared by beat and the status table:
    from the last run (else the anchor), or from the latest resume when that is later (runs missed
    while paused are not replayed). Never after ``now``: after a clock step backwards the last run
    can be "later" than now, and the ledger keeps a repeated instant from being sent twice.
    """
    reference = last_fire_at or anchor
    if resumed_at is not None and resumed_at > reference:
        reference = resumed_at
    return fire_after(schedule, min(reference, now))


#: Fire instants walked one by one at most when counting missed runs; beyond it the count is a
#: lower bound and the walk resumes a day before ``until`` (only the latest ones are ever sent).
_SCAN_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class MissedFires:
    """The nominal fire instants in ``[first, until]``: how many, and the latest few of them."""

    count: int
    #: True when ``count`` is a lower bound (too many to walk one by one).
    at_least: bool
    latest: list[datetime]


def missed_fires(schedule: BaseSchedule, first: datetime, until: datetime, keep: int) -> MissedFires:
    """Count the fire instants from ``first`` (itself a fire instant) through ``until``; keep the latest ``keep``.

    Interval timings are counted arithmetically, so a one-second job after a week of downtime
    costs nothing; other schedules fire at most once a minute or so and are walked.
    """
    if first > until:
        return MissedFires(0, False, [])
    if isinstance(schedule, Timing) and isinstance(schedule.spec, Interval):
        every = schedule.spec.every
        count = (until - first) // every + 1
        kept = min(count, keep)
        last = first + (count - 1) * every
        return MissedFires(count, False, [last - k * every for k in range(kept - 1, -1, -1)])
    latest: deque[datetime] = deque([first], maxlen=max(keep, 1))
    count, at_least, cursor = 1, False, first
    while True:
        fire = fire_after(schedule, cursor)
        if fire is None or fire > until:
            break
        count += 1
        latest.append(fire)
        cursor = fire
        if count % _SCAN_LIMIT == 0 and until - cursor > timedelta(days=1):
            at_least, cursor = True, until - timedelta(days=1)
    return MissedFires(count, at_least, list(latest)[-keep:] if keep else [])
