"""Keeping the store's ``next_run_at`` true, off the dispatch path.

Nothing in scheduling reads ``next_run_at`` back (beat keeps its own heap); status tables and
``--json`` do. So after start-up, when 100,000 jobs may have a new next fire time, the writes are
spread over the ticks that follow, each tick spending at most :data:`TICK_BUDGET` seconds on
them, and a job whose stored value is already right is never written: a restart on an unchanged
store writes nothing at all.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final

from ..interfaces import SchedulerStore
from .entry import ScheduleEntry

__all__ = ["TICK_BUDGET", "NextFireWriter"]

#: Seconds one tick may spend writing next fire times (the chunk size adapts to the database).
TICK_BUDGET: Final = 0.002
_FIRST_CHUNK: Final = 50
_LARGEST_CHUNK: Final = 5_000


class NextFireWriter:
    """Next fire times waiting to be written, and the writing, a time-boxed chunk at a time."""

    def __init__(
        self, store: SchedulerStore, *, budget: float = TICK_BUDGET, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._store = store
        self._budget = budget
        self._clock = clock
        self._pending: dict[str, datetime | None] = {}
        self._chunk = _FIRST_CHUNK

    def __len__(self) -> int:
        return len(self._pending)

    def queue(self, entries: Iterable[ScheduleEntry]) -> None:
        """Write these entries' next fire times, unless the row they were loaded from already holds it.

        Entries must be freshly loaded (their ``record`` is the stored row): beat's own later
        writes are the dispatcher's, with the run's progress.
        """
        for entry in entries:
            if entry.next_fire_at != entry.record.next_run_at:
                self._pending[entry.name] = entry.next_fire_at
            else:
                self._pending.pop(entry.name, None)  # the store already holds it

    def flush(self, revision: int, *, everything: bool = False) -> int:
        """Write a chunk (or, with ``everything``, all) of what is pending; return the revision seen.

        ``revision`` is the store revision the scheduler has read up to. When nobody else wrote in
        between, the revision of this write is returned instead, so that the scheduler's poll does
        not read its own rows back.
        """
        if not self._pending:
            return revision
        size = len(self._pending) if everything else self._chunk
        chunk = dict(itertools.islice(self._pending.items(), size))
        before = self._store.current_revision()
        started = self._clock()
        self._store.set_next_run(chunk)
        elapsed = self._clock() - started
        for name in chunk:
            del self._pending[name]
        if not everything:
            # Aim the next chunk at the budget, growing or shrinking by at most 2x per tick.
            rate = len(chunk) / max(elapsed, 1e-6)
            self._chunk = max(_FIRST_CHUNK, min(_LARGEST_CHUNK, int(rate * self._budget), self._chunk * 2))
        if before == revision and self._store.current_revision() == before + 1:
            return before + 1
        return revision

    @property
    def backlog(self) -> bool:
        """Whether writes are waiting (beat then ticks more often, to drain them soon)."""
        return bool(self._pending)
