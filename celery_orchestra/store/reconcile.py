"""Making the stored jobs match the configuration, in one transaction.

* New jobs are inserted with ``anchor = now``.
* A job whose schedule or time zone changed gets ``anchor = now`` and ``next_run_at = None`` (to
  be recomputed) but keeps ``last_run_at`` and its run count.
* Other changed fields are updated in place; ``enabled`` only when the configured value changed
  since the last reconcile (so an operator's ``set_enabled`` survives).
* Jobs missing from the configuration are marked removed (kept, never sent: a tombstone that
  change detection can see); a removed job that is configured again is restored.
* ``paused`` is never touched: it is operator state.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, Text, cast, select
from sqlalchemy.engine import Connection

from ..errors import InvalidJobError, OrchestraError
from ..jobs.codec import data_key, max_runs_of_kind
from ..jobs.definitions import JobDefinition
from ..timing.zones import require_aware
from .database import Database
from .records import JOB_FIELDS, JobRecord, ReconcileReport
from .sql import JSON_COLUMNS, bump_revision, insert_jobs, update_many
from .tables import JOBS, NAME_LENGTH

__all__ = ["FirstFire", "WantedJob", "prepare_definitions", "reconcile"]

log = logging.getLogger(__name__)

#: Fields of a definition whose change moves the job's anchor (its timing changed).
_TIMING_COLUMNS: Final = ("schedule_data", "timezone")
#: Other configured fields, updated in place when they change.
_CONFIG_COLUMNS: Final = ("task", "kind", "args", "kwargs", "options", "tags", "source", "max_runs")
#: What reconcile reads of every stored job, in :data:`JOB_FIELDS` order (a row is a record's
#: values), with the JSON columns as their text: an unchanged job costs a tuple comparison, not a
#: JSON decode.
_STORED_QUERY: Final = select(
    *(cast(JOBS.c[name], Text).label(name) if name in JSON_COLUMNS else JOBS.c[name] for name in JOB_FIELDS)
)
_POSITION: Final = {name: index for index, name in enumerate(JOB_FIELDS)}
_TIMING_OF: Final = operator.itemgetter(*(_POSITION[name] for name in _TIMING_COLUMNS))
_CONFIG_OF: Final = operator.itemgetter(*(_POSITION[name] for name in _CONFIG_COLUMNS))
_CONFIGURED_ENABLED: Final = _POSITION["configured_enabled"]
#: The record fields a configured job takes from its definition, in ``WantedJob.config`` order.
_CONFIG_FIELDS: Final = (
    "task",
    "schedule_data",
    "timezone",
    "kind",
    "args",
    "kwargs",
    "options",
    "tags",
    "source",
    "max_runs",
)
_CONFIG_POSITIONS: Final = tuple(_POSITION[name] for name in _CONFIG_FIELDS)
_REMOVED: Final = _POSITION["removed"]


@dataclass(frozen=True, slots=True)
class WantedJob:
    """A definition reduced to the column values it should have in the store.

    ``config`` holds the Python values (what the job's record carries), ``texts`` the JSON
    columns as the JSON text reconcile writes and compares; ``timing`` and ``configured`` are
    the stored columns' values to compare, in :data:`_TIMING_COLUMNS` and :data:`_CONFIG_COLUMNS`
    order.
    """

    definition: JobDefinition
    config: dict[str, Any]
    texts: dict[str, str]
    timing: tuple[Any, ...]
    configured: tuple[Any, ...]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def enabled(self) -> bool:
        return self.definition.enabled


#: The first nominal fire of a job registered, or retimed, at an anchor (``None``: never). The
#: store cannot work it out (it knows no timings); a scheduler that passes it saves writing a
#: next fire time into every new row afterwards.
FirstFire = Callable[[JobDefinition, datetime], datetime | None]


def reconcile(
    db: Database, definitions: Sequence[JobDefinition], *, now: datetime, first_fire: FirstFire | None = None
) -> ReconcileReport:
    """Make the stored jobs match ``definitions`` (see the module docstring).

    ``first_fire``, when given, fills ``next_run_at`` of the jobs this inserts or retimes (and that
    may run: not disabled, not paused).

    Raises :class:`~celery_orchestra.errors.InvalidJobError` (before writing anything) for
    duplicate names, names or tasks that are too long, and arguments that are not JSON.
    """
    now = require_aware(now, "reconcile(now=...)")
    wanted = prepare_definitions(definitions)

    def work(connection: Connection) -> tuple[ReconcileReport, bool]:
        revision = bump_revision(connection, db.safe_url)
        stored = {row.name: row for row in connection.execute(_STORED_QUERY)}
        plan = _Plan.of(wanted, stored, now, revision, first_fire)
        insert_jobs(connection, plan.inserts)
        update_many(connection, plan.updates)
        wrote = bool(plan.inserts or plan.updates)
        return plan.report(wanted, stored, revision if wrote else None), wrote

    report = db.run("reconcile the configured jobs", work, write=True)
    log.info(
        "reconciled %d configured jobs with %s: %d added, %d restored, %d retimed, %d changed, %d removed",
        len(wanted),
        db.safe_url,
        len(report.added),
        len(report.restored),
        len(report.retimed),
        len(report.changed),
        len(report.removed),
    )
    return report


@dataclass
class _Plan:
    """What one reconcile writes, and how it classifies every name."""

    added: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    retimed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    already_removed: list[str] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        wanted: Sequence[WantedJob],
        stored: Mapping[str, Row[Any]],
        now: datetime,
        revision: int,
        first_fire: FirstFire | None,
    ) -> _Plan:
        plan = cls()
        for want in wanted:
            row = stored.get(want.name)
            if row is None:
                values = _new_job_values(want, now, revision)
                if first_fire is not None and want.enabled:
                    values["next_run_at"] = first_fire(want.definition, now)
                plan.inserts.append(values)
                plan.added.append(want.name)
            else:
                plan._compare(want, row, now, revision, first_fire)
        wanted_names = {want.name for want in wanted}
        for name, row in stored.items():
            if name in wanted_names:
                continue
            if row.removed:
                plan.already_removed.append(name)
                continue
            plan.removed.append(name)
            plan.updates.append(
                {"name": name, "removed": True, "next_run_at": None, "revision": revision, "updated_at": now}
            )
        return plan

    def _compare(
        self, want: WantedJob, row: Row[Any], now: datetime, revision: int, first_fire: FirstFire | None
    ) -> None:
        # Equal text is the fast path; unequal text may still be the same value, spelt otherwise
        # (an older version's JSON, an edit by hand): then nothing changed, and the text is
        # rewritten once in our spelling so that the next start takes the fast path again.
        timing_changed = _TIMING_OF(row) != want.timing and _differs(row, want, _TIMING_COLUMNS)
        config_changed = row[_CONFIGURED_ENABLED] != want.enabled or (
            _CONFIG_OF(row) != want.configured and _differs(row, want, _CONFIG_COLUMNS)
        )
        if not (timing_changed or config_changed or row[_REMOVED]):
            self.unchanged.append(want.name)
            respelt = {column: text for column, text in want.texts.items() if row[_POSITION[column]] != text}
            if respelt:
                self.updates.append({"name": want.name, **respelt, "revision": revision, "updated_at": now})
            return
        values = _updated_job_values(row, want, now, revision, retime=timing_changed)
        if timing_changed and first_fire is not None and values["enabled"] and not row.paused:
            values["next_run_at"] = first_fire(want.definition, now)
        self.updates.append(values)
        if row.removed:
            self.restored.append(want.name)
        elif timing_changed:
            self.retimed.append(want.name)
        else:
            self.changed.append(want.name)

    def report(
        self, wanted: Sequence[WantedJob], stored: Mapping[str, Row[Any]], revision: int | None
    ) -> ReconcileReport:
        wanted_by_name = {want.name: want for want in wanted}
        # Every job as it now stands, from what was read and written: the scheduler starts from
        # these instead of reading 100,000 rows back. A configured job's values are its
        # definition's; only jobs no longer configured need their stored JSON decoded.
        written = {values["name"]: values for values in self.updates}
        records: dict[str, JobRecord] = {}
        for values in self.inserts:
            records[values["name"]] = JobRecord.from_row({**values, **wanted_by_name[values["name"]].config})
        for want in wanted:
            row = stored.get(want.name)
            if row is None:
                continue
            current: list[Any] = list(row)
            for column, value in written.get(want.name, {}).items():
                current[_POSITION[column]] = value
            for position, value in zip(_CONFIG_POSITIONS, want.config.values(), strict=True):
                current[position] = value
            records[want.name] = JobRecord.from_values(current)
        for name, row in stored.items():
            if name not in records:
                gone: list[Any] = list(row)
                for column, value in written.get(name, {}).items():
                    gone[_POSITION[column]] = value
                for column in JSON_COLUMNS:
                    gone[_POSITION[column]] = json.loads(gone[_POSITION[column]])
                records[name] = JobRecord.from_values(gone)
        return ReconcileReport(
            added=tuple(sorted(self.added)),
            restored=tuple(sorted(self.restored)),
            retimed=tuple(sorted(self.retimed)),
            changed=tuple(sorted(self.changed)),
            unchanged=tuple(sorted(self.unchanged)),
            removed=tuple(sorted(self.removed)),
            already_removed=tuple(sorted(self.already_removed)),
            revision=revision,
            jobs=tuple(records[name] for name in sorted(records)),
        )


def _differs(row: Row[Any], want: WantedJob, columns: Sequence[str]) -> bool:
    """Whether any of ``columns`` holds another value than ``want`` (JSON compared as values)."""
    for column in columns:
        stored = row[_POSITION[column]]
        if column in JSON_COLUMNS:
            if stored != want.texts[column] and json.loads(stored) != json.loads(want.texts[column]):
                return True
        elif stored != want.config[column]:
            return True
    return False


def _new_job_values(want: WantedJob, now: datetime, revision: int) -> dict[str, Any]:
    return {
        "name": want.name,
        **want.config,
        **want.texts,
        "enabled": want.enabled,
        "configured_enabled": want.enabled,
        "paused": False,
        "anchor": now,
        "resumed_at": None,
        "last_run_at": None,
        "total_run_count": 0,
        "next_run_at": None,
        "removed": False,
        "expired": False,
        "revision": revision,
        "created_at": now,
        "updated_at": now,
    }


def _updated_job_values(
    row: Row[Any], want: WantedJob, now: datetime, revision: int, *, retime: bool
) -> dict[str, Any]:
    """The columns reconcile writes for a changed job: never ``paused`` or the run bookkeeping."""
    return {
        "name": want.name,
        **want.config,
        **want.texts,
        # Follow the configuration only when *it* changed: otherwise keep the operator's choice.
        "enabled": want.enabled if row.configured_enabled != want.enabled else row.enabled,
        "configured_enabled": want.enabled,
        "removed": False,
        "anchor": now if retime else row.anchor,
        "next_run_at": None if retime else row.next_run_at,
        # A new timing is judged afresh by the scheduler (a one-off moved to the past expires then).
        "expired": False if retime else row.expired,
        "revision": revision,
        "updated_at": now,
    }


def prepare_definitions(definitions: Sequence[JobDefinition]) -> list[WantedJob]:
    """Check every definition and compute its column values, before any transaction starts."""
    seen: dict[str, JobDefinition] = {}
    wanted: list[WantedJob] = []
    # Jobs often share a schedule: its kind and text are worked out once per distinct schedule.
    schedules: dict[Hashable, tuple[str, str]] = {}
    for definition in definitions:
        earlier = seen.get(definition.name)
        if earlier is not None:
            raise InvalidJobError(
                f"duplicate job name {definition.name!r}: defined in {earlier.source} and again in {definition.source}"
            )
        seen[definition.name] = definition
        wanted.append(_wanted(definition, schedules))
    return wanted


def _wanted(definition: JobDefinition, schedules: dict[Hashable, tuple[str, str]]) -> WantedJob:
    if not definition.name:
        raise InvalidJobError(f"a job defined in {definition.source} has an empty name")
    if len(definition.name) > NAME_LENGTH:
        raise InvalidJobError(f"{_where(definition)}: the name is longer than {NAME_LENGTH} characters")
    if len(definition.task) > NAME_LENGTH:
        raise InvalidJobError(f"{_where(definition)}: the task name is longer than {NAME_LENGTH} characters")
    if not all(isinstance(tag, str) for tag in definition.tags):
        raise InvalidJobError(f"{_where(definition)}: tags must be strings, got {list(definition.tags)!r}")
    key = data_key(definition.schedule_data)
    known = schedules.get(key) if key is not None else None
    if known is None:
        try:
            kind = definition.kind
        except OrchestraError as error:  # data built by hand, or by another version: name the job
            raise InvalidJobError(
                f"{_where(definition)}: unusable schedule {definition.schedule_data!r}: {error}"
            ) from error
        known = (kind, _json_text(definition.schedule_data, "the schedule", definition))
        if key is not None:
            schedules[key] = known
    kind, schedule_text = known
    max_runs = max_runs_of_kind(kind)
    values = (
        definition.task,
        definition.schedule_data,
        definition.timezone,
        kind,
        definition.args,
        definition.kwargs,
        definition.options,
        definition.tags,
        definition.source,
        max_runs,
    )
    config = dict(zip(_CONFIG_FIELDS, values, strict=True))
    texts = {
        "schedule_data": schedule_text,
        "args": _json_text(definition.args, "args", definition),
        "kwargs": _json_text(definition.kwargs, "kwargs", definition),
        "options": _json_text(definition.options, "options", definition),
        "tags": _json_text(definition.tags, "tags", definition),
    }
    timing = (schedule_text, definition.timezone)
    configured = (
        definition.task,
        kind,
        texts["args"],
        texts["kwargs"],
        texts["options"],
        texts["tags"],
        definition.source,
        max_runs,
    )
    return WantedJob(definition, config, texts, timing, configured)


def _where(definition: JobDefinition) -> str:
    return f"job {definition.name!r} ({definition.source})"


#: Keys sorted, so that reordering a dict is no change; built once (json.dumps with options builds
#: an encoder per call, which start-up would pay 500,000 times).
_ENCODER: Final = json.JSONEncoder(sort_keys=True, allow_nan=False)


def _json_text(value: object, what: str, definition: JobDefinition) -> str:
    """``value`` as the JSON text stored for it."""
    if not value and isinstance(value, tuple | list | dict):
        return "{}" if isinstance(value, dict) else "[]"  # most jobs' args, kwargs, options and tags
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidJobError(f"{_where(definition)}: {what} cannot be stored as JSON: {exc}") from exc
