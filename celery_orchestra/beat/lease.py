"""This beat's side of the store's lease: active or standby, renewing, and time left to publish.

Only the active beat sends. It renews the lease every third of its time to live; a standby looks
every second whether the lease is free or expired and takes it then, or at once when the holder
ran on the same machine and pid namespace and its process is gone (kill -9 and a restart by a
supervisor do not wait out the lease) (see
:mod:`celery_orchestra.store.lease` for the fencing that stops a stalled beat from writing).

The time left is counted on this process's monotonic clock from the moment a renewal was *asked*
for, so it never outlasts the lease the database granted. A beat publishes only while a quarter of
its lease is left, and renews first when half of it is gone, so a long batch renews as it goes.

A standby does not trust the stored expiry alone: it is wall-clock time (the host's on SQLite),
which steps. It also watches the lease row on its own monotonic clock. A row that has not changed
for a whole TTL belongs to a holder that stopped renewing (the holder renews every third of it),
whatever its stored expiry says: after the clock stepped back an hour, failover still takes one
TTL, not an hour. And an expired row must also have stood still for half a TTL before it is taken,
so a step forward does not hand a live holder's lease to a standby. (A beat starting while an
expired lease is left behind by a holder that died elsewhere is active half a TTL later.)
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Final

from ..errors import LeaseLostError
from ..interfaces import SchedulerStore
from ..store import BeatIdentity, LeaseInfo
from .outages import OutageWatch, store_watch

__all__ = ["STANDBY_LOOK_EVERY", "LeaseKeeper", "Transition", "beat_identity", "process_gone", "process_namespace"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: Seconds between a standby's looks at the lease (and a holder's retries after a failed renewal).
STANDBY_LOOK_EVERY: Final = 1.0


class Transition(Enum):
    """What changed at a :meth:`LeaseKeeper.tend`."""

    ACQUIRED = "acquired"
    LOST = "lost"


def beat_identity() -> BeatIdentity:
    """A new identity for this beat process: a random id, the host name, the pid and our version."""
    try:
        version = importlib.metadata.version("celery-orchestra")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown"
    return BeatIdentity(uuid.uuid4().hex, socket.gethostname()[:255], os.getpid(), version[:64], process_namespace())


def process_namespace() -> str | None:
    """This machine's boot and this process's pid namespace, or ``None`` where that cannot be known.

    Two beats with the same value see the same processes: one can tell by the other's pid whether
    it is still running. The host name is not enough: containers may share one.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}:{namespace}"[:128]


def process_gone(pid: int) -> bool:
    """The process ``pid`` (of this pid namespace) no longer runs; a zombie counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


class LeaseKeeper:
    """Holds, renews and gives up one beat's lease; says when it may publish.

    ``lease_now`` is the clock the lease is stamped with: ``None`` means the database's (the
    default); tests pass their fake clock. ``on_acquired`` and ``on_lost`` are called when this
    beat becomes the active one and when it stops being it (whoever noticed: a renewal, or a
    fenced write that was refused).
    """

    def __init__(
        self,
        store: SchedulerStore,
        identity: BeatIdentity,
        ttl: float,
        *,
        monotonic: Callable[[], float],
        lease_now: Callable[[], datetime | None],
        on_acquired: Callable[[], None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
        outage: OutageWatch | None = None,
    ) -> None:
        self.store = store
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self.identity = identity
        self.ttl = ttl
        self._monotonic = monotonic
        self.monotonic = monotonic
        self._lease_now = lease_now
        self.active = False
        #: Monotonic instant until which the lease surely holds (renewal asked for + ttl).
        self._valid_until = float("-inf")
        self._next_attempt = 0.0
        self._next_heartbeat = 0.0
        self._said_standby = False
        #: The lease row as last read by this standby, and since when (monotonic) it has not changed.
        self._sighted: tuple[str | None, int, datetime | None] | None = None
        self._sighted_since = 0.0
        #: The store's outages, told once whichever part of beat notices them first.
        self.outage = outage or store_watch(monotonic)

    @property
    def epoch(self) -> int | None:
        fence = self.store.fence
        return fence.epoch if fence is not None and self.active else None

    def time_left(self) -> float:
        """Seconds the lease surely still holds (negative once it may have expired)."""
        return self._valid_until - self._monotonic() if self.active else float("-inf")

    def may_publish(self) -> bool:
        """True while a quarter of the lease is left; renews first once half of it is gone."""
        if not self.active:
            return False
        if self.time_left() < self.ttl / 2:
            self._renew()
        return self.active and self.time_left() > self.ttl / 4

    def sleep_limit(self) -> float:
        """How long beat may sleep before the lease needs looking after."""
        return max(self._next_attempt - self._monotonic(), 0.0)

    def tend(self) -> Transition | None:
        """Renew (active) or look for a free lease (standby) when it is time; say what changed."""
        now = self._monotonic()
        if self.active:
            if now >= self._next_attempt:
                self._renew()
            elif now >= self._valid_until:
                self._lose("its lease ran out before it could renew it")
            return None if self.active else Transition.LOST
        if now < self._next_attempt:
            return None
        return self._try_acquire(now)

    def lost(self, error: LeaseLostError) -> None:
        """A fenced write was refused: another beat holds the lease now."""
        if self.active:
            self._lose(str(error))

    def release(self) -> None:
        """Hand the lease over (a clean stop) and record this beat as stopped; never raises."""
        was_active, self.active = self.active, False
        try:
            if was_active and self.store.release_lease():
                logger.info("celery-orchestra: released the lease of %s; a standby takes over now", self.store.safe_url)
            self.store.record_beat(self.identity, "stopped", None, now=self._lease_now())
        except Exception as error:
            logger.warning("celery-orchestra: could not release the lease of %s (%s)", self.store.safe_url, error)

    # ---- internals

    def _try_acquire(self, now: float) -> Transition | None:
        ttl = timedelta(seconds=self.ttl)
        self._next_attempt = now + STANDBY_LOOK_EVERY
        try:
            # A read first: a standby looks every second, and a write each time would queue behind
            # (and hold up) the active beat's claims for nothing.
            held = self.store.read_lease(now=self._lease_now())
            grant = None
            if self._abandoned(held, now):
                grant = self.store.acquire_lease(self.identity, ttl, now=self._lease_now(), replacing=held)
            if grant is None and now >= self._next_heartbeat:
                self._next_heartbeat = now + self.ttl / 3
                self.store.record_beat(self.identity, "standby", None, now=self._lease_now())
        except Exception as error:
            self.outage.failed(error)
            return None
        self.outage.answered()
        if grant is None:
            if not self._said_standby:
                self._said_standby = True
                logger.info(
                    "celery-orchestra: standby: another beat (%s, epoch %d) is active on %s; this beat takes over "
                    "if that one stops renewing its lease for %g s",
                    held.holder,
                    held.epoch,
                    self.store.safe_url,
                    self.ttl,
                )
            return None
        self.active = True
        self._said_standby = False
        self._valid_until = now + self.ttl
        self._next_attempt = now + self.ttl / 3
        if grant.taken_from is None:
            logger.info(
                "celery-orchestra: this beat is the active one on %s (lease epoch %d)",
                self.store.safe_url,
                grant.fence.epoch,
            )
        else:
            logger.warning(
                "celery-orchestra: this beat took over as the active one on %s (lease epoch %d): beat %s "
                "stopped renewing its lease",
                self.store.safe_url,
                grant.fence.epoch,
                grant.taken_from,
            )
        self._on_acquired()
        return Transition.ACQUIRED

    def _abandoned(self, held: LeaseInfo, now: float) -> bool:
        """Whether to take the lease as read (see the module docstring)."""
        sighted = (held.holder, held.epoch, held.expires_at)
        if sighted != self._sighted:
            self._sighted, self._sighted_since = sighted, now
        still_for = now - self._sighted_since
        if held.holder is None or held.holder == self.identity.id:
            return True
        if not held.live:
            return still_for >= self.ttl / 2
        if still_for >= self.ttl:
            logger.warning(
                "celery-orchestra: the active beat has not renewed its lease for %.0f s by this beat's clock, though "
                "its stored expiry is %s away (the clock stepped?): taking over",
                still_for,
                held.expires_at - held.read_at if held.expires_at is not None else "no time",
            )
            return True
        return self._dead_holder(held.holder)

    def _dead_holder(self, holder: str | None) -> bool:
        """Whether ``holder``'s process is known to be gone (same machine and pid namespace)."""
        if self.identity.process_ns is None:
            return False
        beat = None if holder is None else self.store.beat(holder)
        if (
            beat is None
            or beat.process_ns != self.identity.process_ns
            or beat.pid == self.identity.pid
            or not process_gone(beat.pid)
        ):
            return False
        logger.warning(
            "celery-orchestra: the active beat (pid %d on %s) is gone; taking its lease over now", beat.pid, beat.host
        )
        return True

    def _renew(self) -> None:
        asked_at = self._monotonic()
        try:
            grant = self.store.renew_lease(timedelta(seconds=self.ttl), now=self._lease_now())
        except Exception as error:
            self._next_attempt = asked_at + STANDBY_LOOK_EVERY
            self.outage.failed(error)
            if asked_at >= self._valid_until:
                self._lose("its lease ran out while the store could not be reached")
            return
        self.outage.answered()
        if grant is None:
            self._lose("another beat acquired the lease")
            return
        self._valid_until = asked_at + self.ttl
        self._next_attempt = asked_at + self.ttl / 3

    def _lose(self, why: str) -> None:
        self.active = False
        self._valid_until = float("-inf")
        self._next_attempt = self._monotonic() + STANDBY_LOOK_EVERY
        logger.error("celery-orchestra: this beat is no longer the active one (%s); it sends nothing now", why)
        self._on_lost()
