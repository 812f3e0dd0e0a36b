"""The store's tables, as typed SQLAlchemy declarative classes.

These classes are the *current* shape of the schema; the migrations in
:mod:`celery_orchestra.store.migrations` are how a database gets there, and a test checks that the
two agree. Every table name starts with ``orchestra_`` so that the store can live in an application's
existing database, and every constraint has a deterministic name (see ``NAMING_CONVENTION``) so
that later migrations can refer to it on every backend.

The store reads and writes through SQLAlchemy Core on these ``Table`` objects (bulk
statements, no identity map); the ORM classes exist to declare the schema with type hints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..jobs.checks import NAME_LENGTH as JOB_NAME_LENGTH
from .columns import UTCDateTime

__all__ = [
    "BEATS",
    "JOBS",
    "LEASE",
    "META",
    "METADATA",
    "NAMING_CONVENTION",
    "RUNS",
    "Base",
    "BeatRow",
    "JobRow",
    "LeaseRow",
    "MetaRow",
    "RunRow",
]

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Job names and task names longer than this are refused with a clear error before any write
#: (the rule is the jobs layer's, which checks every configured job against it before start-up).
NAME_LENGTH: Final = JOB_NAME_LENGTH

#: SQLite only turns ``INTEGER PRIMARY KEY`` into an auto-incrementing rowid; the ledger needs
#: 64 bits elsewhere (10,000 runs a minute would exhaust 32 bits in about five months).
_LedgerId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute once
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        list[str]: JSON(),
    }


class JobRow(Base):
    """One configured job, its operator state and its run bookkeeping."""

    __tablename__ = "orchestra_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    task: Mapped[str] = mapped_column(String(NAME_LENGTH))
    schedule_data: Mapped[dict[str, Any]]
    kind: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    args: Mapped[list[Any]]
    kwargs: Mapped[dict[str, Any]]
    options: Mapped[dict[str, Any]]
    tags: Mapped[list[str]]
    enabled: Mapped[bool] = mapped_column(server_default=true())
    #: The configuration's ``enabled`` as of the last reconcile. ``enabled`` follows the
    #: configuration only when *this* changes, so an operator's ``set_enabled`` survives restarts.
    configured_enabled: Mapped[bool] = mapped_column(server_default=true())
    paused: Mapped[bool] = mapped_column(server_default=false())
    #: When the job last became runnable again (resumed or re-enabled): fire times before it are
    #: not replayed.
    resumed_at: Mapped[datetime | None]
    anchor: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
    total_run_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_runs: Mapped[int | None] = mapped_column(Integer)
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(Text)
    removed: Mapped[bool] = mapped_column(server_default=false())
    expired: Mapped[bool] = mapped_column(server_default=false())
    revision: Mapped[int] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Who defines the job: ``config`` (reconcile makes it match the configuration) or ``runtime``
    #: (added through the API; reconcile never touches it). See ``records.OWNERS``.
    owner: Mapped[str] = mapped_column(String(16), server_default=text("'config'"))


class RunRow(Base):
    """The run ledger: one row per (job, scheduled fire time) ever sent.

    The unique constraint is what makes "sent at most once" hold across processes: whoever inserts
    the row first owns the fire time.
    """

    __tablename__ = "orchestra_runs"
    __table_args__ = (
        UniqueConstraint("job_name", "fire_time"),
        # Recovery looks for unconfirmed claims: few rows among many confirmed ones.
        Index(
            "ix_orchestra_runs_unconfirmed",
            "published",
            sqlite_where=text("published = 0"),
            postgresql_where=text("published = false"),
        ),
    )

    id: Mapped[int] = mapped_column(_LedgerId, primary_key=True, autoincrement=True)
    job_name: Mapped[str] = mapped_column(
        String(NAME_LENGTH),
        ForeignKey("orchestra_jobs.name", ondelete="CASCADE", onupdate="CASCADE"),
    )
    fire_time: Mapped[datetime]
    #: When the run was claimed, then (once ``published``) when it was sent.
    sent_at: Mapped[datetime]
    task_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    #: False from the claim until the publish is confirmed: an old unconfirmed claim belongs to a
    #: scheduler that died in between, and may be taken over (see ``JobStore.claim_runs``).
    published: Mapped[bool] = mapped_column(server_default=true())
    #: The lease epoch of the beat that claimed the run (``None``: claimed outside a beat, or
    #: before leases existed). An unconfirmed claim of an earlier epoch is recovered by the holder.
    epoch: Mapped[int | None] = mapped_column(BigInteger)
    #: A one-off's claim whose beat stopped before confirming it: never sent again (at most once),
    #: shown in history as unconfirmed.
    abandoned: Mapped[bool] = mapped_column(server_default=false())
    #: A "run now" request (``run_job_now``), keyed by its request instant: sent by the active beat
    #: outside the job's schedule, and never taken for a scheduled fire (see ``run_requests``).
    manual: Mapped[bool] = mapped_column(server_default=false())


class MetaRow(Base):
    """The single row (``id = 1``) holding the global change counter.

    Every write through the store increments ``revision`` first and stamps the rows it writes with
    the new value, so "what changed since I last looked" is one indexed query.
    """

    __tablename__ = "orchestra_meta"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class LeaseRow(Base):
    """The single row (``id = 1``) saying which beat is active: the fenced lease.

    ``epoch`` grows by one at every acquisition; a beat's writes check, in their transaction, that
    ``holder`` and ``epoch`` are still its own. ``holder`` is ``None`` when no beat ever held it or
    the last holder stopped cleanly.
    """

    __tablename__ = "orchestra_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str | None] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None]
    acquired_at: Mapped[datetime | None]


class BeatRow(Base):
    """One beat process that used the store: who it is, its role and when it last ticked."""

    __tablename__ = "orchestra_beats"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, autoincrement=False)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH))
    pid: Mapped[int] = mapped_column(Integer)
    #: Which pid namespace of which booted machine ``pid`` belongs to (``None``: unknown): only a
    #: beat in the same one can tell by the pid that this beat is gone.
    process_ns: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    #: ``active``, ``standby`` or ``stopped``.
    role: Mapped[str] = mapped_column(String(16))
    #: The last lease epoch it held (``None``: never active): who claimed a run, by its epoch.
    epoch: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime]
    last_tick_at: Mapped[datetime]


def _table(row_class: type[Base]) -> Table:
    table = row_class.__table__
    assert isinstance(table, Table)
    return table


METADATA: Final = Base.metadata
JOBS: Final = _table(JobRow)
RUNS: Final = _table(RunRow)
META: Final = _table(MetaRow)
LEASE: Final = _table(LeaseRow)
BEATS: Final = _table(BeatRow)
#: The id of the one row of ``orchestra_meta``.
META_ROW_ID: Final = 1
