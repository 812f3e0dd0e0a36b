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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy.engine import Connection

from ..errors import InvalidJobError, OrchestraError
from ..jobs.codec import data_key, max_runs_of_kind
from ..jobs.definitions import JobDefinition
from ..timing.zones import require_aware
from .database import Database
from .records import JOB_FIELDS, JobRecord, ReconcileReport
from .sql import JSON_COLUMNS, bump_revision, insert_jobs, read_job_rows, update_many
from .tables import NAME_LENGTH

__all__ = ["FirstFire", "WantedJob", "prepare_definitions", "reconcile"]

log = logging.getLogger(__name__)

#: A stored row: its values in JOB_FIELDS order, the JSON columns as their JSON text.
Row = tuple[Any, ...]

_POSITION: Final = {name: index for index, name in enumerate(JOB_FIELDS)}
#: What reconcile compares of a stored row (JSON columns as their text): the configured columns,
#: and ``configured_enabled``. :attr:`WantedJob.compared` holds the wanted values in this order.
_COMPARED: Final = (
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
    "configured_enabled",
)
_COMPARED_OF: Final = operator.itemgetter(*(_POSITION[name] for name in _COMPARED))
#: Columns whose change moves the job's anchor (its timing changed); the other compared columns
#: are updated in place.
_TIMING_COLUMNS: Final = ("schedule_data", "timezone")
_CONFIG_COLUMNS: Final = ("task", "kind", "args", "kwargs", "options", "tags", "source", "max_runs")
_NAME, _ENABLED, _CONFIGURED_ENABLED, _PAUSED, _ANCHOR, _NEXT_RUN_AT, _REMOVED, _EXPIRED = (
    _POSITION[name]
    for name in ("name", "enabled", "configured_enabled", "paused", "anchor", "next_run_at", "removed", "expired")
)
_MAX_RUNS: Final = _POSITION["max_runs"]
#: WantedJob.record builds a record in one tuple, faster than JobRecord.from_values at 100,000 jobs;
#: it relies on this order of JobRecord's fields, which a reordering must not silently break.
_RECORD_LAYOUT: Final = ("name", "task", "schedule_data", "kind", "timezone", "args", "kwargs", "options", "tags")
if JOB_FIELDS[:_ENABLED] != _RECORD_LAYOUT or JOB_FIELDS[_MAX_RUNS:_REMOVED] != (
    "max_runs",
    "next_run_at",
    "source",
):  # pragma: no cover - a guard for whoever edits JobRecord
    raise ImportError(f"reconcile.WantedJob.record does not know JobRecord's field order {JOB_FIELDS}")
_TEXT_POSITIONS: Final = tuple((_POSITION[column], _COMPARED.index(column)) for column in JSON_COLUMNS)


class WantedJob(NamedTuple):
    """A definition reduced to the column values it should have in the store.

    ``compared`` holds the values reconcile compares with a stored row, in :data:`_COMPARED`
    order, the JSON columns as the JSON text reconcile writes (a tuple comparison decides that an
    unchanged job is unchanged: no JSON is decoded).
    """

    definition: JobDefinition
    kind: str
    max_runs: int | None
    compared: tuple[Any, ...]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def enabled(self) -> bool:
        return self.definition.enabled

    def text(self, column: str) -> str:
        """The JSON text of one of :data:`~.sql.JSON_COLUMNS`."""
        return str(self.compared[_COMPARED.index(column)])

    def row(self, record: JobRecord) -> Row:
        """The row to insert for this job's ``record``: the JSON columns as JSON text."""
        row: list[Any] = list(record)
        compared = self.compared
        for position, text_position in _TEXT_POSITIONS:
            row[position] = compared[text_position]
        return tuple(row)

    def value(self, column: str) -> Any:
        """The Python value the job's record holds for a configured column."""
        definition = self.definition
        if column == "kind":
            return self.kind
        if column == "max_runs":
            return self.max_runs
        return getattr(definition, column)

    def record(self, state: Sequence[Any]) -> JobRecord:
        """The job's record: its configured values, and the rest from ``state`` (a row's values in
        :data:`~.records.JOB_FIELDS` order)."""
        d = self.definition
        return JobRecord._make(
            (
                d.name,
                d.task,
                d.schedule_data,
                self.kind,
                d.timezone,
                tuple(d.args),
                d.kwargs,
                d.options,
                tuple(d.tags),
                *state[_ENABLED:_MAX_RUNS],
                self.max_runs,
                state[_NEXT_RUN_AT],
                d.source,
                *state[_REMOVED:],
            )
        )


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
        stored = {row[_NAME]: row for row in read_job_rows(connection)}
        plan = _Plan.of(wanted, stored, now, revision, first_fire)
        insert_jobs(connection, plan.inserts)
        update_many(connection, plan.updates)
        wrote = bool(plan.inserts or plan.updates)
        return plan.report(revision if wrote else None), wrote

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
    #: New rows, in JOB_FIELDS order (JSON columns as text).
    inserts: list[Row] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    #: Every job as it stands after the reconcile, by name.
    records: dict[str, JobRecord] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        wanted: Sequence[WantedJob],
        stored: Mapping[str, Row],
        now: datetime,
        revision: int,
        first_fire: FirstFire | None,
    ) -> _Plan:
        plan = cls()
        records = plan.records
        unchanged = plan.unchanged
        # What a new row holds besides its configuration (next_run_at is filled in per job).
        new_rows = {enabled: _new_row(enabled, now, revision) for enabled in (False, True)}
        for want in wanted:
            row = stored.get(want.name)
            if row is None:
                plan._add(want, new_rows[want.enabled], now, first_fire)
            elif _COMPARED_OF(row) == want.compared and not row[_REMOVED]:
                # The common case at every restart: one tuple comparison, no JSON decoded.
                unchanged.append(want.name)
                records[want.name] = want.record(row)
            else:
                plan._compare(want, row, now, revision, first_fire)
        for name, row in stored.items():
            if name in records:
                continue
            if row[_REMOVED]:
                plan.already_removed.append(name)
            else:
                plan.removed.append(name)
                written = {"removed": True, "next_run_at": None, "revision": revision, "updated_at": now}
                plan.updates.append({"name": name, **written})
                row = _patched(row, written)
            records[name] = _decoded(row)
        return plan

    def _add(self, want: WantedJob, new_row: Row, now: datetime, first_fire: FirstFire | None) -> None:
        if first_fire is not None and want.enabled:
            new_row = (*new_row[:_NEXT_RUN_AT], first_fire(want.definition, now), *new_row[_NEXT_RUN_AT + 1 :])
        record = self.records[want.name] = want.record(new_row)
        self.inserts.append(want.row(record))
        self.added.append(want.name)

    def _compare(self, want: WantedJob, row: Row, now: datetime, revision: int, first_fire: FirstFire | None) -> None:
        # Unequal text may still be the same value, spelt otherwise (an older version's JSON, an
        # edit by hand): then nothing changed, and the text is rewritten once in our spelling so
        # that the next start takes the fast path again.
        timing_changed = _differs(row, want, _TIMING_COLUMNS)
        config_changed = row[_CONFIGURED_ENABLED] != want.enabled or _differs(row, want, _CONFIG_COLUMNS)
        if not (timing_changed or config_changed or row[_REMOVED]):
            self.unchanged.append(want.name)
            respelt = {
                column: want.text(column) for column in JSON_COLUMNS if row[_POSITION[column]] != want.text(column)
            }
            if respelt:
                self.updates.append({"name": want.name, **respelt, "revision": revision, "updated_at": now})
                row = _patched(row, {"revision": revision, "updated_at": now})
            self.records[want.name] = want.record(row)
            return
        values = _updated_job_values(row, want, now, revision, retime=timing_changed)
        if timing_changed and first_fire is not None and values["enabled"] and not row[_PAUSED]:
            values["next_run_at"] = first_fire(want.definition, now)
        self.updates.append(values)
        self.records[want.name] = want.record(_patched(row, values))
        if row[_REMOVED]:
            self.restored.append(want.name)
        elif timing_changed:
            self.retimed.append(want.name)
        else:
            self.changed.append(want.name)

    def report(self, revision: int | None) -> ReconcileReport:
        # Every job as it now stands, from what was read and written: the scheduler starts from
        # these instead of reading 100,000 rows back. A configured job's values are its
        # definition's; only jobs no longer configured had their stored JSON decoded.
        records = self.records
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


def _new_row(enabled: bool, now: datetime, revision: int) -> Row:
    """What a new job's row holds besides its configuration (those columns are left ``None``)."""
    state = {
        "enabled": enabled,
        "configured_enabled": enabled,
        "paused": False,
        "resumed_at": None,
        "anchor": now,
        "last_run_at": None,
        "total_run_count": 0,
        "next_run_at": None,
        "removed": False,
        "expired": False,
        "revision": revision,
        "created_at": now,
        "updated_at": now,
    }
    return tuple(state.get(name) for name in JOB_FIELDS)


def _patched(row: Row, values: Mapping[str, Any]) -> Row:
    patched = list(row)
    for column, value in values.items():
        if column in _POSITION:
            patched[_POSITION[column]] = value
    return tuple(patched)


def _decoded(row: Row) -> JobRecord:
    """The record of a stored row that no definition describes (its JSON columns decoded)."""
    values = list(row)
    for column in JSON_COLUMNS:
        values[_POSITION[column]] = json.loads(values[_POSITION[column]])
    return JobRecord.from_values(values)


def _differs(row: Row, want: WantedJob, columns: Sequence[str]) -> bool:
    """Whether any of ``columns`` holds another value than ``want`` (JSON compared as values)."""
    for column in columns:
        stored = row[_POSITION[column]]
        if column in JSON_COLUMNS:
            text = want.text(column)
            if stored != text and json.loads(stored) != json.loads(text):
                return True
        elif stored != want.value(column):
            return True
    return False


def _updated_job_values(row: Row, want: WantedJob, now: datetime, revision: int, *, retime: bool) -> dict[str, Any]:
    """The columns reconcile writes for a changed job: never ``paused`` or the run bookkeeping."""
    values: dict[str, Any] = {"name": want.name}
    for column in _CONFIG_COLUMNS + _TIMING_COLUMNS:
        values[column] = want.text(column) if column in JSON_COLUMNS else want.value(column)
    configured_enabled = row[_CONFIGURED_ENABLED]
    values.update(
        {
            # Follow the configuration only when *it* changed: otherwise keep the operator's choice.
            "enabled": want.enabled if configured_enabled != want.enabled else row[_ENABLED],
            "configured_enabled": want.enabled,
            "removed": False,
            "anchor": now if retime else row[_ANCHOR],
            "next_run_at": None if retime else row[_NEXT_RUN_AT],
            # A new timing is judged afresh by the scheduler (a one-off moved to the past expires then).
            "expired": False if retime else row[_EXPIRED],
            "revision": revision,
            "updated_at": now,
        }
    )
    return values


def prepare_definitions(definitions: Sequence[JobDefinition]) -> list[WantedJob]:
    """Check every definition and compute its column values, before any transaction starts."""
    seen: dict[str, JobDefinition] = {}
    wanted: list[WantedJob] = []
    # Jobs often share a schedule (often the very same data object): its kind and text are worked
    # out once per distinct schedule.
    by_identity: dict[int, _ScheduleTexts] = {}
    by_key: dict[object, _ScheduleTexts] = {}
    for definition in definitions:
        name = definition.name
        earlier = seen.get(name)
        if earlier is not None:
            raise InvalidJobError(
                f"duplicate job name {name!r}: defined in {earlier.source} and again in {definition.source}"
            )
        seen[name] = definition
        data = definition.schedule_data
        known = by_identity.get(id(data))
        if known is None:
            known = _schedule_texts(definition, by_key)
            by_identity[id(data)] = known
        wanted.append(_wanted(definition, known[0], known[1]))
    return wanted


#: A schedule's kind and JSON text, and the data they are of (kept alive while memoised by identity).
_ScheduleTexts = tuple[str, str, object]


def _schedule_texts(definition: JobDefinition, by_key: dict[object, _ScheduleTexts]) -> _ScheduleTexts:
    """The kind and JSON text of a definition's schedule (and the data, kept alive for the identity memo)."""
    data = definition.schedule_data
    key = data_key(data)
    known = by_key.get(key) if key is not None else None
    if known is None:
        try:
            kind = definition.kind
        except OrchestraError as error:  # data built by hand, or by another version: name the job
            raise InvalidJobError(f"{_where(definition)}: unusable schedule {data!r}: {error}") from error
        known = (kind, _json_text(data, "the schedule", definition), data)
        if key is not None:
            by_key[key] = known
    return known[0], known[1], data


def _wanted(definition: JobDefinition, kind: str, schedule_text: str) -> WantedJob:
    name = definition.name
    if not name:
        raise InvalidJobError(f"a job defined in {definition.source} has an empty name")
    if len(name) > NAME_LENGTH:
        raise InvalidJobError(f"{_where(definition)}: the name is longer than {NAME_LENGTH} characters")
    if len(definition.task) > NAME_LENGTH:
        raise InvalidJobError(f"{_where(definition)}: the task name is longer than {NAME_LENGTH} characters")
    tags = definition.tags
    if tags and not all(isinstance(tag, str) for tag in tags):
        raise InvalidJobError(f"{_where(definition)}: tags must be strings, got {list(tags)!r}")
    max_runs = max_runs_of_kind(kind)
    compared = (
        definition.task,
        schedule_text,
        definition.timezone,
        kind,
        _json_text(definition.args, "args", definition),
        _json_text(definition.kwargs, "kwargs", definition),
        _json_text(definition.options, "options", definition),
        _json_text(tags, "tags", definition),
        definition.source,
        max_runs,
        definition.enabled,
    )
    return WantedJob(definition, kind, max_runs, compared)


def _where(definition: JobDefinition) -> str:
    return f"job {definition.name!r} ({definition.source})"


#: Keys sorted, so that reordering a dict is no change; built once (json.dumps with options builds
#: an encoder per call, which start-up would pay 500,000 times).
_ENCODER: Final = json.JSONEncoder(sort_keys=True, allow_nan=False)


_EMPTY_TEXTS: Final[dict[type, str]] = {tuple: "[]", list: "[]", dict: "{}"}


def _json_text(value: object, what: str, definition: JobDefinition) -> str:
    """``value`` as the JSON text stored for it."""
    if not value:
        empty = _EMPTY_TEXTS.get(type(value))  # most jobs' args, kwargs, options and tags
        if empty is not None:
            return empty
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidJobError(f"{_where(definition)}: {what} cannot be stored as JSON: {exc}") from exc
