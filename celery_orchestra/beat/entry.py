"""``ScheduleEntry``: one job as beat holds it: Celery's entry fields, the stored record, run state.

Configuration and operator state (tags, paused, enabled, removed, anchor...) are read from the
:class:`~celery_orchestra.store.JobRecord` the entry was built from, not copied: the record is the
one mapping of the job's fields. What beat changes while running lives on the entry itself:
``last_fire_at``, ``next_fire_at``, ``total_run_count``, ``resumed_at`` and ``expired``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from celery import beat
from celery.schedules import BaseSchedule, schedstate
from celery.utils.time import humanize_seconds

from ..jobs.states import STATE_RUNNING, has_finished, job_state
from ..store import JobRecord
from ..timing.schedule import NEVER_SECONDS
from ..timing.zones import log_instant

__all__ = ["ScheduleEntry", "entry_state"]

#: Fields beat itself writes (or the store stamps): a changed row that differs from what an entry
#: knows only in these is beat's own write coming back, not an edit to act on.
_BOOKKEEPING: Final = frozenset({"last_run_at", "total_run_count", "next_run_at", "expired", "revision", "updated_at"})
_EDITABLE: Final = tuple(name for name in JobRecord._fields if name not in _BOOKKEEPING)


class ScheduleEntry(beat.ScheduleEntry):  # type: ignore[misc]
    """A beat entry that also knows the job's orchestra state.

    Celery's ``_next_instance`` rebuilds an entry from ``vars(entry)``, so every extra attribute is
    also a keyword of ``__init__``. ``last_run_at`` keeps Celery's meaning (the reference for
    ``is_due``); ``last_fire_at`` is the nominal instant of the last run, ``None`` before the first.
    """

    def __init__(
        self,
        name: str | None = None,
        task: str | None = None,
        last_run_at: datetime | None = None,
        total_run_count: int | None = None,
        schedule: Any = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        relative: bool = False,
        app: Any = None,
        *,
        record: JobRecord,
        last_fire_at: datetime | None = None,
        next_fire_at: datetime | None = None,
        resumed_at: datetime | None = None,
        expired: bool = False,
    ) -> None:
        super().__init__(
            name=name,
            task=task,
            last_run_at=last_run_at,
            total_run_count=total_run_count,
            schedule=schedule,
            args=args,
            kwargs=kwargs,
            options=options,
            relative=relative,
            app=app,
        )
        self.record = record
        self.last_fire_at = last_fire_at
        self.next_fire_at = next_fire_at
        self.resumed_at = resumed_at
        self.expired = expired

    @classmethod
    def from_record(cls, record: JobRecord, schedule: BaseSchedule, app: Any) -> ScheduleEntry:
        """The entry for a stored job; ``schedule`` is its live Celery schedule."""
        return cls(
            name=record.name,
            task=record.task,
            last_run_at=record.last_run_at or record.anchor,
            total_run_count=record.total_run_count,
            schedule=schedule,
            args=record.args,
            kwargs=record.kwargs,
            options=record.options,
            app=app,
            record=record,
            last_fire_at=record.last_run_at,
            next_fire_at=record.next_run_at,
            resumed_at=record.resumed_at,
            expired=record.expired,
        )

    # ---- the stored job's fields

    @property
    def tags(self) -> tuple[str, ...]:
        return self.record.tags

    @property
    def enabled(self) -> bool:
        return self.record.enabled

    @property
    def paused(self) -> bool:
        return self.record.paused

    @property
    def removed(self) -> bool:
        return self.record.removed

    @property
    def max_runs(self) -> int | None:
        return self.record.max_runs

    @property
    def anchor(self) -> datetime:
        return self.record.anchor

    @property
    def timezone(self) -> str | None:
        return self.record.timezone

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def source(self) -> str:
        return self.record.source

    @property
    def schedule_data(self) -> dict[str, Any]:
        return self.record.schedule_data

    @property
    def stored_next_run_at(self) -> datetime | None:
        """The next fire time stored with the job when it was loaded."""
        return self.record.next_run_at

    # ---- derived state

    @property
    def finished(self) -> bool:
        record = self.record
        return has_finished(record.max_runs, self.last_fire_at, record.anchor)

    @property
    def state(self) -> str:
        return entry_state(self.record, expired=self.expired, last_fire_at=self.last_fire_at)

    @property
    def runnable(self) -> bool:
        return self.state == STATE_RUNNING

    def reflects(self, record: JobRecord) -> bool:
        """True when a changed row holds nothing this entry does not already know (beat's own write)."""
        if (self.total_run_count, self.last_fire_at, self.expired) != (
            record.total_run_count,
            record.last_run_at,
            record.expired,
        ):
            return False
        mine = self.record
        return all(getattr(mine, name) == getattr(record, name) for name in _EDITABLE)

    def describe_next_fire(self, now: datetime) -> str:
        """The start-up log line: when the job runs next, in its own zone, or why it does not."""
        if self.next_fire_at is None:
            return f"celery-orchestra: job {self.name} ({self.task}) is {self.state}; it will not be sent"
        wait = (self.next_fire_at - now).total_seconds()
        if wait >= 1:
            relative = humanize_seconds(wait, prefix="in ")
        elif wait > -1:
            relative = "due now"
        else:
            relative = f"overdue by {humanize_seconds(-wait)}"
        return (
            f"celery-orchestra: job {self.name} ({self.task}) scheduled to run at "
            f"{log_instant(self.next_fire_at, self.schedule.tz)} ({relative})"
        )

    def is_due(self) -> schedstate:
        if not self.runnable:
            return schedstate(False, NEVER_SECONDS)
        return super().is_due()

    def __repr__(self) -> str:
        return f"<ScheduleEntry: {self.name} {self.task} {self.schedule!r} state={self.state}>"


def entry_state(record: JobRecord, *, expired: bool, last_fire_at: datetime | None) -> str:
    """The state of a job loaded from ``record`` that beat has since marked ``expired`` or run up
    to ``last_fire_at`` (an entry's, and a pending entry's before it is built)."""
    return job_state(
        removed=record.removed,
        enabled=record.enabled,
        paused=record.paused,
        expired=expired,
        finished=has_finished(record.max_runs, last_fire_at, record.anchor),
    )
