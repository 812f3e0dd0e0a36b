"""Plain, frozen copies of what the store holds.

No live ORM object leaves the store: a scheduler thread, the CLI and a remote-control handler may
all hold records at once, and an ORM object would silently lazy-load or go stale when its session
ends. Every datetime here is timezone-aware UTC.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from sqlalchemy.engine import RowMapping

from ..jobs.states import ran_since_anchor

#: A job defined by the configuration (``beat_schedule``, a YAML file, Celery's ``Scheduler.add``):
#: every start makes it match the configuration again.
OWNER_CONFIG: Final = "config"
#: A job added through the runtime API (``add_job``, ``celery orchestra add``): changed only
#: through it, never touched by reconcile.
OWNER_RUNTIME: Final = "runtime"
#: Every owner a job can have.
OWNERS: Final = (OWNER_CONFIG, OWNER_RUNTIME)

__all__ = [
    "JOB_FIELDS",
    "OWNERS",
    "OWNER_CONFIG",
    "OWNER_RUNTIME",
    "UNREADABLE_DATETIME",
    "JobRecord",
    "LedgerEntry",
    "Progress",
    "ReconcileReport",
    "RunKey",
    "RunRecord",
    "UnconfirmedClaim",
]


class JobRecord(NamedTuple):
    """One row of ``orchestra_jobs``.

    ``enabled`` is the effective flag (an operator may have changed it with
    :meth:`~celery_orchestra.store.JobStore.set_enabled`); ``configured_enabled`` is what the
    configuration said the last time it was reconciled.

    ``owner`` says who defines the job: the configuration (reconcile makes it match at every
    start) or the runtime API (reconcile never touches it).

    A NamedTuple, not a frozen dataclass: beat builds 100,000 of these at start-up, and a tuple
    is made in one step where a frozen dataclass sets its 26 fields one by one.

    ``broken`` is ``None`` for a job whose row could be read. A row edited into something this
    version cannot read (text that is not JSON, a datetime that is not ISO 8601...) still gives a
    record, so that one bad row costs that job only: ``broken`` then says which column holds what,
    and the unreadable values are placeholders (empty, or :data:`UNREADABLE_DATETIME`). Beat skips
    such a job; the status shows it as Broken; the operator columns (``paused``, ``enabled``) can
    still be changed.
    """

    name: str
    task: str
    schedule_data: dict[str, Any]
    kind: str
    timezone: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    tags: tuple[str, ...]
    enabled: bool
    configured_enabled: bool
    paused: bool
    #: When the job last became runnable again after a pause or a disable (``None``: never).
    resumed_at: datetime | None
    #: When the job was first registered, or when its timing last changed.
    anchor: datetime
    #: The *scheduled* fire time of the newest recorded run.
    last_run_at: datetime | None
    total_run_count: int
    max_runs: int | None
    next_run_at: datetime | None
    source: str
    removed: bool
    expired: bool
    revision: int
    created_at: datetime
    updated_at: datetime
    #: Who defines the job: :data:`OWNER_CONFIG` or :data:`OWNER_RUNTIME`.
    owner: str = OWNER_CONFIG
    #: Why the row cannot be used (the column and what it holds), or ``None``: not a column.
    broken: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> JobRecord:
        """The record of a row of ``orchestra_jobs`` (or of its column values, by name)."""
        return cls.from_values(_IN_FIELD_ORDER(row))

    @classmethod
    def from_values(cls, values: Sequence[Any], broken: str | None = None) -> JobRecord:
        """The record of column values given in :data:`JOB_FIELDS` order: the one field mapping."""
        checked = list(values)
        checked[_ARGS] = tuple(checked[_ARGS])
        checked[_TAGS] = tuple(checked[_TAGS])
        checked[_REVISION] = int(checked[_REVISION])
        checked.append(broken)
        return cls._make(checked)

    @property
    def has_run_since_anchor(self) -> bool:
        """Whether a run was recorded for the current timing (see ``jobs.states.ran_since_anchor``)."""
        return ran_since_anchor(self.last_run_at, self.anchor)


#: The fields of a :class:`JobRecord` that are columns of ``orchestra_jobs`` (all but ``broken``), in their order.
JOB_FIELDS: Final = JobRecord._fields[:-1]
#: What an unreadable datetime column of a broken record holds instead (see :class:`JobRecord`).
UNREADABLE_DATETIME: Final = datetime(1970, 1, 1, tzinfo=UTC)
_IN_FIELD_ORDER: Final = operator.itemgetter(*JOB_FIELDS)
_ARGS, _TAGS, _REVISION = (JOB_FIELDS.index(name) for name in ("args", "tags", "revision"))


class RunKey(NamedTuple):
    """What identifies a run in the ledger: the job and the nominal instant it was meant for."""

    job_name: str
    fire_time: datetime


class Progress(NamedTuple):
    """What a dispatch did to one job, as :meth:`~celery_orchestra.store.JobStore.save_progress` takes it.

    ``runs_added`` is *added* to the stored run count; ``last_run_at`` (the newest nominal fire
    instant sent) never moves the stored one backwards; ``next_run_at`` is stored as given.
    """

    last_run_at: datetime | None
    runs_added: int
    next_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run, as claimed, released and confirmed in the ledger (:meth:`~celery_orchestra.store.JobStore.claim_runs`).

    ``fire_time`` is the instant the run was *scheduled* for (the ledger's key, together with
    ``job_name``); ``next_run_at`` is the job's next fire time computed after this run.
    """

    job_name: str
    fire_time: datetime
    sent_at: datetime
    task_id: str
    next_run_at: datetime | None

    @property
    def key(self) -> RunKey:
        return RunKey(self.job_name, self.fire_time)


class UnconfirmedClaim(NamedTuple):
    """A run claimed by a beat that stopped before confirming it (see :func:`~.ledger.unconfirmed_claims`)."""

    run: RunRecord
    #: The epoch of the beat that claimed it (``None``: claimed outside a lease, or handed back).
    epoch: int | None
    #: A one-off's run is never sent again; a repeating job's is.
    one_off: bool
    #: The claimer's pid and pid namespace, when the beats registry still knows it: a claimer
    #: alive on the same machine may still confirm the run (it was stopped, not killed).
    claimer_pid: int | None = None
    claimer_ns: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One row of the run ledger ``orchestra_runs``, as returned by ``history``.

    ``confirmed`` is false for a run that was claimed but not (yet) confirmed as published;
    ``sent_at`` is then the claim time. ``abandoned`` marks a one-off's claim whose beat stopped
    before confirming it: it may or may not have reached the broker, and is never sent again.
    """

    job_name: str
    fire_time: datetime
    sent_at: datetime
    task_id: str
    confirmed: bool = True
    abandoned: bool = False
    #: A "run now" request, sent outside the schedule; ``fire_time`` is when it was requested.
    manual: bool = False


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What :meth:`~celery_orchestra.store.JobStore.reconcile` did, by job name.

    Every configured or stored name is in exactly one list:

    ``added``
        new in the configuration;
    ``restored``
        back in the configuration after having been removed (possibly with other changes);
    ``retimed``
        its schedule or time zone changed: new anchor, next fire time to be recomputed;
    ``changed``
        another field changed (task, arguments, options, tags, enabled, source, kind, max runs);
    ``unchanged``
        nothing to write;
    ``removed``
        no longer configured: now marked removed (kept for history, never sent);
    ``already_removed``
        stored as removed and still not configured;
    ``runtime``
        not configured, owned at runtime (added through the API): left as it is.

    ``broken`` holds the jobs whose stored row cannot be read (see :class:`JobRecord`), each with
    the reason; none of them is in ``jobs``. One whose operator state or run bookkeeping cannot be
    read is left as it is and is in no other list; one that is no longer configured is still listed
    as removed or already removed (marking it needs none of its values). A configured job whose
    configured columns alone cannot be read is not broken: reconcile rewrites them.

    ``revision`` is the change counter value stamped on the written rows, or ``None`` when nothing
    was written. ``jobs`` holds every stored job (removed ones too) as it stands after the
    reconcile, by name (the store's reconcile hands on a
    :class:`~celery_orchestra.store.job_columns.JobColumns`, which builds each record when asked).
    """

    added: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()
    retimed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    already_removed: tuple[str, ...] = ()
    runtime: tuple[str, ...] = ()
    revision: int | None = None
    jobs: Sequence[JobRecord] = field(default=(), repr=False, compare=False)
    broken: Mapping[str, str] = field(default_factory=dict)

    @property
    def wrote_anything(self) -> bool:
        return self.revision is not None

    def __str__(self) -> str:
        counts = (
            ("added", self.added),
            ("restored", self.restored),
            ("retimed", self.retimed),
            ("changed", self.changed),
            ("unchanged", self.unchanged),
            ("removed", self.removed),
        )
        return ", ".join(f"{len(names)} {label}" for label, names in counts)
