"""Keeping the store's ``next_run_at`` true, off the dispatch path.

Nothing in scheduling reads ``next_run_at`` back (beat keeps its own heap); status tables and
``--json`` do. So the writes happen in a thread of their own, in chunks of
:data:`CHUNK` rows with a pause between them: a tick never waits for them, and a claim waits at
most for one chunk's transaction. A job whose stored value is already right is never written: a
restart on an unchanged store writes nothing at all.

The writer remembers the store revisions its own writes produced, so that the scheduler's poll
does not read 100,000 of its own rows back (:meth:`NextFireWriter.own_revisions`).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from ..interfaces import SchedulerStore
from .entries import PendingEntry
from .entry import ScheduleEntry

__all__ = ["CHUNK", "HALT_WAIT", "NextFireWriter"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: Rows per write transaction: small, so that a claim waiting for the write lock waits little.
CHUNK: Final = 200
#: Seconds between two chunks, so that beat's own writes get the lock in between.
PAUSE: Final = 0.005
#: Seconds to wait after a failed write before trying again.
RETRY_AFTER: Final = 5.0
#: Seconds :meth:`NextFireWriter.halt` waits for the chunk in flight: a tick that lost the lease
#: must not wait long on a store that hangs (the thread ends by itself after that chunk).
HALT_WAIT: Final = 5.0


class NextFireWriter:
    """Next fire times waiting to be written, and the thread that writes them."""

    def __init__(self, store: SchedulerStore, *, chunk: int = CHUNK, pause: float = PAUSE) -> None:
        self._store = store
        self._chunk = chunk
        self._pause = pause
        self._pending: dict[str, datetime | None] = {}
        self._own: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Each thread has its own stop event: one that outlived halt()'s wait (its chunk hung on
        # the store) still stops when that chunk ends, even after a new thread was started.
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set while a chunk is being written (its revision is not known yet).
        self.writing = threading.Event()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def queue(self, entries: Iterable[ScheduleEntry | PendingEntry]) -> None:
        """Write these entries' next fire times, unless the row they were loaded from already holds it.

        Entries must be freshly loaded (their ``record`` is the stored row): beat's own later
        writes are the dispatcher's, with the run's progress.
        """
        with self._lock:
            for entry in entries:
                if entry.next_fire_at != entry.stored_next_run_at:
                    self._pending[entry.name] = entry.next_fire_at
                else:
                    self._pending.pop(entry.name, None)  # the store already holds it
            waiting = bool(self._pending)
        if waiting:
            self._wake.set()

    def start(self) -> None:
        """Write in the background from now on (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stopping,), name="orchestra-next-fire-writer", daemon=True
        )
        self._thread.start()

    def stop(self, *, write_pending: bool = True) -> None:
        """Stop the thread after its current chunk, then write what is left here (at shutdown)."""
        self.halt()
        if not write_pending:
            return
        try:
            self.flush()
        except Exception as error:
            logger.error("celery-orchestra: cannot save next fire times in the store (%s)", error)

    def halt(self) -> None:
        """Stop the thread without writing what is left (this beat is no longer the active one)."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout=HALT_WAIT)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def flush(self) -> None:
        """Write everything pending, here and now (raises what the store raises)."""
        while self.write_chunk(len(self) or 1):
            pass

    def own_revisions(self) -> set[int]:
        """The store revisions produced by this writer since the last call (the poll skips them)."""
        with self._lock:
            own, self._own = self._own, set()
        return own

    def write_chunk(self, size: int | None = None) -> bool:
        """Write up to ``size`` (default :data:`CHUNK`) pending rows; False when nothing was pending."""
        with self._lock:
            chunk = dict(itertools.islice(self._pending.items(), size or self._chunk))
        if not chunk:
            return False
        self.writing.set()
        try:
            before = self._store.current_revision()
            changed = self._store.set_next_run(chunk)
            after = self._store.current_revision()
            with self._lock:
                for name, when in chunk.items():
                    if self._pending.get(name, when) == when:
                        self._pending.pop(name, None)
                # A chunk whose values were all stored already writes nothing and moves no
                # revision: one revision between the reads is then someone else's (a pause).
                if changed and after == before + 1:
                    self._own.add(after)
        finally:
            self.writing.clear()
        return True

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            self._wake.wait()
            if stopping.is_set():
                return
            try:
                wrote = self.write_chunk()
            except Exception as error:  # the store is down: keep what is pending, try later
                logger.error("celery-orchestra: cannot save next fire times in the store (%s)", error)
                stopping.wait(RETRY_AFTER)
                continue
            if not wrote:
                self._wake.clear()
                if len(self):  # queued between the empty chunk and the clear
                    self._wake.set()
                continue
            stopping.wait(self._pause)
