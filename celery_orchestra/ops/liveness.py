"""Is a beat alive? The active beat, the standbys, and how long ago each ticked.

Every beat records itself in the store (host, pid, version, role) and refreshes its row when it
renews or looks at the lease, about every third of ``orchestra_lease_ttl``. The active beat is the
one holding an unexpired lease. ``celery orchestra status`` leads with :meth:`Liveness.summary`,
``celery orchestra beats`` lists :attr:`Liveness.beats`, and ``celery orchestra health`` exits
with :meth:`Liveness.healthy` (for container health checks).

Ages are measured on the database's clock (PostgreSQL's server clock, this host's for SQLite), so
a skewed clock on the machine asking does not make a live beat look dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..store import BeatInfo, JobStore
from .api import Target, store_for

__all__ = ["BeatStatus", "Liveness", "beat_liveness"]


@dataclass(frozen=True, slots=True)
class BeatStatus:
    """One beat process as the store last heard of it."""

    id: str
    host: str
    pid: int
    version: str
    #: ``active``, ``standby`` or ``stopped`` (as the beat itself last recorded it).
    role: str
    epoch: int | None
    started_at: datetime
    last_tick_at: datetime
    #: How long before the check it last recorded a tick.
    ticked_ago: timedelta

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "role": self.role,
            "epoch": self.epoch,
            "started_at": self.started_at.isoformat(),
            "last_tick_at": self.last_tick_at.isoformat(),
            "ticked_seconds_ago": round(self.ticked_ago.total_seconds(), 3),
        }


@dataclass(frozen=True, slots=True)
class Liveness:
    """The beats of one store at one moment (database time)."""

    #: The beat holding an unexpired lease, or ``None``: nothing is sending.
    active: BeatStatus | None
    #: Every beat that recorded itself: the active one, standbys, then the others.
    beats: tuple[BeatStatus, ...]
    epoch: int
    lease_expires_at: datetime | None
    checked_at: datetime

    def healthy(self, max_age: float) -> bool:
        """An active beat ticked within ``max_age`` seconds."""
        return self.active is not None and self.active.ticked_ago.total_seconds() <= max_age

    def summary(self) -> str:
        """One line for the top of ``status``."""
        if self.active is None:
            standbys = sum(1 for beat in self.beats if beat.role == "standby")
            waiting = f" ({standbys} standby beat(s) waiting for the lease)" if standbys else ""
            return f"WARNING: no beat is active: nothing is being sent{waiting}"
        beat = self.active
        return f"Active beat: {beat.host} pid {beat.pid} (epoch {beat.epoch}), ticked {_ago(beat.ticked_ago)} ago"

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": None if self.active is None else self.active.as_dict(),
            "epoch": self.epoch,
            "lease_expires_at": None if self.lease_expires_at is None else self.lease_expires_at.isoformat(),
            "checked_at": self.checked_at.isoformat(),
            "beats": [beat.as_dict() for beat in self.beats],
        }


def beat_liveness(target: Target, *, now: datetime | None = None) -> Liveness:
    """Which beat is active on ``target`` (a Celery app or a :class:`JobStore`) and how long ago each ticked.

    ``now`` replaces the database's clock (tests drive time).
    """
    with store_for(target) as store:
        return _liveness(store, now)


def _liveness(store: JobStore, now: datetime | None) -> Liveness:
    lease = store.read_lease(now=now)
    rows, checked_at = store.beats(now=now)
    beats = [_status(row, checked_at) for row in rows]
    active = None
    if lease.live:
        active = next((beat for beat in beats if beat.id == lease.holder), None)
    # The active beat first, then standbys, then the stopped, each most recently ticked first.
    order = {"active": 1, "standby": 2}
    beats.sort(key=lambda beat: (beat is not active, order.get(beat.role, 3), -beat.last_tick_at.timestamp()))
    return Liveness(active, tuple(beats), lease.epoch, lease.expires_at, checked_at)


def _ago(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _status(row: BeatInfo, checked_at: datetime) -> BeatStatus:
    return BeatStatus(
        row.id,
        row.host,
        row.pid,
        row.version,
        row.role,
        row.epoch,
        row.started_at,
        row.last_tick_at,
        max(checked_at - row.last_tick_at, timedelta(0)),
    )
