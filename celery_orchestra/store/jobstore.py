"""The job store: configured jobs, operator state and the run ledger in one SQL database.

:class:`JobStore` is the store's one public face: its lifecycle and every operation, each a
single call into the module that owns it (:mod:`.reconcile`, :mod:`.queries`, :mod:`.ledger`,
:mod:`.progress`, :mod:`.operator`), all run in transactions by :class:`~.database.Database`.

Design points, each answering a failure seen in other Celery beat schedulers:

* **Lazy.** Constructing a :class:`JobStore` parses the URL and nothing else: Celery builds
  throw-away scheduler instances (``lazy=True``) that must not connect or create files.
* **One global change counter** (:mod:`.sql`): every write stamps its rows with a new revision,
  and readers fetch only rows newer than what they saw.
* **A ledger keyed by (job, scheduled fire time)** (:mod:`.ledger`): runs are claimed before they
  are published and confirmed after, so two beats cannot send or count one fire time twice.
* **Operator state is never overwritten by configuration** (:mod:`.operator`, :mod:`.reconcile`).
* **Transient errors are retried, others explained** (:mod:`.database`).

Editing jobs from outside the store (raw SQL, an admin tool) must bump the counter too, or running
schedulers will not notice. Either call :meth:`JobStore.touch` with the edited names, or run, in the
same transaction as the edit::

    UPDATE orchestra_meta SET revision = revision + 1 WHERE id = 1;
    UPDATE orchestra_jobs SET revision = (SELECT revision FROM orchestra_meta WHERE id = 1)
     WHERE name IN ('job-a', 'job-b');

Rows are never deleted by the store: a job gone from the configuration is marked ``removed``.
Deleting a row by hand also deletes its run history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import URL, Connection, Engine

from ..jobs.definitions import JobDefinition
from . import ledger, operator, progress, queries
from .database import Database
from .engine import mask_url
from .ledger import CLAIM_TIMEOUT
from .reconcile import FirstFire, reconcile
from .records import JobRecord, LedgerEntry, Progress, ReconcileReport, RunRecord
from .schema import current_schema_revision, upgrade_schema

__all__ = ["CLAIM_TIMEOUT", "JobStore"]


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
        self._db = Database(
            url, echo=echo, sqlite_busy_timeout=sqlite_busy_timeout, retries=retries, retry_backoff=retry_backoff
        )

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def safe_url(self) -> str:
        """The database URL with its password masked."""
        return self._db.safe_url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use), for tools that query the tables directly."""
        return self._db.engine()

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

        self._db.run("migrate", work, write=True)

    def schema_revision(self) -> str | None:
        """The store's schema revision in the database (``None`` before the first :meth:`migrate`)."""
        return self._db.read("read the schema revision", current_schema_revision)

    def close(self) -> None:
        """Close every pooled connection. Idempotent; the store reconnects if used again."""
        self._db.close()

    # -- configuration ---------------------------------------------------------------------------

    def reconcile(
        self, definitions: Sequence[JobDefinition], *, now: datetime, first_fire: FirstFire | None = None
    ) -> ReconcileReport:
        """Make the stored jobs match ``definitions``, in one transaction (see :mod:`.reconcile`).

        ``first_fire(definition, anchor)``, when given, fills the next fire time of new and retimed
        jobs as they are written.

        Raises :class:`~celery_orchestra.errors.InvalidJobError` (before writing anything) for
        duplicate names, names or tasks that are too long, unusable schedules and arguments that
        are not JSON.
        """
        return reconcile(self._db, definitions, now=now, first_fire=first_fire)

    # -- reading ---------------------------------------------------------------------------------

    def all_jobs(self, *, include_removed: bool = True) -> list[JobRecord]:
        """Every stored job, by name."""
        return queries.all_jobs(self._db, include_removed=include_removed)

    def get_job(self, name: str) -> JobRecord | None:
        """The job called ``name``, or ``None``."""
        return queries.get_job(self._db, name)

    def current_revision(self) -> int:
        """The global change counter: it grows whenever anything in ``orchestra_jobs`` is written."""
        return queries.current_revision(self._db)

    def changes_since(self, revision: int) -> tuple[int, list[JobRecord]]:
        """Jobs written after ``revision``, and the revision to pass next time (see :func:`.queries.changes_since`)."""
        return queries.changes_since(self._db, revision)

    def names_with_tags(self, tags: Iterable[str], *, any_tag: bool = True) -> list[str]:
        """Names of the (not removed) jobs carrying any of ``tags`` (or all of them), sorted."""
        return queries.names_with_tags(self._db, tags, any_tag=any_tag)

    def history(self, job_name: str, limit: int = 20) -> list[LedgerEntry]:
        """The newest ``limit`` recorded runs of ``job_name``, newest fire time first."""
        return ledger.history(self._db, job_name, limit)

    # -- the run ledger --------------------------------------------------------------------------

    def claim_runs(
        self, runs: Sequence[RunRecord], *, abandoned_after: timedelta | None = CLAIM_TIMEOUT
    ) -> list[RunRecord]:
        """Claim runs before publishing them; return the runs this caller now owns (see :func:`.ledger.claim_runs`).

        Publish what this returns, :meth:`release_runs` the failures, then confirm the rest with
        :meth:`save_progress`.
        """
        return ledger.claim_runs(self._db, runs, abandoned_after=abandoned_after)

    def unconfirmed_runs(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        """Those of ``runs`` claimed in the ledger but not confirmed as published."""
        return ledger.unconfirmed_runs(self._db, runs)

    def release_runs(self, runs: Sequence[RunRecord]) -> None:
        """Delete the claims of runs that were not sent (same job, fire time and task id), to send later."""
        ledger.release_runs(self._db, runs)

    def save_progress(
        self,
        progress_by_job: Mapping[str, Progress | tuple[datetime | None, int, datetime | None]],
        *,
        published: Sequence[RunRecord] = (),
    ) -> list[str]:
        """Confirm ``published`` runs and store each job's :class:`Progress`; return the names that changed.

        See :func:`.progress.save_progress`: counts add up across beats and a run is counted once.
        """
        return progress.save_progress(self._db, progress_by_job, published=published)

    def set_next_run(self, updates: Mapping[str, datetime | None]) -> list[str]:
        """Store the next fire time of each named job; return the names whose value changed."""
        return progress.set_next_run(self._db, updates)

    def prune_runs(self, before: datetime) -> int:
        """Delete ledger rows whose fire time is older than ``before``; return how many."""
        return ledger.prune_runs(self._db, before)

    # -- operator state --------------------------------------------------------------------------

    def set_paused(self, names: Sequence[str], paused: bool, *, now: datetime | None = None) -> list[str]:
        """Pause or resume jobs; return the names whose state changed (already so: not listed).

        Resuming stamps ``resumed_at`` (``now``, default: the current time) so that no scheduler
        replays the fire times missed while the job was paused, even one that was not running
        when the resume happened. Raises :class:`~celery_orchestra.errors.JobNotFound`, changing
        nothing, if any name is unknown.
        """
        verb = "pause" if paused else "resume"
        return operator.set_flag(self._db, "paused", names, paused, verb, resumed=not paused, now=now)

    def set_enabled(self, names: Sequence[str], enabled: bool, *, now: datetime | None = None) -> list[str]:
        """Enable or disable jobs; return the names whose state changed (already so: not listed).

        Survives restarts: reconciling overrides it only when the configured ``enabled`` changes.
        Enabling stamps ``resumed_at`` like a resume. Raises
        :class:`~celery_orchestra.errors.JobNotFound`, changing nothing, if any name is unknown.
        """
        verb = "enable" if enabled else "disable"
        return operator.set_flag(self._db, "enabled", names, enabled, verb, resumed=enabled, now=now)

    def set_expired(self, names: Sequence[str], expired: bool = True) -> list[str]:
        """Mark one-offs whose time had already passed when they were registered (never sent).

        Reconciling clears the flag when the job's timing changes. Returns the names whose state
        changed; raises :class:`~celery_orchestra.errors.JobNotFound`, changing nothing, if any
        name is unknown.
        """
        verb = "mark expired" if expired else "clear expired on"
        return operator.set_flag(self._db, "expired", names, expired, verb)

    def touch(self, names: Sequence[str]) -> int:
        """Mark jobs as changed, so running schedulers reload them; return the new revision.

        For tools that edit ``orchestra_jobs`` without going through the store (call it after the
        edit has committed). Raises :class:`~celery_orchestra.errors.JobNotFound`, changing
        nothing, if a name is unknown.
        """
        return operator.touch(self._db, names)
