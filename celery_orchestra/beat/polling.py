"""Noticing what other processes wrote to the store, by its change counter, without reloading every job.

Every ``orchestra_poll_interval`` the store's revision counter is read (one tiny query). Only when
it moved are the rows changed since read, and not even then when every new revision was produced
by this beat's own next-fire writer (:meth:`~.next_fires.NextFireWriter.own_revisions`): a start-up
that writes 100,000 next fire times must not read them all back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..errors import StoreError
from ..interfaces import SchedulerStore
from ..store import JobRecord
from .next_fires import NextFireWriter
from .outages import OutageWatch

__all__ = ["StorePoller"]

#: Seconds to wait for a chunk of our own next fire times whose revision is not known yet.
_OWN_WRITE_WAIT: Final = 0.05


class StorePoller:
    """When to look at the store next, and which rows changed since the last look."""

    def __init__(
        self,
        store: SchedulerStore,
        writer: NextFireWriter,
        *,
        interval: float,
        revision: int,
        monotonic: Callable[[], float],
        outage: OutageWatch,
    ) -> None:
        self._store = store
        self._outage = outage
        self._writer = writer
        self._interval = interval
        self._monotonic = monotonic
        self.revision = revision
        #: The newest revision read back as written by someone else. This beat's own next-fire writes
        #: move ``revision`` but not this, so a look for "run now" requests follows others' changes only.
        self.others_revision = revision
        self._next_poll = monotonic() + interval

    @property
    def due(self) -> bool:
        return self._monotonic() >= self._next_poll

    def request(self) -> None:
        """Look at the next pass (another thread changed the store, or this beat became active)."""
        self._next_poll = 0.0

    def sleep_limit(self) -> float:
        """Seconds until the next look."""
        return max(self._next_poll - self._monotonic(), 0.0)

    def changes(self) -> list[JobRecord]:
        """The rows others changed since the last look (often none); schedules the next look.

        An unreachable store is told once (``outage``) and looked at again at the next poll.
        """
        self._next_poll = self._monotonic() + self._interval
        try:
            return self._changes()
        except StoreError as error:
            self._outage.failed(error)
            return []

    def _changes(self) -> list[JobRecord]:
        revision = self._store.current_revision()
        self._outage.answered()
        if revision <= self.revision:
            return []
        if self._writer.writing.is_set():
            self._next_poll = self._monotonic() + _OWN_WRITE_WAIT  # look once it is known to be ours
            return []
        own = self._writer.own_revisions()
        if all(seen in own for seen in range(self.revision + 1, revision + 1)):
            self.revision = revision  # only our own next-fire writes: nothing to read back
            return []
        self.revision, records = self._store.changes_since(self.revision)
        self.others_revision = self.revision
        return records
