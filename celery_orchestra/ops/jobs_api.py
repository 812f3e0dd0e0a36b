"""Jobs managed at runtime: add, change, remove and read jobs while beat runs, without a restart.

A job added here is *runtime-owned*: it lives in the store alone, and a later start of beat never
marks it removed because the configuration lacks it (see :mod:`celery_orchestra.store.runtime`).
A configured job stays the configuration's: it can be paused, resumed, enabled and disabled at
runtime (:mod:`.api`), never changed or removed here. A name held by the other owner is an error
naming both.

Every value is read by the same reader as ``beat_schedule`` entries and checked by the same rules
(:mod:`celery_orchestra.jobs.beat_schedule`, :mod:`celery_orchestra.jobs.checks`): a schedule may
be anything ``beat_schedule`` takes (a timing string, ``timing(...)``, a crontab, a solar, a
timedelta, a number of seconds), and bad input raises :class:`~celery_orchestra.errors.JobSpecError`
worded as configuration errors are, naming the job, before anything is written.

Like :mod:`.api`, every function takes a ``target`` (a Celery app or an open store), and a running
beat picks each change up within its poll interval (``orchestra_poll_interval``, a second).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from ..errors import ControlError, JobConflictError, JobSpecError, OrchestraError
from ..jobs.beat_schedule import read_entry_fields
from ..jobs.checks import definition_problems
from ..jobs.definitions import JobDefinition
from ..jobs.states import STATE_BROKEN, STATE_REMOVED
from ..jobs.yaml_export import definitions_to_yaml
from ..settings import DEFAULT_MIN_INTERVAL, read_min_interval
from ..store import OWNER_CONFIG, OWNER_RUNTIME, RUNTIME_SOURCE, JobNotFound, JobRecord, JobStore
from .api import (
    JobStatus,
    RunInfo,
    Target,
    default_zone,
    job_statuses,
    no_such_job,
    record_zone,
    store_for,
    with_last_runs,
)

__all__ = [
    "UNCHANGED",
    "JobSpec",
    "add_job",
    "add_jobs",
    "export_jobs",
    "get_job",
    "remove_job",
    "run_job_now",
    "update_job",
]


class _Unchanged:
    """The type of :data:`UNCHANGED`."""

    def __repr__(self) -> str:
        return "UNCHANGED"


#: The default of every :func:`update_job` keyword: that field keeps its value.
UNCHANGED: Final = _Unchanged()


@dataclass(frozen=True)
class JobSpec:
    """One job to add at runtime (see :func:`add_job` for what each field takes)."""

    name: str
    task: str
    schedule: Any
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] | None = None
    options: Mapping[str, Any] | None = None
    timezone: Any = None
    tags: Iterable[str] = ()
    enabled: bool = True

    def fields(self) -> dict[str, Any]:
        """The spec as the keys of a ``beat_schedule`` entry."""
        return {
            "task": self.task,
            "schedule": self.schedule,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "timezone": self.timezone,
            "tags": self.tags,
            "enabled": self.enabled,
        }


def add_job(
    target: Target,
    name: str,
    task: str,
    schedule: Any,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    timezone: Any = None,
    tags: Iterable[str] = (),
    enabled: bool = True,
    default_timezone: str | tzinfo | None = None,
    app: Any = None,
) -> JobStatus:
    """Add the runtime-owned job ``name``, sending ``task`` on ``schedule``; return its status.

    ``schedule`` is anything ``beat_schedule`` takes; ``args``, ``kwargs`` and ``options`` (for
    ``apply_async``) must be JSON; ``timezone`` is an IANA zone (default: the app's); ``tags``
    select it for pause, resume, enable and disable; ``enabled=False`` adds it disabled.
    ``default_timezone`` is only how the returned status shows a job without a zone (as in
    :func:`~.api.list_jobs`).

    Raises :class:`~celery_orchestra.errors.JobSpecError` for bad values and
    :class:`~celery_orchestra.errors.InvalidJobError` when the name is held by a configured job
    or an earlier runtime job (a removed job's name is free: its row and history are taken over).
    When ``target`` is a store, ``app`` is the Celery app whose settings apply
    (``orchestra_min_interval``).
    """
    spec = JobSpec(name, task, schedule, args, kwargs, options, timezone, tags, enabled)
    return add_jobs(target, [spec], default_timezone=default_timezone, app=app)[0]


def add_jobs(
    target: Target, specs: Iterable[JobSpec], *, default_timezone: str | tzinfo | None = None, app: Any = None
) -> list[JobStatus]:
    """Add many runtime-owned jobs in one transaction, all or none (for bulk imports); their
    statuses, in order. Every spec is checked first and every problem reported together."""
    listed = list(specs)
    if not listed:
        raise ControlError("no jobs to add")
    for spec in listed:
        if not isinstance(spec, JobSpec):
            raise ControlError(f"add_jobs takes JobSpec values, got {type(spec).__name__}")
    read, problems = read_entry_fields(((spec.name, spec.fields()) for spec in listed), source=RUNTIME_SOURCE)
    if problems:
        raise JobSpecError(problems)
    definitions = [_definition(spec.name, values) for spec, values in zip(listed, read, strict=True)]
    _check(target if app is None else app, definitions)
    now = _now()
    with store_for(target) as store:
        records = store.add_jobs(definitions, now=now)
    return _statuses(target, records, now, default_timezone)


def update_job(
    target: Target,
    name: str,
    *,
    task: Any = UNCHANGED,
    schedule: Any = UNCHANGED,
    args: Any = UNCHANGED,
    kwargs: Any = UNCHANGED,
    options: Any = UNCHANGED,
    timezone: Any = UNCHANGED,
    tags: Any = UNCHANGED,
    enabled: Any = UNCHANGED,
    default_timezone: str | tzinfo | None = None,
    app: Any = None,
) -> JobStatus:
    """Change only the given fields of the runtime-owned job ``name``; return its new status.

    A new schedule or zone gives the job a new anchor (as a changed configuration does): its next
    fire is worked out afresh from now. ``timezone=None`` makes it follow the app's zone.
    The stored job is read and written in one transaction, so concurrent updates of different
    fields are all kept. Raises :class:`~celery_orchestra.errors.NoSuchJobError`,
    :class:`~celery_orchestra.errors.JobConflictError` for a configured or removed job, and
    :class:`~celery_orchestra.errors.JobSpecError` for bad values, changing nothing. ``app``: as
    for :func:`add_job`.
    """
    given = {
        key: value
        for key, value in (
            ("task", task),
            ("schedule", schedule),
            ("args", args),
            ("kwargs", kwargs),
            ("options", options),
            ("timezone", timezone),
            ("tags", tags),
            ("enabled", enabled),
        )
        if value is not UNCHANGED
    }
    if not given:
        raise ControlError(f"nothing to change in job {name!r}: give at least one field")
    (values,), problems = read_entry_fields([(name, given)], source=RUNTIME_SOURCE)
    if problems:
        raise JobSpecError(problems)

    def change(record: JobRecord) -> JobDefinition:
        if record.broken is not None:
            raise JobConflictError(f"job {name!r} cannot be read ({record.broken}): remove it and add it again")
        definition = _definition(name, {**_record_values(record), **values})
        _check(target if app is None else app, [definition])
        return definition

    with store_for(target) as store:
        _change_outside_the_write(store, name, change)
        now = _now()  # after that first run, which may be slow: a new anchor is when the job changed
        try:
            record = store.update_job(name, change, now=now)
        except JobNotFound as missing:
            raise no_such_job(store, missing.names) from None
    return _statuses(target, [record], now, default_timezone)[0]


def _change_outside_the_write(store: JobStore, name: str, change: Callable[[JobRecord], JobDefinition]) -> None:
    """Run ``change`` once on the job as it stands, before the write transaction runs it again.

    Its checks' first use in a process parses the stored timing, building the timing parser: about
    0.4 s of CPU, which must not be spent holding the write lock (on SQLite every other writer, the
    active beat's claims included, waits for it: 20 ``celery orchestra update`` processes at once
    gave up after their busy timeouts). Its errors are the transaction's to raise, on the record as
    it stands then.
    """
    record = store.get_job(name)
    if record is None or record.owner != OWNER_RUNTIME or record.removed or record.broken is not None:
        return
    with contextlib.suppress(OrchestraError):
        change(record)


def remove_job(target: Target, name: str) -> bool:
    """Remove the runtime-owned job ``name``: beat stops sending it within its poll interval.

    Its run history stays (shown by ``history``) until pruned; ``forget_job`` then deletes the job
    and its history, and the name is free to add again. Returns False when it was removed
    already. Raises :class:`~celery_orchestra.errors.NoSuchJobError`, and
    :class:`~celery_orchestra.errors.JobConflictError` for a configured job.
    """
    with store_for(target) as store:
        try:
            return store.remove_job(name, now=_now())
        except JobNotFound as missing:
            raise no_such_job(store, missing.names) from None


def get_job(target: Target, name: str, *, default_timezone: str | tzinfo | None = None, app: Any = None) -> JobStatus:
    """The status of job ``name`` (configured or runtime-owned, removed ones too).

    With a Celery app (``target`` or ``app``), ``last_run`` is the job's newest recorded run with
    its outcome in the app's result backend (state, finish time, exception).
    """
    with store_for(target) as store:
        record = store.get_job(name)
        if record is None:
            raise no_such_job(store, [name])
        app = app if app is not None else _app_of(target)
        status = _statuses(target if app is None else app, [record], _now(), default_timezone)[0]
        return with_last_runs(store, [status], app)[0]


def _app_of(target: Target) -> Any:
    return target if hasattr(target, "conf") else None


def run_job_now(target: Target, name: str, *, default_timezone: str | tzinfo | None = None) -> RunInfo:
    """Ask the active beat to send one run of job ``name`` now; return the run as history shows it.

    Beat sends it within about its poll interval (``orchestra_poll_interval``), with the returned
    task id and the job's task, args, kwargs and options. It is a manual run, recorded in the run
    ledger (``job_history`` marks it ``manual``, its ``fire_time`` is when it was requested); it
    moves nothing of the schedule: next fire, last run and run count stay as they were. Paused,
    disabled, done and expired jobs run too (the request is explicit); a removed job or one whose
    row cannot be read raises :class:`~celery_orchestra.errors.JobConflictError`, an unknown name
    :class:`~celery_orchestra.errors.NoSuchJobError`. A request is durable: made while no beat
    runs, it is sent when one starts.
    """
    with store_for(target) as store:
        record = store.get_job(name)
        if record is None:
            raise no_such_job(store, [name])
        state = _statuses(target, [record], _now(), default_timezone)[0].state
        if state in (STATE_REMOVED, STATE_BROKEN):
            raise JobConflictError(f"job {name} is {state}: it cannot be run")
        try:
            run = store.request_run(name, task_id=str(uuid.uuid4()), now=datetime.now(UTC))
        except JobNotFound as missing:  # forgotten meanwhile
            raise no_such_job(store, missing.names) from None
    zone = record_zone(record, default_zone(target, default_timezone))
    return RunInfo(
        name,
        run.fire_time.astimezone(zone),
        run.sent_at.astimezone(zone),
        run.task_id,
        confirmed=False,
        manual=True,
    )


def export_jobs(target: Target, *, owner: str | None = None) -> str:
    """The stored jobs (``owner``'s only, if given; never removed ones) as a YAML schedule file
    that re-creates them: what ``celery orchestra export`` prints.

    Operator state (paused) is not part of a job's definition and is not written; ``enabled`` is
    the job's current flag. Raises :class:`~celery_orchestra.errors.ControlError` for an unknown
    owner or a job whose row cannot be read, and
    :class:`~celery_orchestra.errors.ScheduleDataError` naming jobs whose schedule (a crontab, a
    solar) the YAML format cannot hold.
    """
    if owner is not None and owner not in (OWNER_CONFIG, OWNER_RUNTIME):
        raise ControlError(f"unknown owner {owner!r}; expected {OWNER_CONFIG!r} or {OWNER_RUNTIME!r}")
    with store_for(target) as store:
        records = [r for r in store.all_jobs(include_removed=False) if owner is None or r.owner == owner]
        shown_url = store.safe_url
    broken = [record.name for record in records if record.broken is not None]
    if broken:
        raise ControlError(f"cannot export jobs whose stored row cannot be read: {', '.join(broken)}")
    definitions = [
        JobDefinition(r.name, r.task, r.schedule_data, r.timezone, r.args, r.kwargs, r.options, r.tags, r.enabled)
        for r in records
    ]
    whose = "every job" if owner is None else f"the jobs owned by {owner}"
    return definitions_to_yaml(definitions, header=f"celery orchestra export: {whose} in {shown_url}")


def _now() -> datetime:
    # Whole seconds, as beat's start-up: anchors are shown to people and interval jobs fire on
    # the anchor's grid.
    return datetime.now(UTC).replace(microsecond=0)


def _definition(name: str, values: Mapping[str, Any]) -> JobDefinition:
    return JobDefinition(
        name,
        values["task"],
        values["schedule_data"],
        values.get("timezone"),
        tuple(values.get("args", ())),
        values.get("kwargs") or {},
        values.get("options") or {},
        tuple(values.get("tags", ())),
        values.get("enabled", True),
        RUNTIME_SOURCE,
    )


def _record_values(record: JobRecord) -> dict[str, Any]:
    """A stored job's values under the names :func:`read_entry_fields` gives them."""
    return {
        "task": record.task,
        "schedule_data": record.schedule_data,
        "timezone": record.timezone,
        "args": record.args,
        "kwargs": record.kwargs,
        "options": record.options,
        "tags": record.tags,
        "enabled": record.enabled,
    }


def _check(target: Target, definitions: Sequence[JobDefinition]) -> None:
    """What every job must be whatever its source (name length, JSON, apply_async options, the
    app's ``orchestra_min_interval``)."""
    min_interval = read_min_interval(target.conf) if hasattr(target, "conf") else DEFAULT_MIN_INTERVAL
    problems = definition_problems(definitions, min_interval=min_interval)
    if problems:
        raise JobSpecError(problems)


def _statuses(
    target: Target, records: Sequence[JobRecord], now: datetime, default_timezone: str | tzinfo | None
) -> list[JobStatus]:
    zone = default_zone(target, default_timezone)
    app = target if hasattr(target, "conf") else None
    return job_statuses(records, default_zone=zone, app=app, now=now)
