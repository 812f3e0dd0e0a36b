"""Every stored job, kept current from the change counter, for a reader that lives long.

The HTTP API answers the same listing many times a minute (the dashboard refreshes every 2 s).
A state filter needs every job's row, and decoding 10,000 rows costs about 0.2 s a request. The
store numbers each write (``revision``), as beat's poll uses it: after one full read, only the rows
written since are read again (``JobStore.changes_since``). A deleted row (``forget``) sends no
changed row, so whenever the counter moved, the number of stored jobs is compared with the
snapshot's and a difference reads everything again. A CLI command runs once and has no use for it.
"""

from __future__ import annotations

import threading

from ..store import JobRecord, JobStore

__all__ = ["JobsSnapshot"]


class JobsSnapshot:
    """The jobs of one store as of its last look, removed ones included, by name (thread-safe)."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._by_name: dict[str, JobRecord] = {}
        self._revision: int | None = None
        self._sorted: list[JobRecord] | None = None

    def jobs(self, *, include_removed: bool = True) -> list[JobRecord]:
        """Every stored job now, as :meth:`JobStore.all_jobs` would return it."""
        with self._lock:
            records = self._current()
        return records if include_removed else [record for record in records if not record.removed]

    def _current(self) -> list[JobRecord]:
        if self._revision is None:
            self._read_everything()
        else:
            revision, changed = self._store.changes_since(self._revision)
            if revision != self._revision:
                for record in changed:
                    self._by_name[record.name] = record
                self._revision = revision
                self._sorted = None
                if self._store.count_jobs() != len(self._by_name):  # a row was deleted
                    self._read_everything()
        if self._sorted is None:
            self._sorted = [self._by_name[name] for name in sorted(self._by_name)]
        return self._sorted

    def _read_everything(self) -> None:
        # The counter first: a write committing meanwhile is read again next time, never missed.
        revision = self._store.current_revision()
        self._by_name = {record.name: record for record in self._store.all_jobs(include_removed=True)}
        self._revision = revision
        self._sorted = None
