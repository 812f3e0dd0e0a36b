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
* **One active beat per store, fenced** (:mod:`.lease`): a beat's instance carries the fence of
  the lease it acquired, and its ledger and progress writes are refused once another beat holds
  the lease; operator writes (pause, enable) and reading are never fenced.
* **Transient errors are retried, others explained** (:mod:`.database`).

Editing jobs from outside the store (raw SQL, an admin tool) must bump the counter too, or running
schedulers will not notice. Either call :meth:`JobStore.touch` with the edited names, or run, in the
same transaction as the edit::

    UPDATE orchestra_meta SET revision = revision + 1 WHERE id = 1;
    UPDATE orchestra_jobs SET revision = (SELECT revision FROM orchestra_meta WHERE id = 1)
     WHERE name IN ('job-a', 'job-b');

Rows are never deleted by the store: a job gone from the configuration, or removed at runtime, is
marked ``removed``.
Deleting a row by hand also deletes its run history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import URL, Connection, Engine

from ..errors import LeaseLostError
from ..jobs.definitions import JobDefinition
from . import lease, ledger, operator, progress, queries, run_requests, runtime
from .database import Database
from .lease import BeatIdentity, BeatInfo, Fence, LeaseGrant, LeaseInfo
from .progress import LateSettlement
from .reconcile import FirstFire, reconcile
from .records import JobRecord, LedgerEntry, Progress, ReconcileReport, RunRecord, UnconfirmedClaim
from .schema import check_schema_writable, current_schema_revision, upgrade_schema

__all__ = ["JobStore"]


class JobStore:
    """Persistent jobs, operator state and run ledger in a SQLAlchemy database.

    Thread-safe: every call uses its own connection and transaction. Nothing connects until the
    first call; :meth:`migrate` must have run once on the database (it is idempotent and cheap, so
    running it at every start is fine).

    ``sqlite_busy_timeout`` is how long (seconds) one SQLite statement waits for another process's
    write lock; ``retries`` and ``retry_backoff`` (seconds, doubled per retry) govern retries of
    transient errors. ``transaction_limit`` (seconds, PostgreSQL) ends this client's session when
    it sits idle inside a write transaction that long, releasing its locks: a beat sets it below
    its lease TTL so that, stalled mid-write, it cannot hold up the standby that takes over.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        sqlite_busy_timeout: float = 5.0,
        retries: int = 3,
        retry_backoff: float = 0.1,
        transaction_limit: float | None = None,
    ) -> None:
        self._db = Database(
            url,
            echo=echo,
            sqlite_busy_timeout=sqlite_busy_timeout,
            retries=retries,
            retry_backoff=retry_backoff,
            transaction_limit=transaction_limit,
            # Every writer (beat, the CLI, the API, a remote-control node) refuses a newer schema.
            first_write_check=check_schema_writable,
        )
        #: The lease this instance's beat acquired last: its ledger and progress writes check it.
        self._fence: Fence | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def safe_url(self) -> str:
        """The database URL with its password masked."""
        return self._db.safe_url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use), for tools that query the tables directly."""
        return self._db.engine()

    def __repr__(self) -> str:
        return f"JobStore({self.safe_url!r})"

    def check_integrity(self) -> None:
        """Refuse a damaged SQLite file with one line naming it and how to restore it (``PRAGMA
        quick_check``, about 0.2 s for 100,000 jobs); a no-op on PostgreSQL.

        Beat runs it at start-up: a damaged file would otherwise fail at every tick.
        """
        self._db.check_integrity()

    def migrate(self) -> None:
        """Create the schema, or upgrade it to this version's; a no-op when it is current."""

        def work(connection: Connection) -> tuple[None, bool]:
            upgrade_schema(connection, shown_url=self.safe_url)
            return None, True

        self._db.run("migrate", work, write=True)

    def schema_revision(self) -> str | None:
        """The store's schema revision in the database (``None`` before the first :meth:`migrate`)."""
        shown_url = self.safe_url
        return self._db.read(
            "read the schema revision", lambda connection: current_schema_revision(connection, shown_url=shown_url)
        )

    def close(self) -> None:
        """Close every pooled connection. Idempotent; the store reconnects if used again."""
        self._db.close()

    # -- configuration ---------------------------------------------------------------------------

    def reconcile(
        self,
        definitions: Sequence[JobDefinition],
        *,
        now: datetime,
        first_fire: FirstFire | None = None,
        partial: bool = False,
    ) -> ReconcileReport:
        """Make the stored jobs match ``definitions``, in one transaction (see :mod:`.reconcile`).

        ``first_fire(definition, anchor)``, when given, fills the next fire time of new and retimed
        jobs as they are written. ``partial`` writes the listed jobs only, removing none.

        Raises :class:`~celery_orchestra.errors.InvalidJobError` (before writing anything) for
        duplicate names, names or tasks that are too long, unusable schedules and arguments that
        are not JSON.
        """
        return reconcile(self._db, definitions, now=now, first_fire=first_fire, partial=partial)

    # -- jobs owned at runtime (see :mod:`.runtime`) ---------------------------------------------

    def add_jobs(self, definitions: Sequence[JobDefinition], *, now: datetime) -> list[JobRecord]:
        """Add runtime-owned jobs in one transaction (all or none); their records, in order.

        Raises :class:`~celery_orchestra.errors.InvalidJobError` for a definition the store
        cannot keep or a name a job that is not removed holds (naming its owner).
        """
        return runtime.add_runtime_jobs(self._db, definitions, now=now)

    def update_job(self, name: str, change: runtime.Change, *, now: datetime) -> JobRecord:
        """Change a runtime-owned job to ``change(stored record)``, read and written in one
        transaction; a new timing gets a new anchor. Returns the new record."""
        return runtime.update_runtime_job(self._db, name, change, now=now)

    def remove_job(self, name: str, *, now: datetime) -> bool:
        """Mark a runtime-owned job removed (its history stays); False when it already was."""
        return runtime.remove_runtime_job(self._db, name, now=now)

    # -- reading ---------------------------------------------------------------------------------

    def all_jobs(self, *, include_removed: bool = True) -> list[JobRecord]:
        """Every stored job, by name."""
        return queries.all_jobs(self._db, include_removed=include_removed)

    def count_jobs(self) -> int:
        """How many jobs are stored, removed ones included."""
        return queries.count_jobs(self._db)

    def job_keys(self, *, include_removed: bool = True) -> list[queries.JobKey]:
        return queries.job_keys(self._db, include_removed=include_removed)

    def jobs_named(self, names: Sequence[str]) -> list[JobRecord]:
        return queries.jobs_named(self._db, names)

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

    def history(self, job_name: str, limit: int = 20, *, before: datetime | None = None) -> list[LedgerEntry]:
        """The newest ``limit`` recorded runs of ``job_name`` (fired before ``before``, if given), newest first."""
        return ledger.history(self._db, job_name, limit, before=before)

    def recent_send_lags(self, since: datetime) -> list[timedelta]:
        return ledger.recent_send_lags(self._db, since)

    def run_by_task_id(self, task_id: str) -> LedgerEntry | None:
        return ledger.run_by_task_id(self._db, task_id)

    def latest_runs(self, job_names: Sequence[str] | None = None) -> dict[str, LedgerEntry]:
        """The newest recorded run of each job (of ``job_names``, if given) that has one, by name."""
        return ledger.latest_runs(self._db, job_names)

    # -- the run ledger --------------------------------------------------------------------------

    def claim_runs(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        """Claim runs before publishing them; return the runs this caller now owns (see :func:`.ledger.claim_runs`).

        Publish what this returns, :meth:`release_runs` the failures, then confirm the rest with
        :meth:`save_progress`.
        """
        return ledger.claim_runs(self._db, runs, fence=self._fence)

    def release_runs(self, runs: Sequence[RunRecord]) -> None:
        """Delete the claims of runs that were not sent (same job, fire time and task id), to send later."""
        ledger.release_runs(self._db, runs, fence=self._fence)

    def save_progress(
        self,
        progress_by_job: Mapping[str, Progress | tuple[datetime | None, int, datetime | None]],
        *,
        published: Sequence[RunRecord] = (),
    ) -> list[str]:
        """Confirm ``published`` runs and store each job's :class:`Progress`; return the names that changed.

        See :func:`.progress.save_progress`: counts add up across beats and a run is counted once.
        """
        return progress.save_progress(self._db, progress_by_job, published=published, fence=self._fence)

    def settle_late(self, *, published: Sequence[RunRecord], unsent: Sequence[RunRecord]) -> LateSettlement:
        """After losing the lease mid-batch: confirm the runs this beat sent, hand the unsent back.

        Only rows still claimed at this instance's epoch change (see :func:`.progress.settle_late`).
        """
        if self._fence is None:
            return LateSettlement([], 0)
        return progress.settle_late(self._db, self._fence.epoch, published=published, unsent=unsent)

    def set_next_run(self, updates: Mapping[str, datetime | None]) -> list[str]:
        """Store the next fire time of each named job; return the names whose value changed."""
        return progress.set_next_run(self._db, updates, fence=self._fence)

    def prune_runs(self, before: datetime, *, batches: int | None = None) -> int:
        """Delete settled ledger rows whose fire time is older than ``before``; return how many.

        Deletes :data:`~.ledger.PRUNE_BATCH` rows per transaction, at most ``batches`` of them
        (``None``: until none is left). Unconfirmed claims are kept for recovery. A beat's store
        prunes only while it holds the lease.
        """
        total = 0
        done = 0
        while batches is None or done < batches:
            deleted = ledger.prune_runs(self._db, before, batch=ledger.PRUNE_BATCH, fence=self._fence)
            total += deleted
            done += 1
            if deleted < ledger.PRUNE_BATCH:
                break
        return total

    def forget_job(self, name: str) -> int:
        """Delete a removed job and its run history; return how many runs went with it.

        Only a job that is no longer configured (state Removed) can be forgotten: a configured one
        would come back at the next start. Raises :class:`~celery_orchestra.errors.JobNotFound` or
        :class:`~celery_orchestra.errors.ControlError`, changing nothing.
        """
        return operator.forget(self._db, name)

    # -- the lease and the beats ------------------------------------------------------------------

    @property
    def fence(self) -> Fence | None:
        """The lease this instance acquired last (``None``: never): its beat's writes are checked against it."""
        return self._fence

    def acquire_lease(
        self, beat: BeatIdentity, ttl: timedelta, *, now: datetime | None = None, replacing: LeaseInfo | None = None
    ) -> LeaseGrant | None:
        """Become the active beat if the lease is free or expired; ``None`` when another beat holds it.

        ``replacing`` is a lease read earlier and known to be abandoned (its holder is dead or
        stopped renewing): taken without waiting for it to expire, if the row still holds exactly
        it. From then on this instance's ledger and progress writes are fenced by the new epoch.
        ``now`` replaces the database's clock (tests drive time).
        """
        grant = lease.acquire_lease(self._db, beat, ttl, now, replacing=replacing)
        if grant is not None:
            self._fence = grant.fence
        return grant

    def renew_lease(self, ttl: timedelta, *, now: datetime | None = None) -> LeaseGrant | None:
        """Extend the lease this instance holds by ``ttl`` from now; ``None`` when it lost it."""
        if self._fence is None:
            return None
        return lease.renew_lease(self._db, self._fence, ttl, now)

    def release_lease(self) -> bool:
        """Give the lease up (a clean stop) so that a standby takes over at once; False if not held."""
        return self._fence is not None and lease.release_lease(self._db, self._fence)

    def read_lease(self, *, now: datetime | None = None) -> LeaseInfo:
        """Who holds the lease, at which epoch, until when."""
        return lease.read_lease(self._db, now)

    def record_beat(
        self, beat: BeatIdentity, role: str, epoch: int | None = None, *, now: datetime | None = None
    ) -> None:
        """Register a beat or refresh its row (role, epoch held, last tick)."""
        lease.record_beat(self._db, beat, role, epoch, now)

    def beat(self, beat_id: str) -> BeatInfo | None:
        """The registry row of one beat, or ``None``."""
        return lease.read_beat(self._db, beat_id)

    def beats(self, *, now: datetime | None = None) -> tuple[list[BeatInfo], datetime]:
        """Every registered beat, most recently ticked first, and the database's clock when read."""
        return lease.list_beats(self._db, now)

    def forget_stopped_beats(self, before: datetime) -> int:
        """Drop beats that last ticked before ``before`` from the registry; return how many."""
        return lease.forget_stopped_beats(self._db, before)

    def unconfirmed_claims(self, *, limit: int = 1000, manual: bool = False) -> list[UnconfirmedClaim]:
        """Claims left unconfirmed by epochs before this instance's lease (needs the lease); ``manual``:
        the "run now" requests waiting or left unconfirmed instead."""
        return ledger.unconfirmed_claims(self._db, self._required_fence().epoch, limit=limit, manual=manual)

    def request_run(self, job_name: str, *, task_id: str, now: datetime) -> RunRecord:
        """Record a "run now" request for the active beat to send (see :mod:`.run_requests`)."""
        return run_requests.request_run(self._db, job_name, task_id=task_id, now=now)

    def take_over_claims(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        """Make earlier epochs' unconfirmed claims this beat's own, to send and confirm them (needs the lease)."""
        return ledger.take_over_claims(self._db, runs, fence=self._required_fence())

    def abandon_claims(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        """Mark earlier epochs' unconfirmed one-off claims as never to be sent again (needs the lease)."""
        return ledger.abandon_claims(self._db, runs, fence=self._required_fence())

    def _required_fence(self) -> Fence:
        if self._fence is None:
            raise LeaseLostError("this store never acquired the lease: only the active beat settles earlier claims")
        return self._fence

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
        return operator.set_flag(self._db, "expired", names, expired, verb, fence=self._fence)

    def touch(self, names: Sequence[str]) -> int:
        """Mark jobs as changed, so running schedulers reload them; return the new revision.

        For tools that edit ``orchestra_jobs`` without going through the store (call it after the
        edit has committed). Raises :class:`~celery_orchestra.errors.JobNotFound`, changing
        nothing, if a name is unknown.
        """
        return operator.touch(self._db, names)
