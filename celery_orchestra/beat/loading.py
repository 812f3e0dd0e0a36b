"""Stored records to live entries: each job's Celery schedule and its next nominal fire instant.

Within one batch (a start-up loading every job), jobs with the same schedule data, zone and anchor
share one schedule object (schedules are immutable values), and jobs sharing a schedule and a
last run share the computation of their next fire: at 100,000 jobs, thousands usually do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Final, NamedTuple

from celery.schedules import BaseSchedule

from ..jobs.codec import data_key, schedule_from_data
from ..jobs.definitions import JobDefinition
from ..jobs.states import STATE_RUNNING, has_finished, job_state
from ..store import JobRecord
from ..store.job_columns import JobColumns
from ..timing.firing import next_fire
from ..timing.schedule import Timing
from ..timing.zones import resolve_zone
from .entries import Entries, PendingEntry
from .entry import ScheduleEntry

__all__ = ["EntryLoader", "Loaded", "log_broken", "log_next_fires"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: What decides a job's schedule, state and next fire at start-up besides its schedule data (see
#: :meth:`EntryLoader.pending_entries`), in the order ``_work_out`` unpacks them.
_SHAPE_FIELDS: Final = (
    "timezone",
    "anchor",
    "last_run_at",
    "resumed_at",
    "max_runs",
    "removed",
    "enabled",
    "paused",
    "expired",
)


class _WorkedOut(NamedTuple):
    """What :meth:`EntryLoader.pending_entries` works out once per shape of job."""

    schedule: BaseSchedule
    next_fire_at: datetime | None
    expired: bool
    #: Newly found expired (a one-off whose moment had passed when it was registered).
    passed: bool


@dataclass
class _Batch:
    schedules: dict[tuple[Any, ...], BaseSchedule] = field(default_factory=dict)
    #: The same, by the identity of the data (jobs read from one configuration usually share
    #: their data object): each value keeps its data alive, so that no id is reused meanwhile.
    by_identity: dict[tuple[int, str | None, datetime], tuple[object, BaseSchedule]] = field(default_factory=dict)
    next_fires: dict[tuple[Any, ...], datetime | None] = field(default_factory=dict)


class Loaded(NamedTuple):
    """Every stored job at start-up: the entries (each built when first used), the pending jobs
    in stored order, and the one-offs found expired."""

    entries: Entries
    pending: list[PendingEntry]
    expired: list[str]


def log_next_fires(entries: Mapping[str, ScheduleEntry], now: datetime) -> None:
    """One line per job at start-up, at INFO: when it runs next (builds every entry: INFO only)."""
    if logger.isEnabledFor(logging.INFO):
        for entry in entries.values():
            logger.info("%s", entry.describe_next_fire(now))


class EntryLoader:
    """Builds a scheduler's entries; ``nowfun`` is the scheduler's clock, which the schedules read
    (Celery's crontab before 5.5 compares its last run with "now", and tests drive time)."""

    def __init__(self, app: Any, *, app_zone: tzinfo, nowfun: Any) -> None:
        self._app = app
        self._app_zone = app_zone
        self._nowfun = nowfun
        self._batch: _Batch | None = None

    def start_batch(self) -> None:
        """Share schedules and next fires between the entries loaded until :meth:`end_batch`."""
        self._batch = _Batch()

    def end_batch(self) -> None:
        self._batch = None

    def entry(self, record: JobRecord) -> ScheduleEntry:
        """The entry of a stored job; raises what the schedule data raises when it is unusable."""
        schedule = self._schedule(record.schedule_data, record.timezone, record.anchor)
        return ScheduleEntry.from_record(record, schedule, self._app)

    def load(self, record: JobRecord, expired: list[str]) -> ScheduleEntry | None:
        """The entry of a stored job (its name added to ``expired`` if it just expired); ``None``,
        logged, if the row cannot be loaded: a row edited into nonsense must not stop the others."""
        if record.broken is not None:
            _log_unloadable(record.name, record.broken)
            return None
        try:
            entry = self.entry(record)
        except Exception as error:
            _log_unloadable(record.name, error)
            return None
        if self.expire_if_passed(entry):
            expired.append(entry.name)
        return entry

    def load_all(self, records: Sequence[JobRecord], now: datetime) -> Loaded:
        """Every stored job as a pending entry (see :meth:`pending_entries`), in one :class:`Entries`."""
        entries = Entries(self.build)
        expired: list[str] = []
        if not isinstance(records, JobColumns):  # columns hold readable jobs only
            log_broken({record.name: record.broken for record in records if record.broken is not None})
            records = [record for record in records if record.broken is None]
        pending = self.pending_entries(JobColumns.of(records), now, expired)
        entries.extend_pending(pending)
        return Loaded(entries, pending, expired)

    def pending(self, record: JobRecord, now: datetime, expired: list[str]) -> PendingEntry | None:
        """What beat's queue needs of a stored job, its entry left to :meth:`build` (see
        :mod:`.entries`); otherwise as :meth:`load`."""
        if record.broken is not None:
            _log_unloadable(record.name, record.broken)
            return None
        found = self.pending_entries(JobColumns.of_rows([record]), now, expired)
        return found[0] if found else None

    def pending_entries(self, jobs: JobColumns, now: datetime, expired: list[str]) -> list[PendingEntry]:
        """:meth:`pending` for every job in ``jobs`` (a start-up's), read column by column: no
        job's record is built.

        Jobs alike in everything that decides their schedule, state and next fire (the same
        schedule data object, zone, anchor, last run...) are worked out once: at start-up
        thousands usually are.
        """
        names = jobs.column("name")
        datas = jobs.column("schedule_data")
        stored_fires = jobs.column("next_run_at")
        shapes = zip(map(id, datas), *(jobs.column(name) for name in _SHAPE_FIELDS), strict=True)
        worked_out: dict[tuple[Any, ...], _WorkedOut | Exception] = {}
        pending: list[PendingEntry] = []
        append = pending.append
        for index, shape in enumerate(shapes):
            known = worked_out.get(shape)
            if known is None:
                known = worked_out[shape] = self._work_out(datas[index], shape, now)
            name = names[index]
            if isinstance(known, Exception):
                _log_unloadable(name, known)
                continue
            schedule, fire, is_expired, passed = known
            if passed:
                _log_passed(name, schedule)
                expired.append(name)
            append(PendingEntry(name, schedule, fire, is_expired, stored_fires[index], jobs, index))
        return pending

    def _work_out(self, data: dict[str, Any], shape: tuple[Any, ...], now: datetime) -> _WorkedOut | Exception:
        """The schedule, next fire and expiry of a job of ``shape`` (``id(data)``, then the
        :data:`_SHAPE_FIELDS`), or the error that makes it unloadable."""
        _, timezone, anchor, last_fire_at, resumed_at, max_runs, removed, enabled, paused, is_expired = shape
        try:
            schedule = self._schedule(data, timezone, anchor)
        except Exception as error:
            return error
        finished = has_finished(max_runs, last_fire_at, anchor)
        passed = self._has_passed(schedule, expired=is_expired, finished=finished)
        is_expired = is_expired or passed
        fire = None
        if (
            job_state(removed=removed, enabled=enabled, paused=paused, expired=is_expired, finished=finished)
            == STATE_RUNNING
        ):
            fire = self._next_fire_of(schedule, last_fire_at, anchor, resumed_at, now)
        return _WorkedOut(schedule, fire, is_expired, passed)

    def build(self, pending: PendingEntry) -> ScheduleEntry:
        """The entry of a :meth:`pending` job, as :meth:`load` and :meth:`next_fire` would have made it."""
        entry = ScheduleEntry.from_record(pending.record, pending.schedule, self._app)
        entry.next_fire_at = pending.next_fire_at
        entry.expired = pending.expired
        return entry

    def first_fire(self, definition: JobDefinition, anchor: datetime) -> datetime | None:
        """The first fire of a job registered at ``anchor`` (for the store to write with its row).

        Computed as :meth:`next_fire` will compute it for the job's entry (same schedule object,
        same memo), so that the entry finds its stored value right and nothing is written again.
        """
        try:
            schedule = self._schedule(definition.schedule_data, definition.timezone, anchor)
        except Exception:  # left to entry(), which logs and skips the job
            return None
        return self._next_fire_of(schedule, None, anchor, None, anchor)

    def next_fire(self, entry: ScheduleEntry, now: datetime) -> datetime | None:
        """The entry's next nominal fire instant (see :func:`~celery_orchestra.timing.firing.next_fire`);
        ``None`` when it does not fire (any more), or may not (paused, disabled...)."""
        if not entry.runnable:
            return None
        return self._next_fire_of(entry.schedule, entry.last_fire_at, entry.anchor, entry.resumed_at, now)

    def _next_fire_of(
        self,
        schedule: BaseSchedule,
        last_fire_at: datetime | None,
        anchor: datetime,
        resumed_at: datetime | None,
        now: datetime,
    ) -> datetime | None:
        batch = self._batch
        key = (id(schedule), last_fire_at, resumed_at)
        if batch is not None and key in batch.next_fires:
            return batch.next_fires[key]
        fire = next_fire(schedule, last_fire_at=last_fire_at, anchor=anchor, resumed_at=resumed_at, now=now)
        if batch is not None:
            batch.next_fires[key] = fire
        return fire

    def _schedule(self, data: dict[str, Any], timezone: str | None, anchor: datetime) -> BaseSchedule:
        batch = self._batch
        if batch is None:
            return self._schedule_from(data, timezone, anchor)
        identity = (id(data), timezone, anchor)
        known = batch.by_identity.get(identity)
        if known is not None:
            return known[1]
        shape = data_key(data)
        if shape is None:
            return self._schedule_from(data, timezone, anchor)
        key = (shape, timezone, anchor)
        schedule = batch.schedules.get(key)
        if schedule is None:
            schedule = batch.schedules[key] = self._schedule_from(data, timezone, anchor)
        batch.by_identity[identity] = (data, schedule)
        return schedule

    def expire_if_passed(self, entry: ScheduleEntry) -> bool:
        """Mark (and log) a one-off whose moment had passed when it was registered; True if it was."""
        if self._passed(entry.name, entry.schedule, expired=entry.expired, finished=entry.finished):
            entry.expired = True
            return True
        return False

    @staticmethod
    def _has_passed(schedule: BaseSchedule, *, expired: bool, finished: bool) -> bool:
        """Whether a job is a one-off, not yet marked expired nor run, whose moment had passed when it
        was registered (it will never run)."""
        # The schedule's own test first: it is one comparison for every job that is not a one-off.
        return isinstance(schedule, Timing) and schedule.is_expired and not expired and not finished

    def _passed(self, name: str, schedule: BaseSchedule, *, expired: bool, finished: bool) -> bool:
        """:meth:`_has_passed`, logged when true."""
        if not self._has_passed(schedule, expired=expired, finished=finished):
            return False
        _log_passed(name, schedule)
        return True

    def _schedule_from(self, data: dict[str, Any], timezone: str | None, anchor: datetime) -> BaseSchedule:
        zone = resolve_zone(timezone) if timezone else self._app_zone
        return schedule_from_data(data, tz=zone, anchor=anchor, app=self._app, nowfun=self._nowfun)


def _log_passed(name: str, schedule: BaseSchedule) -> None:
    logger.warning(
        "celery-orchestra: job %s is expired: %r had already passed when it was registered; it will not run",
        name,
        getattr(schedule, "expression", schedule),
    )


def log_broken(broken: Mapping[str, str]) -> None:
    """One line per job whose stored row cannot be read (see ``JobRecord.broken``): it is skipped."""
    for name, reason in broken.items():
        _log_unloadable(name, reason)


def _log_unloadable(name: str, error: Exception | str) -> None:
    logger.error("celery-orchestra: job %r cannot be loaded from the store and is skipped: %s", name, error)
