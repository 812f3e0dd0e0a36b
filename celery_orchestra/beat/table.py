"""The jobs beat holds, by name, and the fire queue over them: which job is due when.

Beat's entries and its :class:`~.queue.FireQueue` change together or not at all: a job is in the
queue exactly when its entry can fire, at its entry's next fire instant. This class is the one
place that keeps them so; it reads and writes no store (the scheduler writes what it returns).

A due job is taken off the queue when it is handed out (:meth:`JobTable.take_due`) and must be
put back by whoever sends it: :meth:`JobTable.sending` puts back, a second later, every job the
sending did not (it raised half-way), so no job drops out of the queue for good.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from ..store import JobRecord
from .entry import ScheduleEntry
from .loading import EntryLoader, Loaded
from .queue import FireQueue

__all__ = ["RETRY_AFTER_FAILED_PASS", "DueJobs", "JobTable"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: How long a due job waits after a pass that failed while sending it.
RETRY_AFTER_FAILED_PASS: Final = timedelta(seconds=1)


@dataclass(slots=True)
class DueJobs:
    """Jobs taken off the queue to be sent; each is put back by :meth:`requeue` or :meth:`hold`."""

    entries: list[ScheduleEntry]
    table: JobTable
    now: datetime
    requeued: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def requeue(self, entry: ScheduleEntry) -> None:
        """Sent: on to its next fire time."""
        self.requeued.add(entry.name)
        self.table.reschedule(entry, self.now)

    def hold(self, entry: ScheduleEntry, delay: timedelta) -> None:
        """Not sent (or not all of it): due again after ``delay``."""
        self.requeued.add(entry.name)
        self.table.queue.push(entry.name, self.now + delay)


class JobTable:
    """Beat's entries by name and their fire queue (see the module docstring)."""

    def __init__(self, loader: EntryLoader) -> None:
        self.entries: MutableMapping[str, ScheduleEntry] = {}
        self.queue = FireQueue()
        self.loader = loader

    def load_all(self, records: Sequence[JobRecord], now: datetime) -> Loaded:
        """Every stored job, at start-up: entries left to build when first used, the queue filled at once."""
        loaded = self.loader.load_all(records, now)
        self.entries = loaded.entries
        self.queue.reset((job.name, job.next_fire_at) for job in loaded.pending if job.next_fire_at)
        return loaded

    def install(self, record: JobRecord, now: datetime) -> tuple[ScheduleEntry | None, list[str]]:
        """Load or reload one job from its stored row and (re)schedule it; its entry and the newly expired."""
        previous = self.entries.get(record.name)
        expired: list[str] = []
        entry = self.loader.load(record, expired)
        if entry is None:
            self.queue.discard(record.name)
            self.entries.pop(record.name, None)
            return None, expired
        if previous is not None and not previous.runnable and entry.runnable:
            # Resumed or re-enabled: what was missed meanwhile is not replayed.
            entry.resumed_at = max(now, entry.resumed_at or now)
        self.entries[record.name] = entry
        self.reschedule(entry, now)
        return entry, expired

    def reschedule(self, entry: ScheduleEntry, now: datetime) -> None:
        """Queue ``entry`` at its next fire instant, or take it off the queue when it has none."""
        entry.next_fire_at = self.loader.next_fire(entry, now)
        if entry.next_fire_at is None:
            self.queue.discard(entry.name)
        else:
            self.queue.push(entry.name, entry.next_fire_at)

    def reschedule_all(self, now: datetime) -> None:
        """Work every next fire instant out again (the wall clock jumped)."""
        self.queue.clear()
        for entry in self.entries.values():
            self.reschedule(entry, now)

    def take_due(self, now: datetime) -> DueJobs:
        """Take every job due at ``now`` off the queue, earliest first."""
        due: list[ScheduleEntry] = []
        for name in self.queue.pop_due(now.timestamp()):
            entry = self.entries.get(name)
            if entry is not None and entry.runnable and entry.next_fire_at is not None:
                due.append(entry)
        return DueJobs(due, self, now)

    @contextlib.contextmanager
    def sending(self, due: DueJobs) -> Iterator[DueJobs]:
        """Send ``due``: a job neither requeued nor held when this ends is due again a second later."""
        try:
            yield due
        finally:
            left = [entry for entry in due.entries if entry.name not in due.requeued]
            if left:
                logger.warning(
                    "celery-orchestra: the pass ended before %d due job(s) were settled (%s); trying them again "
                    "in %g s",
                    len(left),
                    ", ".join(entry.name for entry in left[:5]) + (", ..." if len(left) > 5 else ""),
                    RETRY_AFTER_FAILED_PASS.total_seconds(),
                )
                for entry in left:
                    self.queue.push(entry.name, due.now + RETRY_AFTER_FAILED_PASS)

    def next_when(self) -> float | None:
        """The UTC timestamp of the earliest queued fire, or ``None``."""
        return self.queue.next_when()
