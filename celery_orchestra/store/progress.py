"""What beat writes about its jobs: the progress of a sent batch (with its confirmations) and next fire times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import and_, bindparam, update
from sqlalchemy.engine import Connection

from ..timing.zones import require_aware
from .database import Database
from .lease import Fence, check_fence
from .ledger import confirmed_runs, run_batch
from .records import Progress, RunKey, RunRecord
from .sql import bump_revision, existing, lock_writers, require_known, update_by_name, update_many
from .tables import JOBS, RUNS

__all__ = ["HANDED_BACK", "LateSettlement", "save_progress", "set_next_run", "settle_late"]

_CONFIRM: Final = (
    update(RUNS)
    .where(
        and_(
            RUNS.c.job_name == bindparam("b_job_name"),
            RUNS.c.fire_time == bindparam("b_fire_time", type_=RUNS.c.fire_time.type),
            RUNS.c.task_id == bindparam("b_task_id"),
        )
    )
    .values(published=True, sent_at=bindparam("b_sent_at", type_=RUNS.c.sent_at.type))
)
_PROGRESS_COLUMNS: Final = (JOBS.c.last_run_at, JOBS.c.total_run_count, JOBS.c.next_run_at)


def save_progress(
    db: Database,
    progress: Mapping[str, Progress | tuple[datetime | None, int, datetime | None]],
    *,
    published: Sequence[RunRecord] = (),
    fence: Fence | None = None,
) -> list[str]:
    """Store each job's :class:`Progress`; return the names that changed.

    ``published`` are the claimed runs that were sent: their ledger rows are confirmed (and
    stamped with their ``sent_at``) in the same transaction.

    The bookkeeping step after claiming and publishing. ``runs_added`` is *added* to the stored
    count and ``last_run_at`` never moves backwards, inside the transaction: two beats that each
    sent some runs of one job end with the exact total, not whichever wrote last. A run in
    ``published`` that someone else already confirmed is taken off ``runs_added``: a run is
    counted by whoever confirms it first, and only once. Raises
    :class:`~celery_orchestra.errors.JobNotFound`, changing nothing, when a name is unknown.
    ``fence``: written by a beat, only while it holds the lease (see :mod:`.lease`).
    """
    wanted = {name: _checked_progress(name, Progress(*update)) for name, update in progress.items()}
    confirmed = run_batch(published)
    if not wanted and not confirmed:
        return []

    def work(connection: Connection) -> tuple[list[str], bool]:
        revision = bump_revision(connection, db.safe_url)
        if fence is not None:
            check_fence(connection, fence)
        current = existing(connection, wanted, _PROGRESS_COLUMNS)
        require_known(wanted, current)
        if confirmed:
            _confirm(connection, confirmed, wanted)
        rows = _changed_rows(wanted, current)
        if not rows:
            return [], bool(confirmed)
        now = datetime.now(UTC)
        update_many(
            connection,
            [
                {
                    "name": name,
                    "last_run_at": last_run_at,
                    "total_run_count": total,
                    "next_run_at": next_run_at,
                    "revision": revision,
                    "updated_at": now,
                }
                for name, (last_run_at, total, next_run_at) in rows.items()
            ],
        )
        return list(rows), True

    return db.run(f"save the progress of {len(wanted)} jobs", work, write=True)


def _checked_progress(name: str, update: Progress) -> Progress:
    if update.runs_added < 0:
        raise ValueError(f"runs added to job {name!r} must be >= 0, got {update.runs_added}")
    return Progress(
        None if update.last_run_at is None else require_aware(update.last_run_at, f"last run of job {name!r}"),
        update.runs_added,
        None if update.next_run_at is None else require_aware(update.next_run_at, f"next run of job {name!r}"),
    )


def _confirm(connection: Connection, confirmed: Mapping[RunKey, RunRecord], wanted: dict[str, Progress]) -> None:
    """Confirm the published runs; a run someone else confirmed already is not counted again."""
    for key in confirmed_runs(connection, confirmed):
        if key.job_name in wanted:
            update = wanted[key.job_name]
            wanted[key.job_name] = update._replace(runs_added=max(update.runs_added - 1, 0))
    connection.execute(
        _CONFIRM,
        [
            {
                "b_job_name": key.job_name,
                "b_fire_time": key.fire_time,
                "b_task_id": run.task_id,
                "b_sent_at": run.sent_at,
            }
            for key, run in confirmed.items()
        ],
    )


def _changed_rows(
    wanted: Mapping[str, Progress], current: Mapping[str, tuple[Any, ...]]
) -> dict[str, tuple[datetime | None, int, datetime | None]]:
    """The (last run, total, next run) each job gets, for the jobs where that differs from the stored."""
    rows: dict[str, tuple[datetime | None, int, datetime | None]] = {}
    for name, (last_run_at, runs_added, next_run_at) in wanted.items():
        stored_last, stored_count, stored_next = current[name]
        if stored_last is not None and (last_run_at is None or stored_last > last_run_at):
            last_run_at = stored_last
        values = (last_run_at, stored_count + runs_added, next_run_at)
        if values != (stored_last, stored_count, stored_next):
            rows[name] = values
    return rows


def set_next_run(db: Database, updates: Mapping[str, datetime | None], *, fence: Fence | None = None) -> list[str]:
    """Store the next fire time of each named job; return the names whose value changed.

    Rows whose stored value is already right are not written (a restart that recomputes the
    same times causes no change notifications). Raises
    :class:`~celery_orchestra.errors.JobNotFound`, changing nothing, when a name is unknown.
    """
    wanted = {
        name: None if when is None else require_aware(when, f"next run of job {name!r}")
        for name, when in updates.items()
    }
    if not wanted:
        return []

    def work(connection: Connection) -> tuple[list[str], bool]:
        revision = bump_revision(connection, db.safe_url)
        if fence is not None:
            check_fence(connection, fence)
        current = existing(connection, wanted, (JOBS.c.next_run_at,))
        require_known(wanted, current)
        changed = [name for name, when in wanted.items() if current[name][0] != when]
        if not changed:
            return [], False
        now = datetime.now(UTC)
        connection.execute(
            update_by_name(("next_run_at", "revision", "updated_at")),
            [
                {"b_name": name, "b_next_run_at": wanted[name], "b_revision": revision, "b_updated_at": now}
                for name in changed
            ],
        )
        return changed, True

    return db.run(f"store the next run of {len(wanted)} jobs", work, write=True)


#: The epoch of a claim handed back unsent by a beat that lost the lease (real epochs start at 1):
#: the new holder sends it, a one-off's too, instead of guessing whether it went out.
HANDED_BACK: Final = 0


class LateSettlement(NamedTuple):
    """What a beat that lost its lease could still settle of its own epoch's claims."""

    #: Runs it had sent, now confirmed and counted (nobody had taken their claims over).
    confirmed: list[RunRecord]
    #: Claims of runs it had not sent, handed to the new holder (which sends them at once).
    handed_back: int


def settle_late(
    db: Database, epoch: int, *, published: Sequence[RunRecord], unsent: Sequence[RunRecord]
) -> LateSettlement:
    """Settle the claims of epoch ``epoch`` after its beat lost the lease (it stalled mid-batch).

    The one write of a beat that no longer holds the lease, and it only ever tells the truth about
    its own claims: each row is changed only while it is still claimed at ``epoch`` and
    unconfirmed. Sent runs are confirmed and counted, so the new holder does not send them again;
    unsent ones are marked :data:`HANDED_BACK`, so the new holder sends them at once. A claim the new holder
    already took over is left alone (it sends it: the duplicate is then unavoidable).
    """
    sent = run_batch(published)
    not_sent = run_batch(unsent)
    if not sent and not not_sent:
        return LateSettlement([], 0)
    mine = and_(
        RUNS.c.job_name == bindparam("b_job_name"),
        RUNS.c.fire_time == bindparam("b_fire_time", type_=RUNS.c.fire_time.type),
        RUNS.c.task_id == bindparam("b_task_id"),
        RUNS.c.epoch == epoch,
        RUNS.c.published.is_(False),
        RUNS.c.abandoned.is_(False),
    )
    confirm = update(RUNS).where(mine).values(published=True, sent_at=bindparam("b_sent_at", type_=RUNS.c.sent_at.type))
    hand_back = update(RUNS).where(mine).values(epoch=HANDED_BACK)

    def key_of(key: RunKey, run: RunRecord) -> dict[str, Any]:
        return {"b_job_name": key.job_name, "b_fire_time": key.fire_time, "b_task_id": run.task_id}

    def work(connection: Connection) -> tuple[LateSettlement, bool]:
        lock_writers(connection)
        confirmed = [
            run
            for key, run in sent.items()
            if connection.execute(confirm, {**key_of(key, run), "b_sent_at": run.sent_at}).rowcount
        ]
        handed = sum(connection.execute(hand_back, key_of(key, run)).rowcount for key, run in not_sent.items())
        if confirmed:
            revision = bump_revision(connection, db.safe_url)
            _count_late(connection, confirmed, revision)
        return LateSettlement(confirmed, handed), bool(confirmed or handed)

    return db.run(f"settle {len(sent) + len(not_sent)} runs of a lost lease", work, write=True)


def _count_late(connection: Connection, confirmed: Sequence[RunRecord], revision: int) -> None:
    """Add the late-confirmed runs to their jobs' counts; the last run never moves backwards."""
    per_job: dict[str, tuple[int, datetime]] = {}
    for run in confirmed:
        count, last = per_job.get(run.job_name, (0, run.fire_time))
        per_job[run.job_name] = (count + 1, max(last, run.fire_time))
    current = existing(connection, per_job, _PROGRESS_COLUMNS)
    now = datetime.now(UTC)
    rows = [
        {
            "b_name": name,
            "b_last_run_at": last if current[name][0] is None or current[name][0] < last else current[name][0],
            "b_total_run_count": current[name][1] + count,
            "b_revision": revision,
            "b_updated_at": now,
        }
        for name, (count, last) in per_job.items()
        if name in current
    ]
    if rows:
        connection.execute(update_by_name(("last_run_at", "total_run_count", "revision", "updated_at")), rows)
