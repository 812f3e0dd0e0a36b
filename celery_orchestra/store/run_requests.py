""" "Run now" requests: a manual run of a job, written to the run ledger for the active beat to send.

A request is a ledger row marked ``manual``, unconfirmed and claimed by no epoch, keyed by the
instant it was requested; its write bumps the change counter, so the active beat's next poll
(``orchestra_poll_interval``, about a second) finds it. The beat then takes it like a claim of a
beat that is gone (``ledger.take_over_claims``: stamped with its epoch, fenced), publishes it
with the request's task id, and confirms it (``progress.save_progress`` with no progress): it is
never counted as one of the job's scheduled runs and never moves its schedule.

The ledger's key is (job, instant), shared with scheduled fires. Anchors are whole seconds and
intervals have at most a few decimals (``orchestra_min_interval`` is 0.1 s), so scheduled fires
land on multiples of ten microseconds; a request instant never does (it is moved by a microsecond
when needed), and when its instant is taken all the same, the next free one is used. Only a solar
event computed to that very microsecond could meet a request's key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.engine import Connection

from ..timing.zones import require_aware
from .database import Database
from .records import RunRecord
from .sql import bump_revision, dialect_insert, existing, require_known
from .tables import JOBS, NAME_LENGTH, RUNS

__all__ = ["request_instant", "request_run"]

#: How many later microseconds a request tries when its instant is taken in the ledger.
_FREE_INSTANT_TRIES: Final = 1000
_MICROSECOND: Final = timedelta(microseconds=1)


def request_instant(now: datetime) -> datetime:
    """The ledger instant of a request made at ``now``: never a multiple of ten microseconds, where
    scheduled fires land."""
    now = require_aware(now, "the instant of a run-now request")
    return now + _MICROSECOND if now.microsecond % 10 == 0 else now


def _instants(first: datetime) -> Iterator[datetime]:
    """``first`` and the request instants after it, in order."""
    instant = first
    for _ in range(_FREE_INSTANT_TRIES):
        yield instant
        instant = request_instant(instant + _MICROSECOND)


def request_run(db: Database, job_name: str, *, task_id: str, now: datetime) -> RunRecord:
    """Record a manual run of ``job_name`` with ``task_id``; return it (its ``fire_time`` is the request instant).

    Raises :class:`~celery_orchestra.errors.JobNotFound` for a name not in the store, changing
    nothing. Whether the job may be run (not removed, readable) is the caller's check.
    """
    if len(task_id) > NAME_LENGTH:
        raise ValueError(f"task id of the manual run of job {job_name!r} is longer than {NAME_LENGTH} characters")
    first = request_instant(now)
    insert = (
        dialect_insert(db.backend, RUNS)
        .on_conflict_do_nothing(index_elements=[RUNS.c.job_name, RUNS.c.fire_time])
        .returning(RUNS.c.fire_time)
    )

    def work(connection: Connection) -> tuple[RunRecord, bool]:
        bump_revision(connection, db.safe_url)  # the active beat's next poll looks for requests
        require_known([job_name], existing(connection, [job_name], (JOBS.c.name,)))
        for instant in _instants(first):
            row = {
                "job_name": job_name,
                "fire_time": instant,
                "sent_at": instant,
                "task_id": task_id,
                "published": False,
                "epoch": None,
                "manual": True,
            }
            if connection.execute(insert, row).first() is not None:
                return RunRecord(job_name, instant, instant, task_id, None), True
        raise RuntimeError(f"no free instant in the run ledger of {job_name!r} after {first.isoformat()}")

    return db.run(f"request a manual run of {job_name!r}", work, write=True)
