"""The job store: configured jobs, operator state and the run ledger in one SQL database.

Design points, each answering a failure seen in other Celery beat schedulers:

* **Lazy.** Constructing a :class:`JobStore` parses the URL and nothing else: Celery builds
  throw-away scheduler instances (``lazy=True``) that must not connect or create files.
* **One global change counter.** Every write transaction first increments the single row of
  ``orchestra_meta`` and stamps the rows it writes with the new value. Readers poll
  :meth:`JobStore.current_revision` (one tiny query) and fetch only ``revision > seen`` rows (an
  index). Taking the counter row first also serialises the store's writers in one lock order, so
  revisions become visible in order and writers cannot deadlock each other.
* **A ledger keyed by (job, scheduled fire time).** :meth:`JobStore.record_runs` inserts with
  ``ON CONFLICT DO NOTHING`` and updates only the jobs whose rows were new, so two beat processes
  (or a restart right after a send) cannot count or send the same fire time twice.
* **Operator state is never overwritten by configuration.** ``paused`` is only changed by
  :meth:`JobStore.set_paused`; ``enabled`` follows the configuration only when the configured value
  itself changes, so an operator's :meth:`JobStore.set_enabled` survives restarts and redeploys.
* **Transient errors are retried, others explained.** A locked SQLite file or a dropped PostgreSQL
  connection is retried a few times with backoff (each retry logged); anything else, or the last
  failed retry, raises :class:`~celery_orchestra.store.errors.StoreError` naming the database
  (password masked) and the operation. A failed write is rolled back as a whole.

Editing jobs from outside the store (raw SQL, an admin tool) must bump the counter too, or running
schedulers will not notice. Either call :meth:`JobStore.touch` with the edited names, or run, in the
same transaction as the edit::

    UPDATE orchestra_meta SET revision = revision + 1 WHERE id = 1;
    UPDATE orchestra_jobs SET revision = (SELECT revision FROM orchestra_meta WHERE id = 1)
     WHERE name IN ('job-a', 'job-b');

Rows are never deleted by the store: a job gone from the configuration is marked ``removed`` (a
tombstone that change detection can see). Deleting a row by hand also deletes its run history.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, Final, TypeVar

from sqlalchemy import Row, and_, bindparam, case, delete, insert, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from ..definitions import JobDefinition
from .columns import require_aware
from .engine import (
    WRITE_OPTION,
    build_engine,
    describe_driver_error,
    is_missing_schema,
    is_transient,
    mask_url,
    parse_url,
)
from .errors import InvalidJobError, JobNotFound, StoreError
from .records import JobRecord, LedgerEntry, ReconcileReport, RunRecord
from .schema import current_schema_revision, upgrade_schema
from .tables import JOBS, META, META_ROW_ID, NAME_LENGTH, RUNS

__all__ = ["JobStore"]

log = logging.getLogger(__name__)

#: How long a claimed run may stay unconfirmed before another scheduler may take it over: far
#: longer than a publish takes, short enough that a run claimed by a beat that died is sent soon.
CLAIM_TIMEOUT: Final = timedelta(seconds=30)

_T = TypeVar("_T")

#: Names per ``IN (...)`` list: well under SQLite's oldest bound-variable limit (999).
_IN_CHUNK: Final = 500
#: Fields of a definition whose change moves the job's anchor (its timing changed).
_TIMING_COLUMNS: Final = ("schedule_data", "timezone")
#: Other configured fields, updated in place when they change.
_CONFIG_COLUMNS: Final = ("task", "kind", "args", "kwargs", "options", "tags", "source", "max_runs")
#: The oldest SQLite with ``RETURNING``, which the ledger needs to know which runs were new.
_SQLITE_MIN_VERSION: Final = (3, 35, 0)


@dataclass(frozen=True, slots=True)
class _WantedJob:
    """A definition reduced to the column values it should have in the store."""

    definition: JobDefinition
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def enabled(self) -> bool:
        return self.definition.enabled


class JobStore:
    """Persistent jobs, operator state and run ledger in a SQLAlchemy database.

    Thread-safe: every call uses its own connection and transaction. Nothing connects until the
    first call; :meth:`migrate` must have run once on the database (it is idempotent and cheap, so
    running it at every start is fine).

    ``sqlite_busy_timeout`` is how long (seconds) one SQLite statement waits for another process's
    write lock; ``retries`` and ``retry_backoff`` (seconds, doubled per retry) govern retries of
    transient errors.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        sqlite_busy_timeout: float = 5.0,
        retries: int = 3,
        retry_backoff: float = 0.1,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self._target = parse_url(url)
        self._echo = echo
        self._sqlite_busy_timeout = sqlite_busy_timeout
        self._retries = retries
        self._retry_backoff = retry_backoff
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        # An in-memory SQLite database is one shared connection: one transaction at a time.
        self._memory_lock: threading.RLock | None = threading.RLock() if self._target.is_sqlite_memory else None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def safe_url(self) -> str:
        """The database URL with its password masked."""
        return self._target.shown

    @staticmethod
    def mask_url(url: str | URL) -> str:
        """``url`` with its password masked, for logs and banners (no parsing errors raised)."""
        return mask_url(url)

    def __repr__(self) -> str:
        return f"JobStore({self.safe_url!r})"

    def migrate(self) -> None:
        """Create the schema, or upgrade it to this version's; a no-op when it is current."""

        def work(connection: Connection) -> tuple[None, bool]:
            upgrade_schema(connection, shown_url=self.safe_url)
            return None, True

        self._run("migrate", work, write=True)

    def schema_revision(self) -> str | None:
        """The store's schema revision in the database (``None`` before the first :meth:`migrate`)."""
        return self._read("read the schema revision", current_schema_revision)

    def close(self) -> None:
        """Close every pooled connection. Idempotent; the store reconnects if used again."""
        with self._engine_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    # -- configuration ---------------------------------------------------------------------------

    def reconcile(
        self,
        definitions: Sequence[JobDefinition],
        *,
        now: datetime,
        kind_of: Callable[[JobDefinition], str],
        max_runs_of: Callable[[JobDefinition], int | None],
        expired_of: Callable[[JobDefinition, datetime], bool] | None = None,
    ) -> ReconcileReport:
        """Make the stored jobs match ``definitions``, in one transaction.

        * New jobs are inserted with ``anchor = now``.
        * A job whose schedule or time zone changed gets ``anchor = now`` and ``next_run_at = None``
          (to be recomputed) but keeps ``last_run_at`` and its run count.
        * Other changed fields are updated in place; ``enabled`` only when the configured value
          changed since the last reconcile (so an operator's ``set_enabled`` survives).
        * Jobs missing from ``definitions`` are marked removed (kept, never sent); a removed job
          that is configured again is restored.
        * ``paused`` is never touched: it is operator state.

        ``kind_of`` and ``max_runs_of`` derive the ``kind`` and ``max_runs`` columns;
        ``expired_of(definition, now)``, if given, tells whether a one-off's time had already
        passed when it was registered (evaluated for new and retimed jobs only). They are passed in
        so that the store does not depend on the timing layer.

        Raises :class:`InvalidJobError` (before writing anything) for duplicate names, names or
        tasks that are too long, and arguments that are not JSON.
        """
        now = require_aware(now, "reconcile(now=...)")
        wanted = _prepare_definitions(definitions, kind_of, max_runs_of)

        def expired(want: _WantedJob) -> bool:
            return bool(expired_of(want.definition, now)) if expired_of is not None else False

        def work(connection: Connection) -> tuple[ReconcileReport, bool]:
            revision = _bump_revision(connection, self.safe_url)
            stored = {row.name: row for row in connection.execute(select(JOBS))}
            added: list[str] = []
            restored: list[str] = []
            retimed: list[str] = []
            changed: list[str] = []
            unchanged: list[str] = []
            removed: list[str] = []
            already_removed: list[str] = []
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []

            for want in wanted:
                row = stored.get(want.name)
                if row is None:
                    inserts.append(_new_job_values(want, now, revision, expired=expired(want)))
                    added.append(want.name)
                    continue
                timing_changed = any(getattr(row, column) != want.config[column] for column in _TIMING_COLUMNS)
                config_changed = row.configured_enabled != want.enabled or any(
                    getattr(row, column) != want.config[column] for column in _CONFIG_COLUMNS
                )
                if not (timing_changed or config_changed or row.removed):
                    unchanged.append(want.name)
                    continue
                updates.append(
                    _updated_job_values(
                        row,
                        want,
                        now,
                        revision,
                        retime=timing_changed,
                        expired=expired(want) if timing_changed else row.expired,
                    )
                )
                if row.removed:
                    restored.append(want.name)
                elif timing_changed:
                    retimed.append(want.name)
                else:
                    changed.append(want.name)

            wanted_names = {want.name for want in wanted}
            for name, row in stored.items():
                if name in wanted_names:
                    continue
                if row.removed:
                    already_removed.append(name)
                    continue
                removed.append(name)
                updates.append(
                    {"name": name, "removed": True, "next_run_at": None, "revision": revision, "updated_at": now}
                )

            if inserts:
                connection.execute(insert(JOBS), inserts)
            _update_many(connection, updates)
            wrote = bool(inserts or updates)
            # Every job as it now stands, from what was read and written: the scheduler starts
            # from these instead of reading 100,000 rows back.
            current: dict[str, dict[str, Any]] = {name: dict(row._mapping) for name, row in stored.items()}
            for values in updates:
                current[values["name"]].update(values)
            for values in inserts:
                current[values["name"]] = {"resumed_at": None, **values}
            jobs = tuple(_record(SimpleNamespace(**current[name])) for name in sorted(current))  # type: ignore[arg-type]
            report = ReconcileReport(
                added=tuple(sorted(added)),
                restored=tuple(sorted(restored)),
                retimed=tuple(sorted(retimed)),
                changed=tuple(sorted(changed)),
                unchanged=tuple(sorted(unchanged)),
                removed=tuple(sorted(removed)),
                already_removed=tuple(sorted(already_removed)),
                revision=revision if wrote else None,
                jobs=jobs,
            )
            return report, wrote

        report = self._run("reconcile the configured jobs", work, write=True)
        log.info(
            "reconciled %d configured jobs with %s: %d added, %d restored, %d retimed, %d changed, %d removed",
            len(wanted),
            self.safe_url,
            len(report.added),
            len(report.restored),
            len(report.retimed),
            len(report.changed),
            len(report.removed),
        )
        return report

    # -- reading ---------------------------------------------------------------------------------

    def all_jobs(self, *, include_removed: bool = True) -> list[JobRecord]:
        """Every stored job, by name."""
        query = select(JOBS).order_by(JOBS.c.name)
        if not include_removed:
            query = query.where(JOBS.c.removed.is_(False))
        return self._read("list the jobs", lambda connection: [_record(row) for row in connection.execute(query)])

    def get_job(self, name: str) -> JobRecord | None:
        """The job called ``name``, or ``None``."""
        query = select(JOBS).where(JOBS.c.name == name)

        def work(connection: Connection) -> JobRecord | None:
            row = connection.execute(query).first()
            return None if row is None else _record(row)

        return self._read(f"read job {name!r}", work)

    def current_revision(self) -> int:
        """The global change counter: it grows whenever anything in ``orchestra_jobs`` is written."""
        return self._read("read the change counter", lambda connection: _read_revision(connection, self.safe_url))

    def changes_since(self, revision: int) -> tuple[int, list[JobRecord]]:
        """Jobs written after ``revision``, and the revision to pass next time.

        Reads only the rows with ``revision > given`` (an indexed range). Removed jobs are included
        (with ``removed=True``) so that a reader can drop them. The counter is read *before* the
        rows, so a write committing in between is seen now or next time, never lost; a row may be
        returned twice, never missed.
        """

        def work(connection: Connection) -> tuple[int, list[JobRecord]]:
            counter = _read_revision(connection, self.safe_url)
            rows = connection.execute(select(JOBS).where(JOBS.c.revision > revision).order_by(JOBS.c.revision))
            records = [_record(row) for row in rows]
            newest = max([counter, *(record.revision for record in records)])
            return newest, records

        return self._read("read changed jobs", work)

    def names_with_tags(self, tags: Iterable[str], *, any_tag: bool = True) -> list[str]:
        """Names of the (not removed) jobs carrying any of ``tags`` (or all of them), sorted."""
        wanted = set(tags)
        if not wanted:
            return []
        query = select(JOBS.c.name, JOBS.c.tags).where(JOBS.c.removed.is_(False)).order_by(JOBS.c.name)

        def matches(job_tags: Iterable[str]) -> bool:
            present = wanted.intersection(job_tags)
            return bool(present) if any_tag else present == wanted

        return self._read(
            "find jobs by tag",
            lambda connection: [row.name for row in connection.execute(query) if matches(row.tags)],
        )

    def history(self, job_name: str, limit: int = 20) -> list[LedgerEntry]:
        """The newest ``limit`` recorded runs of ``job_name``, newest fire time first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        query = (
            select(RUNS.c.job_name, RUNS.c.fire_time, RUNS.c.sent_at, RUNS.c.task_id, RUNS.c.published)
            .where(RUNS.c.job_name == job_name)
            .order_by(RUNS.c.fire_time.desc())
            .limit(limit)
        )

        def work(connection: Connection) -> list[LedgerEntry]:
            if not _existing(connection, [job_name], ()):
                raise JobNotFound([job_name])
            return [
                LedgerEntry(row.job_name, row.fire_time, row.sent_at, row.task_id, row.published)
                for row in connection.execute(query)
            ]

        return self._read(f"read the run history of {job_name!r}", work)

    # -- dispatch bookkeeping --------------------------------------------------------------------

    def record_runs(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        """Record dispatched runs in the ledger; return those that were not recorded before.

        For each *new* (job, fire time) the job's ``total_run_count`` grows by one, and
        ``last_run_at`` (the scheduled fire time) and ``next_run_at`` move forward if this is the
        job's newest run. A fire time already in the ledger (another process recorded it, or this
        one before a restart) is skipped and not counted: call this *before* publishing, and
        publish only what it returns. Runs of jobs not in the store are skipped with a warning.

        One transaction and a handful of statements for any batch size; a failure records nothing.
        """
        batch = _run_batch(runs)
        if not batch:
            return []
        insert_statement = _claim_statement(self._target.backend)

        def work(connection: Connection) -> tuple[list[RunRecord], bool]:
            revision = _bump_revision(connection, self.safe_url)
            rows = _ledger_rows(connection, batch, self.safe_url)
            if not rows:
                return [], False
            inserted = {(row.job_name, row.fire_time) for row in connection.execute(insert_statement, rows)}
            if not inserted:
                return [], False
            newest: dict[str, tuple[datetime, RunRecord]] = {}
            counts: dict[str, int] = {}
            for name, fire_time in inserted:
                counts[name] = counts.get(name, 0) + 1
                if name not in newest or newest[name][0] < fire_time:
                    newest[name] = (fire_time, batch[(name, fire_time)])
            now = datetime.now(UTC)
            connection.execute(
                _RECORD_RUNS_UPDATE,
                [
                    {
                        "b_name": name,
                        "b_count": counts[name],
                        "b_last": fire_time,
                        "b_next": run.next_run_at,
                        "b_revision": revision,
                        "b_now": now,
                    }
                    for name, (fire_time, run) in newest.items()
                ],
            )
            return [run for key, run in batch.items() if key in inserted], True

        return self._run(f"record {len(batch)} runs", work, write=True)

    def claim_runs(
        self, runs: Sequence[RunRecord], *, abandoned_after: timedelta | None = CLAIM_TIMEOUT
    ) -> list[RunRecord]:
        """Claim runs in the ledger before publishing them; return the runs this caller now owns.

        A run is owned when its (job, fire time) was not in the ledger, or when it was claimed but
        never confirmed as published for longer than ``abandoned_after`` (its claimer died between
        claiming and publishing): such a claim is taken over with this run's ``sent_at`` and task
        id; ``abandoned_after=None`` never takes a claim over (at most once, for one-offs).
        Publish what this returns, :meth:`release_runs` the failures, then confirm the rest with
        :meth:`save_progress`. Jobs' rows are not written here. Runs of jobs not in the store are
        skipped with a warning.
        """
        batch = _run_batch(runs)
        if not batch:
            return []
        insert_statement = _claim_statement(self._target.backend)
        take_over = (
            update(RUNS)
            .where(
                and_(
                    RUNS.c.job_name == bindparam("b_job_name"),
                    RUNS.c.fire_time == bindparam("b_fire_time", type_=RUNS.c.fire_time.type),
                    RUNS.c.published.is_(False),
                    RUNS.c.sent_at < bindparam("b_abandoned_before", type_=RUNS.c.sent_at.type),
                )
            )
            .values(sent_at=bindparam("b_sent_at", type_=RUNS.c.sent_at.type), task_id=bindparam("b_task_id"))
        )

        def work(connection: Connection) -> tuple[list[RunRecord], bool]:
            _lock_writers(connection)
            rows = _ledger_rows(connection, batch, self.safe_url, published=False)
            if not rows:
                return [], False
            owned = {(row.job_name, row.fire_time) for row in connection.execute(insert_statement, rows)}
            stored_jobs = {row["job_name"] for row in rows} if abandoned_after is not None else set()
            for key, run in batch.items():
                if key in owned or key[0] not in stored_jobs or abandoned_after is None:
                    continue
                taken = connection.execute(
                    take_over,
                    {
                        "b_job_name": key[0],
                        "b_fire_time": key[1],
                        "b_abandoned_before": run.sent_at - abandoned_after,
                        "b_sent_at": run.sent_at,
                        "b_task_id": run.task_id,
                    },
                ).rowcount
                if taken:
                    log.warning(
                        "taking over the run of %s for %s: it was claimed but never confirmed as sent",
                        key[0],
                        key[1].isoformat(),
                    )
                    owned.add(key)
            return [run for key, run in batch.items() if key in owned], bool(owned)

        return self._run(f"claim {len(batch)} runs", work, write=True)

    def unconfirmed_runs(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        """Those of ``runs`` whose fire time is claimed in the ledger but not confirmed as published.

        For a scheduler that could not claim a run: if another claimer is still publishing it (or
        died doing so), the run is not "already sent" yet and must be looked at again later.
        """
        batch = _run_batch(runs)
        if not batch:
            return []
        names = sorted({name for name, _ in batch})

        def work(connection: Connection) -> list[RunRecord]:
            pending: set[tuple[str, datetime]] = set()
            for chunk in _chunks(names):
                query = select(RUNS.c.job_name, RUNS.c.fire_time).where(
                    and_(RUNS.c.job_name.in_(chunk), RUNS.c.published.is_(False))
                )
                pending.update((row.job_name, row.fire_time) for row in connection.execute(query))
            return [run for key, run in batch.items() if key in pending]

        return self._read(f"read {len(batch)} unconfirmed runs", work)

    def release_runs(self, runs: Sequence[RunRecord]) -> None:
        """Delete the ledger rows of claimed runs that were not sent, so that they can be sent later.

        Only rows with the same job, fire time *and* task id are deleted. Pairs with
        :meth:`claim_runs`; runs recorded with :meth:`record_runs` were already counted.
        """
        batch = _run_batch(runs)
        if not batch:
            return
        statement = delete(RUNS).where(
            and_(
                RUNS.c.job_name == bindparam("b_job_name"),
                RUNS.c.fire_time == bindparam("b_fire_time", type_=RUNS.c.fire_time.type),
                RUNS.c.task_id == bindparam("b_task_id"),
            )
        )
        parameters = [
            {"b_job_name": name, "b_fire_time": fire_time, "b_task_id": run.task_id}
            for (name, fire_time), run in sorted(batch.items(), key=lambda item: item[0])
        ]

        def work(connection: Connection) -> tuple[None, bool]:
            _lock_writers(connection)
            connection.execute(statement, parameters)
            return None, True

        self._run(f"release {len(batch)} claimed runs", work, write=True)

    def save_progress(
        self,
        progress: Mapping[str, tuple[datetime | None, int, datetime | None]],
        *,
        published: Sequence[RunRecord] = (),
    ) -> list[str]:
        """Store ``name -> (last_run_at, runs_added, next_run_at)``; return the names that changed.

        ``published`` are the claimed runs that were sent: their ledger rows are confirmed (and
        stamped with their ``sent_at``) in the same transaction.

        The bookkeeping step after :meth:`claim_runs` and publishing. ``runs_added`` is *added* to
        the stored count and ``last_run_at`` never moves backwards, inside the transaction: two
        beats that each sent some runs of one job end with the exact total, not whichever wrote
        last. A run in ``published`` that someone else already confirmed is taken off
        ``runs_added``: a run is counted by whoever confirms it first, and only once. Raises
        :class:`JobNotFound`, changing nothing, when a name is unknown.
        """
        wanted: dict[str, tuple[datetime | None, int, datetime | None]] = {}
        for name, (last_run_at, runs_added, next_run_at) in progress.items():
            if runs_added < 0:
                raise ValueError(f"runs added to job {name!r} must be >= 0, got {runs_added}")
            wanted[name] = (
                None if last_run_at is None else require_aware(last_run_at, f"last run of job {name!r}"),
                runs_added,
                None if next_run_at is None else require_aware(next_run_at, f"next run of job {name!r}"),
            )
        confirmed = _run_batch(published)
        if not wanted and not confirmed:
            return []
        columns = (JOBS.c.last_run_at, JOBS.c.total_run_count, JOBS.c.next_run_at)
        confirm = (
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

        def work(connection: Connection) -> tuple[list[str], bool]:
            revision = _bump_revision(connection, self.safe_url)
            current = _existing(connection, wanted, columns)
            _require_known(wanted, current)
            if confirmed:
                already = _confirmed_runs(connection, confirmed)
                for name, _fire in already:
                    if name in wanted:
                        last, runs_added, next_run = wanted[name]
                        wanted[name] = (last, max(runs_added - 1, 0), next_run)
                connection.execute(
                    confirm,
                    [
                        {"b_job_name": name, "b_fire_time": fire, "b_task_id": run.task_id, "b_sent_at": run.sent_at}
                        for (name, fire), run in confirmed.items()
                    ],
                )
            rows = []
            for name, (last_run_at, runs_added, next_run_at) in wanted.items():
                stored_last, stored_count, stored_next = current[name]
                if stored_last is not None and (last_run_at is None or stored_last > last_run_at):
                    last_run_at = stored_last
                values = (last_run_at, stored_count + runs_added, next_run_at)
                if values != (stored_last, stored_count, stored_next):
                    rows.append((name, values))
            if not rows:
                return [], bool(confirmed)
            now = datetime.now(UTC)
            _update_many(
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
                    for name, (last_run_at, total, next_run_at) in rows
                ],
            )
            return [name for name, _ in rows], True

        return self._run(f"save the progress of {len(wanted)} jobs", work, write=True)

    def set_next_run(self, updates: Mapping[str, datetime | None]) -> list[str]:
        """Store the next fire time of each named job; return the names whose value changed.

        Rows whose stored value is already right are not written (a restart that recomputes the
        same times causes no change notifications). Raises :class:`JobNotFound`, changing
        nothing, when a name is unknown.
        """
        wanted = {
            name: None if when is None else require_aware(when, f"next run of job {name!r}")
            for name, when in updates.items()
        }
        if not wanted:
            return []

        def work(connection: Connection) -> tuple[list[str], bool]:
            revision = _bump_revision(connection, self.safe_url)
            current = _existing(connection, wanted, (JOBS.c.next_run_at,))
            _require_known(wanted, current)
            changed = [name for name, when in wanted.items() if current[name][0] != when]
            if not changed:
                return [], False
            now = datetime.now(UTC)
            connection.execute(
                _update_by_name(("next_run_at", "revision", "updated_at")),
                [
                    {"b_name": name, "b_next_run_at": wanted[name], "b_revision": revision, "b_updated_at": now}
                    for name in changed
                ],
            )
            return changed, True

        return self._run(f"store the next run of {len(wanted)} jobs", work, write=True)

    def prune_runs(self, before: datetime) -> int:
        """Delete ledger rows whose fire time is older than ``before``; return how many.

        Keep at least as much history as any beat could still try to send (its catch-up window):
        the ledger is what stops a fire time from being sent twice.
        """
        before = require_aware(before, "prune_runs(before=...)")
        statement = delete(RUNS).where(RUNS.c.fire_time < before)

        def work(connection: Connection) -> tuple[int, bool]:
            deleted = connection.execute(statement).rowcount
            return deleted, deleted > 0

        return self._run("prune the run ledger", work, write=True)

    # -- operator state --------------------------------------------------------------------------

    def set_paused(self, names: Sequence[str], paused: bool, *, now: datetime | None = None) -> list[str]:
        """Pause or resume jobs; return the names whose state changed (already so: not listed).

        Resuming stamps ``resumed_at`` (``now``, default: the current time) so that no scheduler
        replays the fire times missed while the job was paused, even one that was not running
        when the resume happened. Raises :class:`JobNotFound`, changing nothing, if any name is
        unknown.
        """
        return self._set_flag("paused", names, paused, "pause" if paused else "resume", resumed=not paused, now=now)

    def set_enabled(self, names: Sequence[str], enabled: bool, *, now: datetime | None = None) -> list[str]:
        """Enable or disable jobs; return the names whose state changed (already so: not listed).

        Survives restarts: reconciling overrides it only when the configured ``enabled`` changes.
        Enabling stamps ``resumed_at`` like a resume. Raises :class:`JobNotFound`, changing
        nothing, if any name is unknown.
        """
        return self._set_flag("enabled", names, enabled, "enable" if enabled else "disable", resumed=enabled, now=now)

    def set_expired(self, names: Sequence[str], expired: bool = True) -> list[str]:
        """Mark one-offs whose time had already passed when they were registered (never sent).

        Reconciling clears the flag when the job's timing changes. Returns the names whose state
        changed; raises :class:`JobNotFound`, changing nothing, if any name is unknown.
        """
        return self._set_flag("expired", names, expired, "mark expired" if expired else "clear expired on")

    def touch(self, names: Sequence[str]) -> int:
        """Mark jobs as changed, so running schedulers reload them; return the new revision.

        For tools that edit ``orchestra_jobs`` without going through the store (call it after the
        edit has committed). Raises :class:`JobNotFound`, changing nothing, if a name is unknown.
        """
        unique = list(dict.fromkeys(names))

        def work(connection: Connection) -> tuple[int, bool]:
            revision = _bump_revision(connection, self.safe_url)
            _require_known(unique, _existing(connection, unique, ()))
            if unique:
                _stamp(connection, unique, revision, {})
            return revision, True

        return self._run(f"touch {len(unique)} jobs", work, write=True)

    def _set_flag(
        self,
        column: str,
        names: Sequence[str],
        value: bool,
        verb: str,
        *,
        resumed: bool = False,
        now: datetime | None = None,
    ) -> list[str]:
        unique = list(dict.fromkeys(names))
        if not unique:
            return []
        values: dict[str, Any] = {column: value}
        if resumed:
            values["resumed_at"] = require_aware(now, "now") if now is not None else datetime.now(UTC)

        def work(connection: Connection) -> tuple[list[str], bool]:
            revision = _bump_revision(connection, self.safe_url)
            current = _existing(connection, unique, (JOBS.c[column],))
            _require_known(unique, current)
            changed = [name for name in unique if current[name][0] != value]
            if not changed:
                return [], False
            _stamp(connection, changed, revision, values)
            return changed, True

        changed = self._run(f"{verb} {len(unique)} jobs", work, write=True)
        if changed:
            log.info("%s in %s: %s", verb, self.safe_url, ", ".join(changed))
        return changed

    # -- plumbing --------------------------------------------------------------------------------

    def _get_engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                if self._target.is_sqlite and sqlite3.sqlite_version_info < _SQLITE_MIN_VERSION:
                    raise StoreError(
                        f"SQLite {sqlite3.sqlite_version} is too old for {self.safe_url!r}: celery-orchestra "
                        f"needs {'.'.join(map(str, _SQLITE_MIN_VERSION))} or newer (for RETURNING)",
                        self.safe_url,
                    )
                self._engine = build_engine(
                    self._target, echo=self._echo, sqlite_busy_timeout=self._sqlite_busy_timeout
                )
            return self._engine

    def _exclusive(self) -> contextlib.AbstractContextManager[Any]:
        return self._memory_lock if self._memory_lock is not None else contextlib.nullcontext()

    def _read(self, operation: str, work: Callable[[Connection], _T]) -> _T:
        return self._run(operation, lambda connection: (work(connection), False), write=False)

    def _run(self, operation: str, work: Callable[[Connection], tuple[_T, bool]], *, write: bool) -> _T:
        """Run ``work`` in one transaction, retrying transient errors.

        ``work`` returns ``(result, commit)``: a write that turns out to change nothing returns
        ``commit=False`` and is rolled back, so the change counter only moves for real changes.
        """
        attempts = self._retries + 1
        attempt = 1
        while True:
            try:
                return self._attempt(work, write=write)
            except DBAPIError as exc:
                reason = describe_driver_error(exc)
                if is_missing_schema(exc):
                    raise StoreError(
                        f"cannot {operation}: {self.safe_url!r} has no celery-orchestra tables ({reason}); "
                        "create them with JobStore.migrate()",
                        self.safe_url,
                    ) from exc
                if not is_transient(exc, self._target.backend):
                    raise StoreError(f"cannot {operation} in {self.safe_url!r}: {reason}", self.safe_url) from exc
                if attempt >= attempts:
                    raise StoreError(
                        f"cannot {operation} in {self.safe_url!r}: {reason} (gave up after {attempts} attempts)",
                        self.safe_url,
                    ) from exc
                delay = self._retry_backoff * 2 ** (attempt - 1)
                log.warning(
                    "%s in %s failed (attempt %d of %d): %s; retrying in %.2f s",
                    operation,
                    self.safe_url,
                    attempt,
                    attempts,
                    reason,
                    delay,
                )
                time.sleep(delay)
                attempt += 1

    def _attempt(self, work: Callable[[Connection], tuple[_T, bool]], *, write: bool) -> _T:
        engine = self._get_engine()
        with self._exclusive(), engine.connect() as connection:
            if write:
                connection.execution_options(**{WRITE_OPTION: True})
            transaction = connection.begin()
            try:
                result, commit = work(connection)
            except BaseException:
                transaction.rollback()
                raise
            if commit:
                transaction.commit()
            else:
                transaction.rollback()
            return result


# -- helpers (module level so that the class reads as the API) ---------------------------------


def _dialect_insert(backend: str, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the backend (SQLite and PostgreSQL spell it alike)."""
    if backend == "postgresql":
        return postgresql_dialect.insert(table)
    return sqlite_dialect.insert(table)


def _claim_statement(backend: str) -> Any:
    """Insert ledger rows, skipping (job, fire time) pairs already present, returning the new ones."""
    return (
        _dialect_insert(backend, RUNS)
        .on_conflict_do_nothing(index_elements=[RUNS.c.job_name, RUNS.c.fire_time])
        .returning(RUNS.c.job_name, RUNS.c.fire_time)
    )


def _run_batch(runs: Iterable[RunRecord]) -> dict[tuple[str, datetime], RunRecord]:
    """Check a batch of runs and key it by (job, UTC fire time), first occurrence wins, in key order.

    Key order is the order rows are inserted and locked in: two processes writing overlapping
    batches then wait for each other instead of deadlocking.
    """
    batch: dict[tuple[str, datetime], RunRecord] = {}
    for run in runs:
        fire_time = require_aware(run.fire_time, f"fire_time of run of job {run.job_name!r}")
        require_aware(run.sent_at, f"sent_at of run of job {run.job_name!r}")
        if run.next_run_at is not None:
            require_aware(run.next_run_at, f"next_run_at of run of job {run.job_name!r}")
        if len(run.task_id) > NAME_LENGTH:
            raise ValueError(f"task id of run of job {run.job_name!r} is longer than {NAME_LENGTH} characters")
        batch.setdefault((run.job_name, fire_time), run)
    return dict(sorted(batch.items(), key=lambda item: item[0]))


def _confirmed_runs(
    connection: Connection, batch: Mapping[tuple[str, datetime], RunRecord]
) -> set[tuple[str, datetime]]:
    """Those of ``batch`` whose ledger rows are already confirmed as published."""
    names = sorted({name for name, _ in batch})
    earliest = min(fire for _, fire in batch)
    found: set[tuple[str, datetime]] = set()
    for chunk in _chunks(names):
        query = select(RUNS.c.job_name, RUNS.c.fire_time).where(
            and_(RUNS.c.job_name.in_(chunk), RUNS.c.published.is_(True), RUNS.c.fire_time >= earliest)
        )
        found.update((row.job_name, row.fire_time) for row in connection.execute(query))
    return found & set(batch)


def _ledger_rows(
    connection: Connection,
    batch: Mapping[tuple[str, datetime], RunRecord],
    shown_url: str,
    *,
    published: bool = True,
) -> list[dict[str, Any]]:
    """Ledger rows for the runs of stored jobs; the others are logged and dropped."""
    names = {name for name, _ in batch}
    known = _existing(connection, names, ())
    unknown = sorted(names - set(known))
    if unknown:
        log.warning("not recording runs of jobs missing from %s: %s", shown_url, ", ".join(unknown))
    return [
        {
            "job_name": name,
            "fire_time": fire_time,
            "sent_at": run.sent_at,
            "task_id": run.task_id,
            "published": published,
        }
        for (name, fire_time), run in batch.items()
        if name in known
    ]


def _lock_writers(connection: Connection) -> None:
    """Take the counter row's lock without bumping it: the store's writers queue in one order.

    (SQLite needs nothing here: ``BEGIN IMMEDIATE`` already admits one writer at a time.)
    """
    connection.execute(select(META.c.id).where(META.c.id == META_ROW_ID).with_for_update())


def _bump_revision(connection: Connection, shown_url: str) -> int:
    """Increment the change counter (taking its row lock first) and return the new value."""
    connection.execute(update(META).where(META.c.id == META_ROW_ID).values(revision=META.c.revision + 1))
    return _read_revision(connection, shown_url)


def _read_revision(connection: Connection, shown_url: str) -> int:
    revision = connection.execute(select(META.c.revision).where(META.c.id == META_ROW_ID)).scalar_one_or_none()
    if revision is None:
        raise StoreError(
            f"the change counter row is missing from orchestra_meta in {shown_url!r}; JobStore.migrate() recreates it",
            shown_url,
        )
    return int(revision)


def _chunks(names: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(names), _IN_CHUNK):
        yield names[start : start + _IN_CHUNK]


def _existing(connection: Connection, names: Iterable[str], columns: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
    """The given names that are stored, each with the values of ``columns``."""
    found: dict[str, tuple[Any, ...]] = {}
    for chunk in _chunks(list(names)):
        for row in connection.execute(select(JOBS.c.name, *columns).where(JOBS.c.name.in_(chunk))):
            found[row[0]] = tuple(row[1:])
    return found


def _require_known(names: Iterable[str], found: Mapping[str, object]) -> None:
    unknown = [name for name in names if name not in found]
    if unknown:
        raise JobNotFound(unknown)


def _stamp(connection: Connection, names: Sequence[str], revision: int, values: Mapping[str, Any]) -> None:
    """Set ``values`` on the named rows and stamp them with ``revision``."""
    now = datetime.now(UTC)
    for chunk in _chunks(names):
        connection.execute(
            update(JOBS).where(JOBS.c.name.in_(chunk)).values(**values, revision=revision, updated_at=now)
        )


def _update_by_name(columns: Sequence[str]) -> Any:
    """An ``UPDATE orchestra_jobs ... WHERE name = :b_name`` for executemany, one ``:b_<column>`` per column."""
    assignments = {
        column: bindparam(f"b_{column}", type_=JOBS.c[column].type) for column in columns if column != "name"
    }
    return update(JOBS).where(JOBS.c.name == bindparam("b_name")).values(assignments)


def _update_many(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Update rows by name, one executemany per distinct set of columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for values in rows:
        by_columns.setdefault(tuple(values), []).append({f"b_{column}": value for column, value in values.items()})
    for columns, parameters in by_columns.items():
        connection.execute(_update_by_name(columns), parameters)


_advances_last_run = (JOBS.c.last_run_at.is_(None)) | (
    JOBS.c.last_run_at < bindparam("b_last", type_=JOBS.c.last_run_at.type)
)
#: After new ledger rows: count them, and move last/next run forward only if they are the newest.
_RECORD_RUNS_UPDATE: Final = (
    update(JOBS)
    .where(JOBS.c.name == bindparam("b_name"))
    .values(
        total_run_count=JOBS.c.total_run_count + bindparam("b_count", type_=JOBS.c.total_run_count.type),
        last_run_at=case(
            (_advances_last_run, bindparam("b_last", type_=JOBS.c.last_run_at.type)), else_=JOBS.c.last_run_at
        ),
        next_run_at=case(
            (_advances_last_run, bindparam("b_next", type_=JOBS.c.next_run_at.type)), else_=JOBS.c.next_run_at
        ),
        revision=bindparam("b_revision", type_=JOBS.c.revision.type),
        updated_at=bindparam("b_now", type_=JOBS.c.updated_at.type),
    )
)


def _new_job_values(want: _WantedJob, now: datetime, revision: int, *, expired: bool) -> dict[str, Any]:
    return {
        "name": want.name,
        **want.config,
        "enabled": want.enabled,
        "configured_enabled": want.enabled,
        "paused": False,
        "anchor": now,
        "last_run_at": None,
        "total_run_count": 0,
        "next_run_at": None,
        "removed": False,
        "expired": expired,
        "revision": revision,
        "created_at": now,
        "updated_at": now,
    }


def _updated_job_values(
    row: Row[Any], want: _WantedJob, now: datetime, revision: int, *, retime: bool, expired: bool
) -> dict[str, Any]:
    """The columns reconcile writes for a changed job: never ``paused`` or the run bookkeeping."""
    return {
        "name": want.name,
        **want.config,
        # Follow the configuration only when *it* changed: otherwise keep the operator's choice.
        "enabled": want.enabled if row.configured_enabled != want.enabled else row.enabled,
        "configured_enabled": want.enabled,
        "removed": False,
        "anchor": now if retime else row.anchor,
        "next_run_at": None if retime else row.next_run_at,
        "expired": expired,
        "revision": revision,
        "updated_at": now,
    }


def _record(row: Row[Any]) -> JobRecord:
    return JobRecord(
        name=row.name,
        task=row.task,
        schedule_data=row.schedule_data,
        kind=row.kind,
        timezone=row.timezone,
        args=tuple(row.args),
        kwargs=row.kwargs,
        options=row.options,
        tags=tuple(row.tags),
        enabled=row.enabled,
        configured_enabled=row.configured_enabled,
        paused=row.paused,
        resumed_at=row.resumed_at,
        anchor=row.anchor,
        last_run_at=row.last_run_at,
        total_run_count=row.total_run_count,
        max_runs=row.max_runs,
        next_run_at=row.next_run_at,
        source=row.source,
        removed=row.removed,
        expired=row.expired,
        revision=int(row.revision),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class _NotPlainJSON(Exception):
    """A value the fast path does not handle; the JSON round trip decides."""


def _plain_json(value: object) -> Any:
    """``value`` as JSON would read it back, for plain values only (no encode/decode: start-up speed)."""
    if not value and isinstance(value, list | tuple | dict):
        return [] if not isinstance(value, dict) else {}
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlainJSON
        return value
    if isinstance(value, list | tuple):
        return [_plain_json(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain_json(item) for key, item in value.items()}
    raise _NotPlainJSON


def _json(value: object, what: str, definition: JobDefinition) -> Any:
    """``value`` as it will read back from a JSON column; a clear error if it is not JSON."""
    try:
        return _plain_json(value)
    except _NotPlainJSON:
        pass
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidJobError(
            f"job {definition.name!r} ({definition.source}): {what} cannot be stored as JSON: {exc}"
        ) from exc


def _prepare_definitions(
    definitions: Sequence[JobDefinition],
    kind_of: Callable[[JobDefinition], str],
    max_runs_of: Callable[[JobDefinition], int | None],
) -> list[_WantedJob]:
    """Check every definition and compute its column values, before any transaction starts."""
    seen: dict[str, JobDefinition] = {}
    wanted: list[_WantedJob] = []
    for definition in definitions:
        where = f"job {definition.name!r} ({definition.source})"
        earlier = seen.get(definition.name)
        if earlier is not None:
            raise InvalidJobError(
                f"duplicate job name {definition.name!r}: defined in {earlier.source} and again in {definition.source}"
            )
        seen[definition.name] = definition
        if not definition.name:
            raise InvalidJobError(f"a job defined in {definition.source} has an empty name")
        if len(definition.name) > NAME_LENGTH:
            raise InvalidJobError(f"{where}: the name is longer than {NAME_LENGTH} characters")
        if len(definition.task) > NAME_LENGTH:
            raise InvalidJobError(f"{where}: the task name is longer than {NAME_LENGTH} characters")
        tags = _json(list(definition.tags), "tags", definition)
        if not all(isinstance(tag, str) for tag in tags):
            raise InvalidJobError(f"{where}: tags must be strings, got {list(definition.tags)!r}")
        kind = kind_of(definition)
        config = {
            "task": definition.task,
            "schedule_data": _json(definition.schedule_data, "the schedule", definition),
            "timezone": definition.timezone,
            "kind": kind,
            "args": _json(list(definition.args), "args", definition),
            "kwargs": _json(definition.kwargs, "kwargs", definition),
            "options": _json(definition.options, "options", definition),
            "tags": tags,
            "source": definition.source,
            "max_runs": max_runs_of(definition),
        }
        wanted.append(_WantedJob(definition, config))
    return wanted
