"""The run ledger ``orchestra_runs``: one row per (job, nominal fire time), claimed before publishing.

The protocol, for every batch a beat sends:

1. :func:`claim_runs` inserts the runs, skipping those already in the ledger, and returns the ones
   this caller now owns, so two beats (or a restart right after a send) cannot both send a fire time;
2. the caller publishes what it owns;
3. :func:`release_runs` deletes the claims of runs whose send failed (they can be sent later),
   and :func:`~celery_orchestra.store.progress.save_progress` confirms the sent ones together
   with the jobs' progress.

A claim is counted as a run by whoever confirms it first, and only once.

A beat writes under its lease's :class:`~.lease.Fence`: each of these transactions first checks
that the beat still holds the lease at its epoch, and each claim records that epoch. A claim left
unconfirmed by an earlier epoch belongs to a beat that is gone: :func:`unconfirmed_claims` finds
them for the new holder, which sends a repeating job's run again with its task id
(:func:`take_over_claims`: at least once) and marks a one-off's :func:`abandon_claims` (at most
once: it shows in history as unconfirmed, never sent again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from ..errors import JobNotFound, quoted
from ..timing.zones import require_aware
from .database import Database
from .lease import Fence, check_fence
from .records import LedgerEntry, RunKey, RunRecord, UnconfirmedClaim
from .sql import chunks, dialect_insert, existing, lock_writers
from .tables import BEATS, JOBS, NAME_LENGTH, RUNS

__all__ = [
    "PRUNE_BATCH",
    "abandon_claims",
    "claim_runs",
    "confirmed_runs",
    "history",
    "latest_runs",
    "prune_runs",
    "release_runs",
    "run_batch",
    "take_over_claims",
    "unconfirmed_claims",
]

log = logging.getLogger(__name__)

_RELEASE: Final = delete(RUNS).where(
    and_(
        RUNS.c.job_name == bindparam("b_job_name"),
        RUNS.c.fire_time == bindparam("b_fire_time", type_=RUNS.c.fire_time.type),
        RUNS.c.task_id == bindparam("b_task_id"),
    )
)


def run_batch(runs: Iterable[RunRecord]) -> dict[RunKey, RunRecord]:
    """Check a batch of runs and key it by (job, UTC fire time), first occurrence wins, in key order.

    Key order is the order rows are inserted and locked in: two processes writing overlapping
    batches then wait for each other instead of deadlocking.
    """
    batch: dict[RunKey, RunRecord] = {}
    for run in runs:
        fire_time = require_aware(run.fire_time, f"fire_time of run of job {run.job_name!r}")
        require_aware(run.sent_at, f"sent_at of run of job {run.job_name!r}")
        if run.next_run_at is not None:
            require_aware(run.next_run_at, f"next_run_at of run of job {run.job_name!r}")
        if len(run.task_id) > NAME_LENGTH:
            raise ValueError(f"task id of run of job {run.job_name!r} is longer than {NAME_LENGTH} characters")
        batch.setdefault(RunKey(run.job_name, fire_time), run)
    return dict(sorted(batch.items(), key=lambda item: item[0]))


def claim_runs(db: Database, runs: Sequence[RunRecord], *, fence: Fence | None = None) -> list[RunRecord]:
    """Claim runs in the ledger before publishing them; return the runs this caller now owns.

    A run is owned when its (job, fire time) was not in the ledger. A claim left unconfirmed by a
    beat that died is not taken here: the next lease holder recovers it (:func:`take_over_claims`).
    Jobs' rows are not written here. Runs of jobs not in the store are skipped with a warning.
    """
    batch = run_batch(runs)
    if not batch:
        return []
    insert_statement = (
        dialect_insert(db.backend, RUNS)
        .on_conflict_do_nothing(index_elements=[RUNS.c.job_name, RUNS.c.fire_time])
        .returning(RUNS.c.job_name, RUNS.c.fire_time)
    )
    epoch = None if fence is None else fence.epoch
    # What an earlier attempt of this call inserted: if its commit went through and only the reply
    # was lost, a retry finds those rows taken, and they are still this call's (see _own_rows).
    inserted_before: set[RunKey] = set()

    def work(connection: Connection) -> tuple[list[RunRecord], bool]:
        lock_writers(connection)
        if fence is not None:
            check_fence(connection, fence)
        rows = _ledger_rows(connection, batch, db.safe_url, epoch)
        if not rows:
            return [], False
        owned = {RunKey(row.job_name, row.fire_time) for row in connection.execute(insert_statement, rows)}
        if inserted_before - owned:
            owned |= _own_rows(connection, {key: batch[key] for key in inserted_before - owned}, epoch)
        inserted_before.update(owned)
        return [run for key, run in batch.items() if key in owned], bool(owned)

    return db.run(f"claim {len(batch)} runs", work, write=True)


def _own_rows(connection: Connection, batch: Mapping[RunKey, RunRecord], epoch: int | None) -> set[RunKey]:
    """Those of ``batch`` whose ledger row is still this claim: its task id and epoch, unconfirmed."""
    owned: set[RunKey] = set()
    for key, run in batch.items():
        query = select(RUNS.c.id).where(
            RUNS.c.job_name == key.job_name,
            RUNS.c.fire_time == key.fire_time,
            RUNS.c.task_id == run.task_id,
            RUNS.c.epoch.is_not_distinct_from(epoch),
            RUNS.c.published.is_(False),
            RUNS.c.abandoned.is_(False),
        )
        if connection.execute(query).first() is not None:
            owned.add(key)
    return owned


def _ledger_rows(
    connection: Connection, batch: Mapping[RunKey, RunRecord], shown_url: str, epoch: int | None
) -> list[dict[str, Any]]:
    """Unconfirmed ledger rows for the runs of stored jobs; the others are logged and dropped."""
    names = {key.job_name for key in batch}
    known = existing(connection, names, ())
    unknown = sorted(names - set(known))
    if unknown:
        log.warning("not recording runs of jobs missing from %s: %s", shown_url, ", ".join(unknown))
    return [
        {
            "job_name": key.job_name,
            "fire_time": key.fire_time,
            "sent_at": run.sent_at,
            "task_id": run.task_id,
            "published": False,
            "epoch": epoch,
        }
        for key, run in batch.items()
        if key.job_name in known
    ]


def confirmed_runs(connection: Connection, batch: Mapping[RunKey, RunRecord]) -> set[RunKey]:
    """Those of ``batch`` whose ledger rows are already confirmed as published."""
    names = sorted({key.job_name for key in batch})
    earliest = min(key.fire_time for key in batch)
    found: set[RunKey] = set()
    for chunk in chunks(names):
        query = select(RUNS.c.job_name, RUNS.c.fire_time).where(
            and_(RUNS.c.job_name.in_(chunk), RUNS.c.published.is_(True), RUNS.c.fire_time >= earliest)
        )
        found.update(RunKey(row.job_name, row.fire_time) for row in connection.execute(query))
    return found & set(batch)


def release_runs(db: Database, runs: Sequence[RunRecord], *, fence: Fence | None = None) -> None:
    """Delete the ledger rows of claimed runs that were not sent, so that they can be sent later.

    Only rows with the same job, fire time *and* task id are deleted.
    """
    batch = run_batch(runs)
    if not batch:
        return
    parameters = [
        {"b_job_name": key.job_name, "b_fire_time": key.fire_time, "b_task_id": run.task_id}
        for key, run in batch.items()
    ]

    def work(connection: Connection) -> tuple[None, bool]:
        lock_writers(connection)
        if fence is not None:
            check_fence(connection, fence)
        connection.execute(_RELEASE, parameters)
        return None, True

    db.run(f"release {len(batch)} claimed runs", work, write=True)


def _from_earlier_epoch(epoch: int) -> Any:
    return and_(
        RUNS.c.published.is_(False),
        RUNS.c.abandoned.is_(False),
        or_(RUNS.c.epoch.is_(None), RUNS.c.epoch < epoch),
    )


def unconfirmed_claims(
    db: Database, before_epoch: int, *, limit: int = 1000, manual: bool = False
) -> list[UnconfirmedClaim]:
    """Claims left unconfirmed by beats of epochs before ``before_epoch`` (or claimed without one), oldest first.

    Those beats are gone: whatever they claimed and did not confirm is the new holder's to settle.
    ``manual``: the "run now" requests instead (see :mod:`.run_requests`), waiting or left
    unconfirmed; they follow rules of their own, so each kind is asked for apart.
    """
    query = (
        select(
            RUNS.c.job_name,
            RUNS.c.fire_time,
            RUNS.c.sent_at,
            RUNS.c.task_id,
            RUNS.c.epoch,
            JOBS.c.max_runs,
            BEATS.c.pid,
            BEATS.c.process_ns,
        )
        .join(JOBS, JOBS.c.name == RUNS.c.job_name)
        .outerjoin(BEATS, BEATS.c.epoch == RUNS.c.epoch)
        .where(_from_earlier_epoch(before_epoch), RUNS.c.manual.is_(manual))
        .order_by(RUNS.c.fire_time, RUNS.c.job_name)
        .limit(limit)
    )

    def work(connection: Connection) -> list[UnconfirmedClaim]:
        return [
            UnconfirmedClaim(
                RunRecord(row.job_name, row.fire_time, row.sent_at, row.task_id, None),
                row.epoch,
                row.max_runs is not None,
                row.pid,
                row.process_ns,
            )
            for row in connection.execute(query)
        ]

    return db.read("read unconfirmed claims", work)


def take_over_claims(db: Database, runs: Sequence[RunRecord], *, fence: Fence) -> list[RunRecord]:
    """Make earlier epochs' unconfirmed claims ``fence``'s own, stamped with each run's ``sent_at``; return those taken.

    The caller then sends them with their task ids and confirms them like any claim of its own.
    """
    return _adopt_claims(db, runs, fence=fence, abandon=False)


def abandon_claims(db: Database, runs: Sequence[RunRecord], *, fence: Fence) -> list[RunRecord]:
    """Mark earlier epochs' unconfirmed claims as abandoned (never sent again); return those marked."""
    return _adopt_claims(db, runs, fence=fence, abandon=True)


def _adopt_claims(db: Database, runs: Sequence[RunRecord], *, fence: Fence, abandon: bool) -> list[RunRecord]:
    """Stamp earlier epochs' unconfirmed claims with ``fence``'s epoch, to send them or to abandon them."""
    batch = run_batch(runs)
    if not batch:
        return []
    changes: dict[str, Any] = {"epoch": fence.epoch, "abandoned": abandon}
    if not abandon:
        changes["sent_at"] = bindparam("b_sent_at", type_=RUNS.c.sent_at.type)
    same_run = and_(
        RUNS.c.job_name == bindparam("b_job_name"),
        RUNS.c.fire_time == bindparam("b_fire_time", type_=RUNS.c.fire_time.type),
    )
    adopt = update(RUNS).where(same_run, _from_earlier_epoch(fence.epoch)).values(changes)
    # A retry after a commit whose reply was lost finds the rows an earlier attempt of this call
    # adopted already stamped: they are still this call's, or a taken run would be left unsent.
    adopted_again = (
        update(RUNS)
        .where(same_run, RUNS.c.epoch == fence.epoch, RUNS.c.published.is_(False), RUNS.c.abandoned.is_(abandon))
        .values(changes)
    )
    adopted_before: set[RunKey] = set()

    def work(connection: Connection) -> tuple[list[RunRecord], bool]:
        lock_writers(connection)
        check_fence(connection, fence)
        adopted: list[RunKey] = []
        for key, run in batch.items():
            values = {"b_job_name": key.job_name, "b_fire_time": key.fire_time, "b_sent_at": run.sent_at}
            if connection.execute(adopt, values).rowcount or (
                key in adopted_before and connection.execute(adopted_again, values).rowcount
            ):
                adopted.append(key)
        adopted_before.update(adopted)
        return [batch[key] for key in adopted], bool(adopted)

    action = "mark abandoned" if abandon else "take over"
    return db.run(f"{action} {len(batch)} unconfirmed claims", work, write=True)


#: Ledger rows deleted per transaction when pruning: a beat's claims wait at most for one batch.
PRUNE_BATCH: Final = 1000


def prune_runs(db: Database, before: datetime, *, batch: int = PRUNE_BATCH, fence: Fence | None = None) -> int:
    """Delete up to ``batch`` settled ledger rows whose fire time is older than ``before``; return how many.

    Settled means confirmed as sent, or abandoned: an unconfirmed claim is never pruned (the
    next holder must still recover it). Call again until it returns less than ``batch``. Rows
    are taken oldest id first, so each batch stops scanning as soon as it has found its rows.
    """
    before = require_aware(before, "prune_runs(before=...)")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    oldest = (
        select(RUNS.c.id)
        .where(and_(RUNS.c.fire_time < before, or_(RUNS.c.published.is_(True), RUNS.c.abandoned.is_(True))))
        .order_by(RUNS.c.id)
        .limit(batch)
    )

    def work(connection: Connection) -> tuple[int, bool]:
        if fence is not None:
            lock_writers(connection)
            check_fence(connection, fence)
        ids = list(connection.execute(oldest).scalars())
        if not ids:
            return 0, False
        deleted = connection.execute(delete(RUNS).where(RUNS.c.id.in_(ids))).rowcount
        return deleted, deleted > 0

    return db.run("prune the run ledger", work, write=True)


_ENTRY_COLUMNS: Final = (
    RUNS.c.job_name,
    RUNS.c.fire_time,
    RUNS.c.sent_at,
    RUNS.c.task_id,
    RUNS.c.published,
    RUNS.c.abandoned,
    RUNS.c.manual,
)


def _entry(row: Any) -> LedgerEntry:
    """A row of :data:`_ENTRY_COLUMNS` as a ledger entry."""
    return LedgerEntry(row.job_name, row.fire_time, row.sent_at, row.task_id, row.published, row.abandoned, row.manual)


def history(db: Database, job_name: str, limit: int = 20, *, before: datetime | None = None) -> list[LedgerEntry]:
    """The newest ``limit`` recorded runs of ``job_name``, newest fire time first; with ``before``,
    only those that fired earlier (a job has one run per fire time, so the last fire time of one
    page is the cursor of the next)."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    query = select(*_ENTRY_COLUMNS).where(RUNS.c.job_name == job_name)
    if before is not None:
        query = query.where(RUNS.c.fire_time < require_aware(before, "before"))
    query = query.order_by(RUNS.c.fire_time.desc()).limit(limit)

    def work(connection: Connection) -> list[LedgerEntry]:
        if not existing(connection, [job_name], ()):
            raise JobNotFound([job_name])
        return [_entry(row) for row in connection.execute(query)]

    return db.read(f"read the run history of {job_name!r}", work)


def run_by_task_id(db: Database, task_id: str) -> LedgerEntry | None:
    """The recorded run sent with ``task_id``, or ``None``.

    The ledger has no index on task ids (beat never looks runs up by them): this reads the ledger
    through, which an operator's occasional lookup can afford.
    """
    query = select(*_ENTRY_COLUMNS).where(RUNS.c.task_id == task_id).limit(1)

    def work(connection: Connection) -> LedgerEntry | None:
        row = connection.execute(query).first()
        return None if row is None else _entry(row)

    return db.read(f"look up the run with task id {quoted(task_id)}", work)


def recent_send_lags(db: Database, since: datetime) -> list[timedelta]:
    """How late each scheduled run fired at or after ``since`` was sent (publish minus fire time).

    Manual runs are left out (their fire time is when they were asked for), and so are claims
    not confirmed as published.
    """
    query = select(RUNS.c.fire_time, RUNS.c.sent_at).where(
        RUNS.c.fire_time >= require_aware(since, "since"),
        RUNS.c.published.is_(True),
        RUNS.c.manual.is_(False),
    )

    def work(connection: Connection) -> list[timedelta]:
        return [row.sent_at - row.fire_time for row in connection.execute(query)]

    return db.read("read the send lags of recent runs", work)


#: Up to this many job names are sent to :func:`latest_runs` as an ``IN`` list; more, and every
#: job's newest run is read and the wanted ones kept (one query either way).
LATEST_BY_NAME: Final = 500


def latest_runs(db: Database, job_names: Sequence[str] | None = None) -> dict[str, LedgerEntry]:
    """The newest recorded run (by fire time, as :func:`history` orders them) of each job that has
    one, by job name: of ``job_names`` only when given. One query, whatever the number of jobs."""
    newest = select(RUNS.c.job_name, func.max(RUNS.c.fire_time).label("newest")).group_by(RUNS.c.job_name)
    wanted = None if job_names is None else set(job_names)
    if wanted is not None and len(wanted) <= LATEST_BY_NAME:
        newest = newest.where(RUNS.c.job_name.in_(sorted(wanted)))
    grouped = newest.subquery()
    query = select(*_ENTRY_COLUMNS).join(
        grouped, and_(RUNS.c.job_name == grouped.c.job_name, RUNS.c.fire_time == grouped.c.newest)
    )

    def work(connection: Connection) -> dict[str, LedgerEntry]:
        return {
            row.job_name: _entry(row) for row in connection.execute(query) if wanted is None or row.job_name in wanted
        }

    return db.read("read the newest run of each job", work)
