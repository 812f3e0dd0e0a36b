"""Making the stored jobs match the configuration, in one transaction.

* New jobs are inserted with ``anchor = now``.
* A job whose schedule or time zone changed gets ``anchor = now`` and ``next_run_at = None`` (to
  be recomputed) but keeps ``last_run_at`` and its run count.
* Other changed fields are updated in place; ``enabled`` only when the configured value changed
  since the last reconcile (so an operator's ``set_enabled`` survives).
* Jobs missing from the configuration are marked removed (kept, never sent: a tombstone that
  change detection can see); a removed job that is configured again is restored.
* ``paused`` is never touched: it is operator state.
* Jobs owned at runtime (added through the API) are never touched: not marked removed because the
  configuration lacks them, never rewritten. A configured job whose name a runtime job holds is a
  configuration error naming both (nothing is written). A removed job's name is free again: a
  configured job of that name restores it, owned by the configuration.
* A *partial* reconcile (``partial=True``: jobs a running beat was given through Celery's
  ``Scheduler.add`` and ``update_from_dict``) writes the listed jobs exactly as above and leaves
  every other job alone; the next full reconcile (a start) marks them removed if they are no
  longer configured, like any job gone from the configuration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy.engine import Connection

from ..errors import ConfigError, ConfigProblem
from ..jobs.checks import split_source
from ..jobs.definitions import JobDefinition
from ..timing.zones import require_aware
from .bulk_rows import (
    CONFIG_KEY_FIELDS,
    StoredStates,
    insert_jobs,
    read_job_columns,
    read_job_records,
    read_job_states,
    read_jobs_named,
)
from .database import Database
from .decoding import Broken, decode_json_column, decode_json_text
from .job_columns import JobColumns, taken
from .records import JOB_FIELDS, OWNER_CONFIG, OWNER_RUNTIME, JobRecord, ReconcileReport
from .sql import JSON_COLUMNS, bump_revision, update_many
from .tables import JOBS
from .wanted import COMPARED, CONFIGURED_FIELDS, WantedColumns, WantedJob, new_row_state, prepare_definitions

__all__ = ["FirstFire", "reconcile"]

log = logging.getLogger(__name__)

#: A stored row: its values in JOB_FIELDS order, the JSON columns as their JSON text.
Row = tuple[Any, ...]

_POSITION: Final = {name: index for index, name in enumerate(JOB_FIELDS)}
#: Columns whose change moves the job's anchor (its timing changed); the other compared columns
#: are updated in place.
_TIMING_COLUMNS: Final = ("schedule_data", "timezone")
_CONFIG_COLUMNS: Final = ("task", "kind", "args", "kwargs", "options", "tags", "source", "max_runs")
#: The fields of a configured job's record that the store, not the configuration, gives.
_STORED_FIELDS: Final = tuple(name for name in JOB_FIELDS if name not in CONFIGURED_FIELDS)
_NAME, _CONFIGURED_ENABLED, _ENABLED, _PAUSED, _ANCHOR, _NEXT_RUN_AT, _REMOVED, _EXPIRED = (
    _POSITION[name]
    for name in ("name", "configured_enabled", "enabled", "paused", "anchor", "next_run_at", "removed", "expired")
)
if {*CONFIG_KEY_FIELDS, "max_runs", "configured_enabled"} != set(COMPARED):  # pragma: no cover - a guard for editors
    raise ImportError("reconcile._differing no longer compares every one of wanted.COMPARED")

#: The first nominal fire of a job registered, or retimed, at an anchor (``None``: never): a
#: function of the definition's schedule and zone alone, so jobs sharing both share it. The store
#: cannot work it out (it knows no timings); a scheduler that passes it saves writing a next fire
#: time into every new row afterwards.
FirstFire = Callable[[JobDefinition, datetime], datetime | None]


def reconcile(
    db: Database,
    definitions: Sequence[JobDefinition],
    *,
    now: datetime,
    first_fire: FirstFire | None = None,
    partial: bool = False,
) -> ReconcileReport:
    """Make the stored jobs match ``definitions`` (see the module docstring); with ``partial``,
    only the jobs listed: the others are neither removed nor in the report.

    ``first_fire``, when given, fills ``next_run_at`` of the jobs this inserts or retimes (and that
    may run: not disabled, not paused).

    Raises :class:`~celery_orchestra.errors.InvalidJobError` (before writing anything) for
    duplicate names, names or tasks that are too long, and arguments that are not JSON; and
    :class:`~celery_orchestra.errors.ConfigError` (writing nothing) for configured jobs whose
    names are held by jobs added at runtime.
    """
    now = require_aware(now, "reconcile(now=...)")
    wanted = prepare_definitions(definitions)

    def work(connection: Connection) -> tuple[ReconcileReport, bool]:
        revision = bump_revision(connection, db.safe_url)
        stored = read_job_states(connection)
        unreadable: dict[str, str] = {}
        configured = wanted
        if stored.broken:
            # Rows whose state cannot be read are left alone, configured or not: this reconcile
            # goes on as if they were not there (and they were not configured).
            stored, unreadable = _without_broken(stored)
            configured = prepare_definitions([d for d in definitions if d.name not in unreadable])
        if OWNER_RUNTIME in stored.fields["owner"]:
            _refuse_names_held_at_runtime(configured, stored, db.safe_url)
        return _reconcile_stored(connection, configured, stored, unreadable, now, revision, first_fire, partial)

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


def _reconcile_stored(
    connection: Connection,
    wanted: WantedColumns,
    stored: StoredStates,
    unreadable: dict[str, str],
    now: datetime,
    revision: int,
    first_fire: FirstFire | None,
    partial: bool,
) -> tuple[ReconcileReport, bool]:
    """Reconcile's transaction once the stored states are read (``unreadable``: the broken jobs left out)."""
    match = _Match.of(wanted.names, stored.names)
    if partial:  # the jobs not listed are not this reconcile's business
        match = replace(match, unconfigured=[])
        listed = set(wanted.names)
        unreadable = {name: reason for name, reason in unreadable.items() if name in listed}
    runtime = _held_at_runtime(stored, match.unconfigured)
    if runtime:
        # Read apart (decoded, as records), and only to be handed on: reconcile writes none of them.
        held = set(runtime)
        match = replace(match, unconfigured=[at for at in match.unconfigured if at not in held])
    differing = _differing(wanted, stored, match)
    names = [stored.names[match.stored[k]] for k in differing]
    names += [stored.names[at] for at in match.unconfigured]
    rows = _rows_named(connection, names, stored_count=len(stored.names))
    plan = _Plan.of(wanted, stored, _Comparison(match, differing, rows), now, revision, first_fire)
    plan.broken.update(unreadable)
    if runtime:
        plan.keep_runtime(connection, [stored.names[at] for at in runtime])
    insert_jobs(connection, plan.inserts)
    update_many(connection, plan.updates)
    wrote = bool(plan.inserts or plan.updates)
    return plan.report(revision if wrote else None), wrote


def _refuse_names_held_at_runtime(wanted: WantedColumns, stored: StoredStates, shown_url: str) -> None:
    """Raise a :class:`ConfigError` naming every configured job whose name a (not removed) job
    owned at runtime holds: which of the two is meant cannot be guessed."""
    owners, removed = stored.fields["owner"], stored.fields["removed"]
    held = {
        name
        for name, owner, gone in zip(stored.names, owners, removed, strict=True)
        if owner == OWNER_RUNTIME and not gone
    }
    problems = []
    for definition in wanted.definitions:
        if definition.name in held:
            source, line = split_source(definition.source)
            problems.append(
                ConfigProblem(
                    source,
                    line,
                    None,
                    definition.name,
                    f"the name is taken by a job added at runtime (owner runtime, in {shown_url}): rename this "
                    f"job, or remove the runtime one first (celery orchestra remove {definition.name})",
                )
            )
    if problems:
        raise ConfigError(problems)


def _held_at_runtime(stored: StoredStates, unconfigured: Sequence[int]) -> list[int]:
    """The positions among ``unconfigured`` of the jobs owned at runtime and not removed."""
    owners, removed = stored.fields["owner"], stored.fields["removed"]
    if OWNER_RUNTIME not in owners:
        return []
    return [at for at in unconfigured if owners[at] == OWNER_RUNTIME and not removed[at]]


def _without_broken(stored: StoredStates) -> tuple[StoredStates, dict[str, str]]:
    """The stored states of the jobs that could be read, and the others' reasons by name."""
    kept = [at for at in range(len(stored.names)) if at not in stored.broken]
    unreadable = {stored.names[at]: reason for at, reason in stored.broken.items()}
    fields = {name: taken(column, kept) for name, column in stored.fields.items()}
    return StoredStates(taken(stored.names, kept), taken(stored.config_keys, kept), fields, {}), unreadable


@dataclass(frozen=True)
class _Match:
    """Which wanted job is which stored job: ``wanted[k]`` (an index into the configuration) is
    stored at ``stored[k]``; ``new`` are configured and not stored, ``unconfigured`` the reverse."""

    wanted: Sequence[int]
    stored: Sequence[int]
    new: Sequence[int]
    unconfigured: Sequence[int]

    @classmethod
    def of(cls, wanted_names: Sequence[str], stored_names: Sequence[str]) -> _Match:
        if len(wanted_names) == len(stored_names) and list(wanted_names) == list(stored_names):
            every = range(len(wanted_names))  # a restart: the rows are read in the order they were added
            return cls(every, every, (), ())
        position = dict(zip(stored_names, range(len(stored_names)), strict=True))
        found = list(map(position.get, wanted_names))
        matched = [(index, at) for index, at in enumerate(found) if at is not None]
        configured = set(wanted_names)
        return cls(
            [index for index, _ in matched],
            [at for _, at in matched],
            [index for index, at in enumerate(found) if at is None],
            [at for at, name in enumerate(stored_names) if name not in configured],
        )


def _differing(wanted: WantedColumns, stored: StoredStates, match: _Match) -> set[int]:
    """The matched jobs (positions in ``match``) whose stored compared values differ from the
    wanted ones, or that are stored as removed: one list comparison per column when none do."""
    differing: set[int] = set()
    compared = (
        (stored.config_keys, wanted.config_keys),
        (stored.fields["max_runs"], wanted.compared["max_runs"]),
        (stored.fields["configured_enabled"], wanted.compared["configured_enabled"]),
    )
    for stored_column, wanted_column in compared:
        have = taken(stored_column, match.stored)
        want = taken(wanted_column, match.wanted)
        if list(have) != list(want):
            pairs = enumerate(zip(have, want, strict=True))
            differing.update(k for k, (stored_value, wanted_value) in pairs if stored_value != wanted_value)
    # A job without a config key (a value holding the key's separator) is compared value by value.
    differing.update(k for k, key in enumerate(taken(wanted.config_keys, match.wanted)) if key is None)
    removed = taken(stored.fields["removed"], match.stored)
    if any(removed):
        differing.update(k for k, flag in enumerate(removed) if flag)
    return differing


#: More jobs to read whole than this, and reconcile reads every row at once instead (an upgrade
#: that respells the stored JSON, say): SQLAlchemy converts rows read by name one by one.
_NAMED_READ_LIMIT: Final = 2_000


def _rows_named(connection: Connection, names: Sequence[str], *, stored_count: int) -> dict[str, Row]:
    """The whole stored rows of ``names`` (JSON columns as text), by name."""
    if not names:
        return {}
    # The states of these rows were read (and the unreadable ones left out) in this transaction.
    jobs, _ = read_job_columns(connection) if len(names) > _NAMED_READ_LIMIT else read_jobs_named(connection, names)
    wanted = set(names)
    return {row[_NAME]: row for row in jobs.rows() if row[_NAME] in wanted}


class _Comparison(NamedTuple):
    """What comparing the stored jobs with the wanted ones found: which is which, which of the
    matched ones differ (positions in ``match``), and the whole rows of those and of the
    unconfigured jobs, by name."""

    match: _Match
    differing: set[int]
    rows: dict[str, Row]


@dataclass
class _Plan:
    """What one reconcile writes, and how it classifies every name."""

    added: Sequence[str] = ()
    restored: list[str] = field(default_factory=list)
    retimed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[Sequence[str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    already_removed: list[str] = field(default_factory=list)
    runtime: list[str] = field(default_factory=list)
    #: New rows (JSON columns as text).
    inserts: JobColumns = field(default_factory=JobColumns.empty)
    updates: list[dict[str, Any]] = field(default_factory=list)
    #: Every job as it stands after the reconcile: tables of jobs, and single records.
    tables: list[JobColumns] = field(default_factory=list)
    records: list[JobRecord] = field(default_factory=list)
    #: Jobs whose stored row cannot be read, and why (in no list, nor in the tables and records).
    broken: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        wanted: WantedColumns,
        stored: StoredStates,
        comparison: _Comparison,
        now: datetime,
        revision: int,
        first_fire: FirstFire | None,
    ) -> _Plan:
        # Column by column: at a restart nearly every job is unchanged, and for those one list
        # comparison per column decided it, and their records are left to be built when used.
        plan = cls()
        match, differing, rows = comparison
        same = [k for k in range(len(match.wanted)) if k not in differing] if differing else range(len(match.wanted))
        same_wanted = taken(match.wanted, same)
        same_stored = taken(match.stored, same)
        plan.unchanged.append(taken(wanted.names, same_wanted))
        state = {name: taken(stored.fields[name], same_stored) for name in _STORED_FIELDS}
        plan.tables.append(wanted.table(same_wanted, state))
        if match.new:
            plan._add(wanted, match.new, now, revision, first_fire)
        for k in sorted(differing):
            want = wanted.job(match.wanted[k])
            plan._compare(want, rows[want.name], now, revision, first_fire)
        for at in match.unconfigured:
            plan._unconfigured(rows[stored.names[at]], now, revision)
        return plan

    def _add(
        self, wanted: WantedColumns, indices: Sequence[int], now: datetime, revision: int, first_fire: FirstFire | None
    ) -> None:
        enabled = taken(wanted.enabled, indices)
        next_run_at = None
        if first_fire is not None:
            next_run_at = _first_fires(taken(wanted.definitions, indices), enabled, now, first_fire)
        state = new_row_state(enabled, now, revision, owner=OWNER_CONFIG, next_run_at=next_run_at)
        self.added = taken(wanted.names, indices)
        self.inserts = wanted.table(indices, state, json_text=True)
        self.tables.append(wanted.table(indices, state))

    def _unconfigured(self, row: Row, now: datetime, revision: int) -> None:
        name = row[_NAME]
        if row[_REMOVED]:
            self.already_removed.append(name)
        else:
            self.removed.append(name)
            written = {"removed": True, "next_run_at": None, "revision": revision, "updated_at": now}
            self.updates.append({"name": name, **written})
            row = _patched(row, written)
        record = _decoded(row)
        if record.broken is None:
            self.records.append(record)
        else:
            self.broken[name] = record.broken

    def keep_runtime(self, connection: Connection, names: Sequence[str]) -> None:
        """Hand on the jobs owned at runtime called ``names`` as they are stored (broken ones as broken)."""
        held = set(names)
        self.runtime.extend(names)
        where = (JOBS.c.owner == OWNER_RUNTIME) & JOBS.c.removed.is_(False)
        for record in read_job_records(connection, where=where):
            if record.name not in held:
                continue
            if record.broken is None:
                self.records.append(record)
            else:
                self.broken[record.name] = record.broken

    def _compare(self, want: WantedJob, row: Row, now: datetime, revision: int, first_fire: FirstFire | None) -> None:
        # Unequal text may still be the same value, spelt otherwise (an older version's JSON, an
        # edit by hand): then nothing changed, and the text is rewritten once in our spelling so
        # that the next start takes the fast path again.
        timing_changed = _differs(row, want, _TIMING_COLUMNS)
        config_changed = row[_CONFIGURED_ENABLED] != want.enabled or _differs(row, want, _CONFIG_COLUMNS)
        if not (timing_changed or config_changed or row[_REMOVED]):
            self.unchanged.append((want.name,))
            respelt = {
                column: want.text(column) for column in JSON_COLUMNS if row[_POSITION[column]] != want.text(column)
            }
            if respelt:
                self.updates.append({"name": want.name, **respelt, "revision": revision, "updated_at": now})
                row = _patched(row, {"revision": revision, "updated_at": now})
            self.records.append(want.record(row))
            return
        values = _updated_job_values(row, want, now, revision, retime=timing_changed)
        if timing_changed and first_fire is not None and values["enabled"] and not row[_PAUSED]:
            values["next_run_at"] = first_fire(want.definition, now)
        self.updates.append(values)
        self.records.append(want.record(_patched(row, values)))
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
        jobs = JobColumns.joined([*self.tables, JobColumns.of_rows(self.records)])
        return ReconcileReport(
            added=tuple(sorted(self.added)),
            restored=tuple(sorted(self.restored)),
            retimed=tuple(sorted(self.retimed)),
            changed=tuple(sorted(self.changed)),
            unchanged=tuple(sorted(name for names in self.unchanged for name in names)),
            removed=tuple(sorted(self.removed)),
            already_removed=tuple(sorted(self.already_removed)),
            runtime=tuple(sorted(self.runtime)),
            revision=revision,
            jobs=jobs.sorted_by_name(),
            broken=dict(sorted(self.broken.items())),
        )


def _first_fires(
    definitions: Sequence[JobDefinition], enabled: Sequence[bool], now: datetime, first_fire: FirstFire
) -> list[datetime | None]:
    """Each enabled new job's first fire, worked out once per schedule (data object) and zone."""
    known: dict[tuple[int, str | None], datetime | None] = {}
    fires: list[datetime | None] = []
    for definition, on in zip(definitions, enabled, strict=True):
        if not on:
            fires.append(None)
            continue
        key = (id(definition.schedule_data), definition.timezone)
        if key not in known:
            known[key] = first_fire(definition, now)
        fires.append(known[key])
    return fires


def _patched(row: Row, values: Mapping[str, Any]) -> Row:
    patched = list(row)
    for column, value in values.items():
        if column in _POSITION:
            patched[_POSITION[column]] = value
    return tuple(patched)


def _decoded(row: Row) -> JobRecord:
    """The record of a stored row that no definition describes (its JSON columns decoded; broken
    if they cannot be)."""
    values = list(row)
    broken: Broken = {}
    for column in JSON_COLUMNS:
        values[_POSITION[column]] = decode_json_column(column, [values[_POSITION[column]]], broken)[0]
    return JobRecord.from_values(values, broken.get(0))


def _differs(row: Row, want: WantedJob, columns: Sequence[str]) -> bool:
    """Whether any of ``columns`` holds another value than ``want`` (JSON compared as values;
    stored text that cannot be read differs, and is rewritten: the configuration owns it)."""
    for column in columns:
        stored = row[_POSITION[column]]
        if column in JSON_COLUMNS:
            text = want.text(column)
            if stored != text:
                value, unreadable = decode_json_text(column, stored)
                if unreadable is not None or value != json.loads(text):
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
            # A removed job's name is free: configuring it again makes the configuration its owner.
            "owner": OWNER_CONFIG,
            "anchor": now if retime else row[_ANCHOR],
            "next_run_at": None if retime else row[_NEXT_RUN_AT],
            # A new timing is judged afresh by the scheduler (a one-off moved to the past expires then).
            "expired": False if retime else row[_EXPIRED],
            "revision": revision,
            "updated_at": now,
        }
    )
    return values
