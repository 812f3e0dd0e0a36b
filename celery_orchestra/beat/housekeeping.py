"""Keeping the run ledger from growing for ever, off the dispatch path.

A job that fires every second adds 86,400 ledger rows a day. The active beat deletes settled runs
(sent, or abandoned one-offs) older than ``orchestra_run_retention`` in a thread of its own, a
small batch per transaction with a pause between batches, so a claim waits at most for one batch.
Unconfirmed claims are never deleted: the next holder of the lease must still recover them. Rows
of beats that stopped long ago are forgotten too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from ..interfaces import SchedulerStore

__all__ = ["PRUNE_EVERY", "Housekeeper"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: Seconds between two prunings of the ledger.
PRUNE_EVERY: Final = 600.0
#: Seconds between two batches of one pruning.
_BATCH_PAUSE: Final = 0.05
#: Beats that have not ticked for this long are dropped from the registry.
FORGET_BEATS_AFTER: Final = timedelta(days=7)


class Housekeeper:
    """A thread that prunes the ledger every :data:`PRUNE_EVERY` seconds while this beat is active."""

    def __init__(
        self,
        store: SchedulerStore,
        retention: float | None,
        *,
        active: Callable[[], bool],
        now: Callable[[], datetime],
        every: float = PRUNE_EVERY,
    ) -> None:
        self._store = store
        self._retention = None if retention is None else timedelta(seconds=retention)
        self._active = active
        self._now = now
        self._every = every
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="orchestra-housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join(timeout=10)

    def prune(self) -> int:
        """Delete what is past retention, batch by batch, while this beat is active; return how many runs."""
        deleted = 0
        if self._retention is not None:
            before = self._now() - self._retention
            while self._active() and not self._stopping.is_set():
                batch = self._store.prune_runs(before, batches=1)
                deleted += batch
                if batch == 0:
                    break
                self._stopping.wait(_BATCH_PAUSE)
            if deleted:
                logger.info("celery-orchestra: deleted %d run(s) fired before %s from the ledger", deleted, before)
        if self._active():
            self._store.forget_stopped_beats(self._now() - FORGET_BEATS_AFTER)
        return deleted

    def _run(self) -> None:
        while not self._stopping.wait(self._every):
            try:
                self.prune()
            except Exception as error:  # the store is down, or the lease moved: try next time
                logger.warning("celery-orchestra: could not prune the run ledger (%s)", error)
