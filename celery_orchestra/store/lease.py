"""The fenced lease that makes one beat per store the active one, and the registry of beats.

The lease is one row of ``orchestra_lease``: the holder (a beat's random id), an ``epoch`` that
grows by one at every acquisition, and an expiry. The holder renews it well before it expires;
every other beat is a standby that acquires it once it has expired (or was released by a clean
stop). Times are the database server's clock on PostgreSQL (beats on several hosts compare one
clock) and this host's on SQLite (every beat of one SQLite file runs on one host).

**Fencing.** A lease alone does not stop a beat that stalled (a long GC pause, SIGSTOP, a frozen
VM) from writing after another took over. So every ledger and progress write of a beat runs
:func:`check_fence` in its own transaction: the row must still name that beat at that epoch, or
the transaction raises :class:`~celery_orchestra.errors.LeaseLostError` and writes nothing. On
PostgreSQL the check takes a share lock on the lease row, so an acquisition waits for the fenced
write in flight to commit (and the new holder's recovery then sees it); on SQLite every write
transaction already holds the database's write lock. A holder stopped in the middle of such a
write would make that wait endless on PostgreSQL: a beat's store ends its own session once idle
in a transaction for half a TTL (``transaction_limit``), which rolls the write back, and an
acquisition waits at most half a TTL per attempt. (On SQLite a process stopped inside a write
holds the file's write lock until it resumes or dies; nothing outside it can end that.)

``orchestra_beats`` holds one row per beat process: host, pid, version, role and when it last
ticked, for ``celery orchestra status``, ``beats`` and ``health``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from ..errors import LeaseLostError
from .database import Database
from .sql import dialect_insert
from .tables import BEATS, LEASE, RUNS

__all__ = [
    "LEASE_ROW_ID",
    "BeatIdentity",
    "BeatInfo",
    "Fence",
    "LeaseGrant",
    "LeaseInfo",
    "acquire_lease",
    "check_fence",
    "database_time",
    "ensure_lease_row",
    "forget_stopped_beats",
    "list_beats",
    "read_beat",
    "read_lease",
    "record_beat",
    "release_lease",
    "renew_lease",
]

log = logging.getLogger(__name__)

#: The id of the one row of ``orchestra_lease``.
LEASE_ROW_ID: Final = 1


class BeatIdentity(NamedTuple):
    """Who a beat process is: a random id (unique per process start), where it runs, what runs."""

    id: str
    host: str
    pid: int
    version: str
    #: The machine boot and pid namespace ``pid`` lives in (see :func:`~celery_orchestra.beat.lease.process_namespace`).
    process_ns: str | None = None


class Fence(NamedTuple):
    """What a beat's writes are checked against: it still holds the lease at this epoch."""

    holder: str
    epoch: int


class LeaseGrant(NamedTuple):
    """A lease acquired or renewed: the fence for writes, and until when it holds (database time)."""

    fence: Fence
    expires_at: datetime
    #: The beat whose lease had expired when this one was acquired (``None``: it was free).
    taken_from: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """The lease as stored; ``holder`` is ``None`` when no beat holds it."""

    holder: str | None
    epoch: int
    expires_at: datetime | None
    acquired_at: datetime | None
    #: The database's clock when this was read: compare ``expires_at`` with it, not with yours.
    read_at: datetime

    @property
    def live(self) -> bool:
        """Held by a beat and not expired."""
        return self.holder is not None and self.expires_at is not None and self.expires_at > self.read_at


@dataclass(frozen=True, slots=True)
class BeatInfo:
    """One row of the beats registry."""

    id: str
    host: str
    pid: int
    version: str
    #: ``active``, ``standby`` or ``stopped``.
    role: str
    epoch: int | None
    started_at: datetime
    last_tick_at: datetime
    process_ns: str | None = None


def database_time(connection: Connection, now: datetime | None = None) -> datetime:
    """Now, by the clock every beat sharing this database agrees on (see the module docstring).

    ``now``, when given, is used instead: a caller with a clock of its own (tests drive time).
    """
    if now is not None:
        return now.astimezone(UTC)
    if connection.dialect.name == "postgresql":
        value = connection.exec_driver_sql("SELECT statement_timestamp()").scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


def ensure_lease_row(connection: Connection) -> int:
    """Create the lease row (nobody holding it) if the store has none yet; return its epoch.

    Its epoch starts past every epoch the ledger and the beats registry remember: a row deleted
    by hand must not hand out an epoch again, or a new holder would take an earlier holder's
    unconfirmed claims for its own and never recover them.
    """
    found = connection.execute(select(LEASE.c.epoch).where(LEASE.c.id == LEASE_ROW_ID)).first()
    if found is not None:
        return int(found.epoch)
    remembered = max(
        connection.execute(select(func.max(RUNS.c.epoch))).scalar() or 0,
        connection.execute(select(func.max(BEATS.c.epoch))).scalar() or 0,
    )
    if remembered:
        log.warning("the lease row was missing; recreated at epoch %d, after every epoch in use", remembered)
    connection.execute(insert(LEASE).values(id=LEASE_ROW_ID, holder=None, epoch=remembered))
    return int(remembered)


def _lease_row(connection: Connection, *, lock: str | None) -> tuple[str | None, int, datetime | None, datetime | None]:
    query = select(LEASE.c.holder, LEASE.c.epoch, LEASE.c.expires_at, LEASE.c.acquired_at).where(
        LEASE.c.id == LEASE_ROW_ID
    )
    if lock == "update":
        query = query.with_for_update()
    elif lock == "share":
        query = query.with_for_update(read=True)
    row = connection.execute(query).first()
    if row is None:
        # A store migrated before the lease row existed and never migrated since cannot happen
        # (migrate creates it); a hand-deleted row is recreated rather than failing every write.
        return None, ensure_lease_row(connection), None, None
    return row.holder, int(row.epoch), row.expires_at, row.acquired_at


def check_fence(connection: Connection, fence: Fence) -> None:
    """Raise :class:`LeaseLostError` unless ``fence`` still holds the lease; call inside the write's transaction."""
    holder, epoch, _, _ = _lease_row(connection, lock="share")
    if holder != fence.holder or epoch != fence.epoch:
        raise LeaseLostError(
            f"this beat no longer holds the store's lease (it held epoch {fence.epoch}; "
            f"the lease is now at epoch {epoch}, held by {holder or 'nobody'}): nothing was written"
        )


def read_lease(db: Database, now: datetime | None = None) -> LeaseInfo:
    """The lease as stored, with the database's clock at the time of reading."""

    def work(connection: Connection) -> LeaseInfo:
        holder, epoch, expires_at, acquired_at = _lease_row(connection, lock=None)
        return LeaseInfo(holder, epoch, expires_at, acquired_at, database_time(connection, now))

    return db.read("read the lease", work)


def acquire_lease(
    db: Database, beat: BeatIdentity, ttl: timedelta, now: datetime | None = None, *, replacing: LeaseInfo | None = None
) -> LeaseGrant | None:
    """Take the lease for ``beat`` if nobody holds it or it expired; ``None`` when another beat holds it.

    ``replacing`` is the lease as read earlier, known to be abandoned (its holder's process is
    gone, or it stopped renewing): it is taken at once, unexpired, if the row still holds exactly
    that lease (holder, epoch, expiry), so a renewal in between is never overridden. Every
    acquisition increments the epoch, also a beat's re-acquisition of a lease it had lost track
    of: what it wrote under the old epoch is then recovered like anyone else's.
    """

    def work(connection: Connection) -> tuple[LeaseGrant | None, bool]:
        if connection.dialect.name == "postgresql":
            # Behind a stalled holder's fenced write, wait at most half a TTL (a retried error):
            # its session ends by its idle limit (see Database), or this beat tries again later.
            wait_ms = max(1, round(ttl.total_seconds() * 500))
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
        holder, epoch, expires_at, _ = _lease_row(connection, lock="update")
        current = database_time(connection, now)
        held = holder is not None and expires_at is not None and expires_at > current
        abandoned = replacing is not None and (replacing.holder, replacing.epoch, replacing.expires_at) == (
            holder,
            epoch,
            expires_at,
        )
        if held and holder != beat.id and not abandoned:
            return None, False
        grant = LeaseGrant(Fence(beat.id, epoch + 1), current + ttl, holder)
        connection.execute(
            update(LEASE)
            .where(LEASE.c.id == LEASE_ROW_ID)
            .values(holder=beat.id, epoch=grant.fence.epoch, expires_at=grant.expires_at, acquired_at=current)
        )
        _upsert_beat(connection, beat, "active", grant.fence.epoch, current)
        return grant, True

    return db.run("acquire the lease", work, write=True)


def renew_lease(db: Database, fence: Fence, ttl: timedelta, now: datetime | None = None) -> LeaseGrant | None:
    """Extend the lease held under ``fence`` by ``ttl`` from now; ``None`` when it is no longer held."""

    def work(connection: Connection) -> tuple[LeaseGrant | None, bool]:
        current = database_time(connection, now)
        expires_at = current + ttl
        renewed = connection.execute(
            update(LEASE)
            .where(LEASE.c.id == LEASE_ROW_ID, LEASE.c.holder == fence.holder, LEASE.c.epoch == fence.epoch)
            .values(expires_at=expires_at)
        ).rowcount
        if not renewed:
            return None, False
        connection.execute(update(BEATS).where(BEATS.c.id == fence.holder).values(last_tick_at=current))
        return LeaseGrant(fence, expires_at), True

    return db.run("renew the lease", work, write=True, durable=False)


def release_lease(db: Database, fence: Fence) -> bool:
    """Give the lease up (a clean stop), so that a standby takes over at once; False if it was not held."""

    def work(connection: Connection) -> tuple[bool, bool]:
        released = connection.execute(
            update(LEASE)
            .where(LEASE.c.id == LEASE_ROW_ID, LEASE.c.holder == fence.holder, LEASE.c.epoch == fence.epoch)
            .values(holder=None, expires_at=None)
        ).rowcount
        return bool(released), bool(released)

    return db.run("release the lease", work, write=True)


def record_beat(
    db: Database, beat: BeatIdentity, role: str, epoch: int | None = None, now: datetime | None = None
) -> None:
    """Register ``beat`` or refresh its row: its role, the epoch it holds, and that it ticked now."""

    def work(connection: Connection) -> tuple[None, bool]:
        _upsert_beat(connection, beat, role, epoch, database_time(connection, now))
        return None, True

    db.run(f"record beat {beat.id} as {role}", work, write=True, durable=False)


def _upsert_beat(connection: Connection, beat: BeatIdentity, role: str, epoch: int | None, now: datetime) -> None:
    statement = dialect_insert(connection.dialect.name, BEATS).values(
        id=beat.id,
        host=beat.host,
        pid=beat.pid,
        process_ns=beat.process_ns,
        version=beat.version,
        role=role,
        epoch=epoch,
        started_at=now,
        last_tick_at=now,
    )
    # A beat's row keeps the last epoch it held: a new holder looks up who claimed a run by it.
    changes: dict[str, Any] = {"role": role, "last_tick_at": now}
    if epoch is not None:
        changes["epoch"] = epoch
    connection.execute(statement.on_conflict_do_update(index_elements=[BEATS.c.id], set_=changes))


def list_beats(db: Database, now: datetime | None = None) -> tuple[list[BeatInfo], datetime]:
    """Every registered beat, most recently ticked first, and the database's clock when read."""
    query = select(BEATS).order_by(BEATS.c.last_tick_at.desc(), BEATS.c.id)

    def work(connection: Connection) -> tuple[list[BeatInfo], datetime]:
        beats = [_beat_info(row) for row in connection.execute(query)]
        return beats, database_time(connection, now)

    return db.read("list the beats", work)


def _beat_info(row: Any) -> BeatInfo:
    return BeatInfo(
        row.id, row.host, row.pid, row.version, row.role, row.epoch, row.started_at, row.last_tick_at, row.process_ns
    )


def read_beat(db: Database, beat_id: str) -> BeatInfo | None:
    """The registry row of one beat, or ``None``."""
    query = select(BEATS).where(BEATS.c.id == beat_id)

    def work(connection: Connection) -> BeatInfo | None:
        row = connection.execute(query).first()
        if row is None:
            return None
        return _beat_info(row)

    return db.read("read a beat", work)


def forget_stopped_beats(db: Database, before: datetime) -> int:
    """Delete the rows of beats that last ticked before ``before`` (stopped or long dead); return how many."""

    def work(connection: Connection) -> tuple[int, bool]:
        deleted = connection.execute(delete(BEATS).where(BEATS.c.last_tick_at < before)).rowcount
        return deleted, deleted > 0

    return db.run("forget old beats", work, write=True)
