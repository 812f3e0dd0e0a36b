"""Sending "run now" requests (``run_job_now``, ``celery orchestra run``) from the active beat.

A request is a ``manual`` row of the run ledger (see :mod:`celery_orchestra.store.run_requests`).
The active beat looks for requests when the store's change counter moved (the request's write
moves it: it is sent within about a poll interval), when it acquires the lease, and every
:data:`~.recovery.RECOVER_EVERY` seconds. Each one is handled like a claim of a beat that is gone:

1. taken (stamped with this beat's epoch, fenced by the lease: a standby never sends one);
2. published through the scheduler's ``send_run`` with the request's task id and the job's task,
   args, kwargs and options, whether the job is paused or disabled (an explicit request);
3. confirmed in the ledger. It is not counted as a run of the job and moves nothing of its
   schedule: next fire, last run, run count and a limited job's remaining runs stay as they were.

A request whose send failed is kept and tried again at the next pass (a second while the broker
is away). A beat killed between taking and confirming a request leaves it unconfirmed at its
epoch: the next active beat sends it again with the same task id (at least once, the duplicate
recognisable downstream), like a repeating job's claim. A request for a job that is no longer
loaded (removed, or its row unreadable) is marked abandoned and never sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..errors import BrokerUnavailableError, LeaseLostError
from ..interfaces import SchedulerStore
from ..jobs.states import STATE_REMOVED
from ..store import RunRecord
from .broker import BROKER_RETRY
from .entry import ScheduleEntry
from .lease import LeaseKeeper
from .recovery import RECOVER_EVERY, UNCONFIRMED_BATCH

__all__ = ["ManualRuns"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: Publishes one run of an entry through a producer; False when the broker refused it.
SendRun = Callable[[ScheduleEntry, RunRecord, Any], bool]


class ManualRuns:
    """The active beat's side of "run now": find, take, publish and confirm requests (see the module docstring).

    ``send`` is the scheduler's ``send_run``; ``producer`` returns the broker producer or ``None``
    when the broker cannot be reached; ``broker_lost`` drops a producer that failed.
    """

    def __init__(
        self,
        store: SchedulerStore,
        *,
        send: SendRun,
        producer: Callable[[], Any],
        lease: LeaseKeeper,
        broker_lost: Callable[[], None],
    ) -> None:
        self._store = store
        self._send = send
        self._producer = producer
        self._lease = lease
        self._broker_lost = broker_lost
        #: The change counter at the last look (``None``: never looked).
        self._seen_revision: int | None = None
        self._next_look = float("-inf")
        #: Requests taken by this beat whose send failed, or sent ones whose confirmation failed.
        self._unsent: dict[str, RunRecord] = {}
        self._unconfirmed: list[RunRecord] = []

    def look_soon(self) -> None:
        """Look at the next pass (this beat just acquired the lease: what it held before is not its own now)."""
        self._next_look = float("-inf")
        self._unsent.clear()
        self._unconfirmed.clear()

    def send_requested(self, entries: Mapping[str, ScheduleEntry], now: datetime, *, revision: int) -> None:
        """Send the waiting requests if the store changed since the last look, or a look is due."""
        monotonic = self._lease.monotonic()
        if not self._lease.active or (revision == self._seen_revision and monotonic < self._next_look):
            return
        self._seen_revision = revision
        self._next_look = monotonic + RECOVER_EVERY
        try:
            taken = self._take(entries, now)
        except LeaseLostError as error:
            self._lease.lost(error)
            return
        except Exception as error:
            self._lease.outage.failed(error)
            self._next_look = monotonic + BROKER_RETRY
            return
        self._unsent.update((run.task_id, run) for run in taken)
        published = self._publish(entries)
        self._confirm()
        if not published or self._unconfirmed:
            self._next_look = monotonic + BROKER_RETRY

    def _take(self, entries: Mapping[str, ScheduleEntry], now: datetime) -> list[RunRecord]:
        """The waiting requests, and those left unconfirmed by earlier epochs, made this beat's own."""
        claims = self._store.unconfirmed_claims(limit=UNCONFIRMED_BATCH, manual=True)
        if not claims:
            return []
        runnable = {name for name in {claim.run.job_name for claim in claims} if _may_run(entries.get(name))}
        orphans = [claim.run for claim in claims if claim.run.job_name not in runnable]
        if orphans:
            for run in self._store.abandon_claims(orphans):
                logger.warning(
                    "celery-orchestra: not running %s now (task id %s): the job is removed or cannot be read",
                    run.job_name,
                    run.task_id,
                )
        runs = [
            RunRecord(claim.run.job_name, claim.run.fire_time, now, claim.run.task_id, None)
            for claim in claims
            if claim.run.job_name in runnable
        ]
        for claim in claims:
            if claim.epoch is not None and claim.run.job_name in runnable:
                logger.warning(
                    "celery-orchestra: sending the manual run of %s again: the beat that took it stopped before "
                    "confirming it was sent (same task id %s)",
                    claim.run.job_name,
                    claim.run.task_id,
                )
        return self._store.take_over_claims(runs)

    def _publish(self, entries: Mapping[str, ScheduleEntry]) -> bool:
        """Send what was taken; False when the broker or the lease stopped it (try again in a second).

        A run the broker refused (logged by the send) is tried again at the next look.
        """
        if not self._unsent:
            return True
        producer = self._producer()
        for task_id, run in list(self._unsent.items()):
            entry = entries.get(run.job_name)
            if not _may_run(entry):
                continue  # removed since it was taken: its claim stays unconfirmed, never sent
            assert entry is not None
            if producer is None or not self._lease.may_publish():
                return False
            try:
                sent = self._send(entry, run, producer)
            except BrokerUnavailableError as error:
                logger.warning("celery-orchestra: cannot send the manual run of %s yet: %s", run.job_name, error)
                self._broker_lost()
                return False
            if sent:
                del self._unsent[task_id]
                self._unconfirmed.append(run)
        return True

    def _confirm(self) -> None:
        """Confirm the sent requests in the ledger; no progress: a manual run is not one of the schedule's."""
        if not self._unconfirmed:
            return
        try:
            self._store.save_progress({}, published=self._unconfirmed)
        except LeaseLostError as error:
            self._lease.lost(error)  # the next holder sends them again, with their task ids
            self._unconfirmed = []
            return
        except Exception as error:
            self._lease.outage.failed(error)  # kept, confirmed at a later pass
            return
        self._unconfirmed = []


def _may_run(entry: ScheduleEntry | None) -> bool:
    """A loaded job that is not removed: paused, disabled, done or expired ones run on request too."""
    return entry is not None and entry.state != STATE_REMOVED
