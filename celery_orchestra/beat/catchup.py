"""Which nominal instants of a due job to send now: pure planning, no I/O, no clock of its own.

A backlog that built up while beat was running, none of it older than ``orchestra_misfire_grace``,
is sent in full: beat was merely busy (or a standby waited for a dead beat's lease). Instants from
before beat came online (it was down, or the clock jumped) or later than the grace were missed and
follow ``orchestra_catch_up``: ``once`` sends the latest instant, ``skip``
sends it only if it is within the grace, ``all`` sends the latest ``orchestra_catch_up_limit`` of
them. Every run not sent is explained in :attr:`CatchUpPlan.notice`, for the log.

A crontab job's missed instants are first bounded by Celery's ``beat_cron_starting_deadline``
(as stock beat's ``crontab.is_due`` does): one more than that many seconds old is never sent, so
the policy picks among the newer ones only (with ``once``, a crontab whose latest missed instant
is older than the deadline sends nothing until its next instant). Merely delayed instants are not
missed and are not bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.schedules import BaseSchedule, crontab

from ..settings import OrchestraSettings
from ..timing.firing import missed_fires
from ..timing.zones import log_instant

__all__ = ["CatchUpPlan", "plan_catch_up"]


@dataclass(frozen=True, slots=True)
class CatchUpPlan:
    """The instants to send (oldest first), the latest instant dealt with, and what to log."""

    fires: list[datetime]
    #: The newest nominal instant up to now: the job's next fire is counted from it.
    latest: datetime
    #: A warning about runs not sent, or ``None`` when nothing was missed.
    notice: str | None = None


def plan_catch_up(
    name: str,
    schedule: BaseSchedule,
    first: datetime,
    now: datetime,
    *,
    max_runs: int | None,
    online_since: datetime,
    settings: OrchestraSettings,
) -> CatchUpPlan:
    """Plan the runs of job ``name``, due since its nominal instant ``first`` (see the module docstring).

    ``online_since`` is since when beat has been running without a clock jump: instants before it
    were missed, instants after it merely delayed.
    """
    limit = settings.catch_up_limit if max_runs is None else max_runs
    backlog = missed_fires(schedule, first, now, limit)
    latest = backlog.latest[-1] if backlog.latest else first
    grace = timedelta(seconds=settings.misfire_grace)

    # Instants after beat came online and within the grace were merely delayed (beat was busy,
    # or a standby was waiting for a dead beat's lease): all of them are sent.
    def delayed_only(fire: datetime) -> bool:
        return fire > online_since and now - fire <= grace

    delayed = [fire for fire in backlog.latest if delayed_only(fire)]
    missed = [fire for fire in backlog.latest if not delayed_only(fire)]
    missed_count = backlog.count - len(delayed)
    if missed_count == 0 or (not missed and not backlog.at_least):
        notice = None
        if backlog.count > len(backlog.latest):
            notice = (
                f"celery-orchestra: job {name} fell behind by {backlog.count} run(s); "
                f"sending the latest {len(backlog.latest)}"
            )
        return CatchUpPlan(backlog.latest, latest, notice)

    deadline = settings.cron_starting_deadline if isinstance(schedule, crontab) else None
    if deadline is not None:
        missed = [fire for fire in missed if now - fire <= timedelta(seconds=deadline)]
    caught_up = _chosen(missed, now, grace, settings)
    fires = caught_up + delayed
    if missed_count == 1 and caught_up:
        return CatchUpPlan(fires, latest)  # a single run, late but sent: nothing was missed
    how_many = f"{'at least ' if backlog.at_least else ''}{missed_count}"
    if caught_up:
        notice = (
            f"celery-orchestra: job {name} missed {how_many} run(s); catch-up {settings.catch_up!r}: "
            f"sending {len(caught_up)}, the last for {log_instant(caught_up[-1], schedule.tz)}"
        )
    elif deadline is not None and not missed:
        notice = (
            f"celery-orchestra: job {name}: skipped {how_many} missed run(s) "
            f"(older than beat_cron_starting_deadline, {deadline:g} s)"
        )
    else:
        notice = f"celery-orchestra: job {name}: skipped {how_many} missed run(s) (catch-up 'skip')"
    return CatchUpPlan(fires, latest, notice)


def _chosen(missed: list[datetime], now: datetime, grace: timedelta, settings: OrchestraSettings) -> list[datetime]:
    """The missed instants (oldest first) that ``orchestra_catch_up`` sends."""
    if settings.catch_up == "all":
        return missed
    if settings.catch_up == "skip":
        return [missed[-1]] if missed and now - missed[-1] <= grace else []
    return missed[-1:]
