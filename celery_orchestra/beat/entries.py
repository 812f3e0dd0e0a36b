"""The scheduler's jobs by name (Celery's ``Scheduler.schedule``), each entry built when first used.

At start-up beat needs only what its queue needs of each job: its schedule, whether it may fire and
its next fire instant. A :class:`~.entry.ScheduleEntry` (Celery's fields and the job's record)
costs more than all of that together, and most of 100,000 jobs are not due for a while; so each
job starts as a :class:`PendingEntry`, and its entry is built the first time it is needed: when
the job is due, reloaded or re-evaluated, or looked at (``schedule[name]``, iterating).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import NamedTuple

from celery.schedules import BaseSchedule

from ..store import JobRecord
from ..store.job_columns import JobColumns
from .entry import ScheduleEntry

__all__ = ["Entries", "PendingEntry"]


class PendingEntry(NamedTuple):
    """A loaded job whose entry is not built yet: its live schedule, what was worked out, and where
    its record is (``jobs[job_index]``, built with the entry: most jobs' records are never needed
    before they are due)."""

    name: str
    schedule: BaseSchedule
    #: ``None`` when the job does not fire (any more), or may not (paused, disabled...).
    next_fire_at: datetime | None
    expired: bool
    #: The next fire time stored with the job when it was loaded.
    stored_next_run_at: datetime | None
    jobs: JobColumns
    job_index: int

    @property
    def record(self) -> JobRecord:
        """The job's stored record (built on each call)."""
        return self.jobs[self.job_index]


_NAME_OF = operator.itemgetter(0)  # PendingEntry.name, in C


class Entries(MutableMapping[str, ScheduleEntry]):
    """Jobs by name; ``build`` turns a pending job into its entry, once (see the module docstring)."""

    def __init__(self, build: Callable[[PendingEntry], ScheduleEntry]) -> None:
        self._built: dict[str, ScheduleEntry] = {}
        self._pending: dict[str, PendingEntry] = {}
        self._build = build

    @property
    def pending(self) -> Mapping[str, PendingEntry]:
        """The jobs whose entry is not built yet."""
        return self._pending

    def add_pending(self, pending: PendingEntry) -> None:
        name = pending.name
        self._built.pop(name, None)
        self._pending[name] = pending

    def extend_pending(self, pending: Sequence[PendingEntry]) -> None:
        """:meth:`add_pending` for many jobs at once (a start-up's every job)."""
        names = list(map(_NAME_OF, pending))
        if self._built:
            for name in names:
                self._built.pop(name, None)
        self._pending.update(zip(names, pending, strict=True))

    def __getitem__(self, name: str) -> ScheduleEntry:
        entry = self._built.get(name)
        if entry is None:
            pending = self._pending.pop(name)  # KeyError for an unknown name, as a dict raises
            entry = self._built[name] = self._build(pending)
        return entry

    def __setitem__(self, name: str, entry: ScheduleEntry) -> None:
        self._pending.pop(name, None)
        self._built[name] = entry

    def __delitem__(self, name: str) -> None:
        if self._pending.pop(name, None) is None:
            del self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._pending

    def __iter__(self) -> Iterator[str]:
        # Copies: looking at a pending job while iterating moves it to the built ones.
        return itertools.chain(list(self._built), list(self._pending))

    def __len__(self) -> int:
        return len(self._built) + len(self._pending)

    def __repr__(self) -> str:
        return f"<Entries: {len(self._built)} built, {len(self._pending)} pending>"
