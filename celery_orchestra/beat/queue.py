"""The fire queue: which job fires next, in O(log n), whatever the number of jobs.

A min-heap of :class:`QueueItem` keyed by the next *nominal* fire instant (a UTC timestamp). Only
jobs that can fire are in it, so an idle tick is a peek at the top. Re-scheduling a job pushes a
new item and bumps the job's generation; an item whose generation is no longer the job's is
stale and dropped when it surfaces (lazy deletion: no O(n) removal from the heap).
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

__all__ = ["FireQueue", "QueueItem"]


class QueueItem(NamedTuple):
    """One heap item: ``when`` (UTC timestamp) orders it, ``order`` breaks ties first-in first-out."""

    when: float
    order: int
    name: str
    generation: int


#: ``QueueItem(*values)`` without the named tuple's Python-level ``__new__`` (a start-up makes one
#: item per job).
_new_item = tuple.__new__
_NAME_OF = operator.itemgetter(2)  # QueueItem.name


class FireQueue:
    """Job names by next fire instant, with O(1) unscheduling (see the module docstring)."""

    def __init__(self) -> None:
        self._heap: list[QueueItem] = []
        self._generation: dict[str, int] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        """Heap items, stale ones included (a bound, not the number of scheduled jobs)."""
        return len(self._heap)

    def push(self, name: str, when: datetime) -> None:
        """Schedule ``name`` at ``when``, replacing wherever it was scheduled before."""
        generation = self._generation.get(name, 0) + 1
        self._generation[name] = generation
        heapq.heappush(self._heap, QueueItem(when.timestamp(), next(self._order), name, generation))

    def reset(self, schedule: Iterable[tuple[str, datetime]]) -> None:
        """Replace everything with ``schedule`` (name, fire instant), each name once: one heapify,
        not a push per job (a start-up schedules every job at once)."""
        order = self._order = itertools.count()
        timestamps: dict[datetime, float] = {}  # jobs loaded together often share their next fire
        items: list[QueueItem] = []
        append = items.append
        new_item = _new_item
        for name, when in schedule:
            timestamp = timestamps.get(when)
            if timestamp is None:
                timestamp = timestamps[when] = when.timestamp()
            append(new_item(QueueItem, (timestamp, next(order), name, 1)))
        heapq.heapify(items)
        self._heap = items
        self._generation = dict.fromkeys(map(_NAME_OF, items), 1)

    def discard(self, name: str) -> None:
        """Unschedule ``name`` (its item turns stale); a no-op if it is not scheduled."""
        self._generation[name] = self._generation.get(name, 0) + 1

    def clear(self) -> None:
        """Unschedule everything."""
        self._heap = []
        self._generation = {}

    def pop_due(self, horizon: float) -> list[str]:
        """Take every job due at or before the UTC timestamp ``horizon``, earliest first."""
        heap = self._heap
        due: list[str] = []
        while heap and heap[0].when <= horizon:
            item = heapq.heappop(heap)
            if self._generation.get(item.name) != item.generation:
                continue
            self._generation[item.name] = item.generation + 1  # consumed: a re-push is fresh
            due.append(item.name)
        return due

    def next_when(self) -> float | None:
        """The UTC timestamp of the earliest scheduled job, or ``None`` when nothing is scheduled."""
        heap = self._heap
        while heap and self._generation.get(heap[0].name) != heap[0].generation:
            heapq.heappop(heap)
        return heap[0].when if heap else None
