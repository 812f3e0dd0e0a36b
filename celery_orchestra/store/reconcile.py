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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, insert, select
from sqlalchemy.engine import Connection

from ..errors import InvalidJobError, OrchestraError
from ..jobs.definitions import JobDefinition
from ..timing.zones import require_aware
from .database import Database
from .records import JobRecord, ReconcileReport
from .sql import bump_revision, update_many
from .tables import JOBS, NAME_LENGTH

__all__ = ["WantedJob", "prepare_definitions", "reconcile"]

log = logging.getLogger(__name__)

#: Fields of a definition whose change moves the job's anchor (its timing changed).
_TIMING_COLUMNS: Final = ("schedule_data", "timezone")
#: Other configured fields, updated in place when they change.
_CONFIG_COLUMNS: Final = ("task", "kind", "args", "kwargs", "options", "tags", "source", "max_runs")


@dataclass(frozen=True, slots=True)
class WantedJob:
    """A definition reduced to the column values it should have in the store."""

    definition: JobDefinition
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def enabled(self) -> bool:
        return self.definition.enabled


def reconcile(db: Database, definitions: Sequence[JobDefinition], *, now: datetime) -> ReconcileReport:
    """Make the stored jobs match ``definitions`` (see the module docstring).

    Raises :class:`~celery_orchestra.errors.InvalidJobError` (before writing anything) for
    duplicate names, names or tasks that are too long, and arguments that are not JSON.
    """
    now = require_aware(now, "reconcile(now=...)")
    wanted = prepare_definitions(definitions)

    def work(connection: Connection) -> tuple[ReconcileReport, bool]:
        revision = bump_revision(connection, db.safe_url)
        stored = {row.name: row for row in connection.execute(select(JOBS))}
        plan = _Plan.of(wanted, stored, now, revision)
        if plan.inserts:
            connection.execute(insert(JOBS), plan.inserts)
        update_many(connection, plan.updates)
        wrote = bool(plan.inserts or plan.updates)
        return plan.report(stored, revision if wrote else None), wrote

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
    def of(cls, wanted: Sequence[WantedJob], stored: Mapping[str, Row[Any]], now: datetime, revision: int) -> _Plan:
        plan = cls()
        for want in wanted:
            row = stored.get(want.name)
            if row is None:
                plan.inserts.append(_new_job_values(want, now, revision))
                plan.added.append(want.name)
            else:
                plan._compare(want, row, now, revision)
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

    def _compare(self, want: WantedJob, row: Row[Any], now: datetime, revision: int) -> None:
        timing_changed = any(getattr(row, column) != want.config[column] for column in _TIMING_COLUMNS)
        config_changed = row.configured_enabled != want.enabled or any(
            getattr(row, column) != want.config[column] for column in _CONFIG_COLUMNS
        )
        if not (timing_changed or config_changed or row.removed):
            self.unchanged.append(want.name)
            return
        self.updates.append(_updated_job_values(row, want, now, revision, retime=timing_changed))
        if row.removed:
            self.restored.append(want.name)
        elif timing_changed:
            self.retimed.append(want.name)
        else:
            self.changed.append(want.name)

    def report(self, stored: Mapping[str, Row[Any]], revision: int | None) -> ReconcileReport:
        # Every job as it now stands, from what was read and written: the scheduler starts from
        # these instead of reading 100,000 rows back.
        current: dict[str, dict[str, Any]] = {name: dict(row._mapping) for name, row in stored.items()}
        for values in self.updates:
            current[values["name"]].update(values)
        for values in self.inserts:
            current[values["name"]] = {"resumed_at": None, **values}
        return ReconcileReport(
            added=tuple(sorted(self.added)),
            restored=tuple(sorted(self.restored)),
            retimed=tuple(sorted(self.retimed)),
            changed=tuple(sorted(self.changed)),
            unchanged=tuple(sorted(self.unchanged)),
            removed=tuple(sorted(self.removed)),
            already_removed=tuple(sorted(self.already_removed)),
            revision=revision,
            jobs=tuple(JobRecord.from_row(current[name]) for name in sorted(current)),
        )


def _new_job_values(want: WantedJob, now: datetime, revision: int) -> dict[str, Any]:
    return {
        "name": want.name,
        **want.config,
        "enabled": want.enabled,
        "configured_enabled": want.enabled,
        "paused": False,
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


def _updated_job_values(
    row: Row[Any], want: WantedJob, now: datetime, revision: int, *, retime: bool
) -> dict[str, Any]:
    """The columns reconcile writes for a changed job: never ``paused`` or the run bookkeeping."""
    return {
        "name": want.name,
        **want.config,
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
    for definition in definitions:
        where = f"job {definition.name!r} ({definition.source})"
        earlier = seen.get(definition.name)
        if earlier is not None:
            raise InvalidJobError(
                f"duplicate job name {definition.name!r}: defined in {earlier.source} and again in {definition.source}"
            )
        seen[definition.name] = definition
        if not definition.name:
            raise InvalidJobError(f"a job defined in {definition.source} has an empty name")
        if len(definition.name) > NAME_LENGTH:
            raise InvalidJobError(f"{where}: the name is longer than {NAME_LENGTH} characters")
        if len(definition.task) > NAME_LENGTH:
            raise InvalidJobError(f"{where}: the task name is longer than {NAME_LENGTH} characters")
        tags = _json(list(definition.tags), "tags", definition)
        if not all(isinstance(tag, str) for tag in tags):
            raise InvalidJobError(f"{where}: tags must be strings, got {list(definition.tags)!r}")
        try:
            kind, max_runs = definition.kind, definition.max_runs
        except OrchestraError as error:  # data built by hand, or by another version: name the job
            raise InvalidJobError(f"{where}: unusable schedule {definition.schedule_data!r}: {error}") from error
        config = {
            "task": definition.task,
            "schedule_data": _json(definition.schedule_data, "the schedule", definition),
            "timezone": definition.timezone,
            "kind": kind,
            "args": _json(list(definition.args), "args", definition),
            "kwargs": _json(definition.kwargs, "kwargs", definition),
            "options": _json(definition.options, "options", definition),
            "tags": tags,
            "source": definition.source,
            "max_runs": max_runs,
        }
        wanted.append(WantedJob(definition, config))
    return wanted


class _NotPlainJSON(Exception):
    """A value the fast path does not handle; the JSON round trip decides."""


def _plain_json(value: object) -> Any:
    """``value`` as JSON would read it back, for plain values only (no encode/decode: start-up speed)."""
    if not value and isinstance(value, list | tuple | dict):
        return [] if not isinstance(value, dict) else {}
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlainJSON
        return value
    if isinstance(value, list | tuple):
        return [_plain_json(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain_json(item) for key, item in value.items()}
    raise _NotPlainJSON


def _json(value: object, what: str, definition: JobDefinition) -> Any:
    """``value`` as it will read back from a JSON column; a clear error if it is not JSON."""
    try:
        return _plain_json(value)
    except _NotPlainJSON:
        pass
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidJobError(
            f"job {definition.name!r} ({definition.source}): {what} cannot be stored as JSON: {exc}"
        ) from exc
