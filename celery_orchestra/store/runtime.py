"""Writing jobs owned at runtime: add (one or many in one transaction), change and remove them.

A runtime-owned job (``owner = runtime``) is defined by these writes alone: reconcile never marks
it removed or rewrites it (see :mod:`.reconcile`). The rules of ownership are kept here, inside
each write's transaction: a name held by a configured job, or by an earlier runtime job, is
refused naming both; a configured job cannot be changed or removed here (its configuration owns
it); a removed job's name is free, and adding it again takes its row over (its run history stays).

Each write bumps the change counter first (:func:`~.sql.bump_revision`), which also queues the
store's writers in one order: a running beat sees the change at its next poll, and two processes
changing one job cannot lose either change (the second reads what the first wrote).

A change of timing (schedule or zone) gives the job a new anchor and clears its next fire time,
exactly as reconcile does for a configured job; the scheduler then works the next fire out anew.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy.engine import Connection

from ..errors import InvalidJobError, JobConflictError, JobNotFound
from ..jobs.definitions import JobDefinition
from ..timing.zones import require_aware
from .bulk_rows import insert_jobs, read_job_records
from .database import Database
from .records import OWNER_CONFIG, OWNER_RUNTIME, JobRecord
from .sql import JSON_COLUMNS, bump_revision, existing, update_many
from .tables import JOBS
from .wanted import WantedColumns, new_row_state, prepare_definitions

__all__ = ["RUNTIME_SOURCE", "Change", "add_runtime_jobs", "remove_runtime_job", "update_runtime_job"]

log = logging.getLogger(__name__)

#: The ``source`` of a job added at runtime (where a configured job names its file or beat_schedule).
RUNTIME_SOURCE: Final = "runtime"
#: The columns a runtime write takes from the job's definition (JSON ones as their text).
_DEFINED: Final = ("task", "schedule_data", "kind", "timezone", "args", "kwargs", "options", "tags", "max_runs")
#: At most this many taken names are listed in the error; the rest are counted.
_LISTED: Final = 5

#: What :func:`update_runtime_job` is given: the job's new definition from its stored record.
Change = Callable[[JobRecord], JobDefinition]


def add_runtime_jobs(db: Database, definitions: Sequence[JobDefinition], *, now: datetime) -> list[JobRecord]:
    """Add jobs owned at runtime, all in one transaction or none; return their records, in order.

    Raises :class:`InvalidJobError`, writing nothing, for a definition the store cannot keep (as
    reconcile does) and for names already held by a job that is not removed (naming its owner
    and source).
    """
    now = require_aware(now, "now")
    wanted = prepare_definitions(definitions)
    names = list(wanted.names)

    def work(connection: Connection) -> tuple[list[JobRecord], bool]:
        revision = bump_revision(connection, db.safe_url)
        found = existing(connection, names, (JOBS.c.owner, JOBS.c.removed, JOBS.c.source))
        _refuse_taken(names, found)
        fresh = [index for index, name in enumerate(names) if name not in found]
        state = new_row_state(_at(wanted.enabled, fresh), now, revision, owner=OWNER_RUNTIME)
        insert_jobs(connection, wanted.table(fresh, state, json_text=True))
        reused = [index for index, name in enumerate(names) if name in found]
        if reused:
            # Removed jobs' rows taken over: a new job, its run history kept (see forget_job).
            rows = [_taken_over_values(wanted, index, now, revision) for index in reused]
            update_many(connection, rows)
        records = dict(zip(_at(names, fresh), wanted.table(fresh, state), strict=True))
        if reused:
            where = JOBS.c.name.in_([names[index] for index in reused])
            records.update((record.name, record) for record in read_job_records(connection, where=where))
        return [records[name] for name in names], True

    added = db.run(f"add {len(names)} job{'' if len(names) == 1 else 's'} at runtime", work, write=True)
    log.info("added %d job(s) at runtime to %s: %s", len(added), db.safe_url, _listed(names))
    return added


def update_runtime_job(db: Database, name: str, change: Change, *, now: datetime) -> JobRecord:
    """Change the runtime-owned job ``name`` to what ``change`` makes of its stored record; return
    the new record.

    ``change`` runs inside the write transaction, on the record as it stands then (a concurrent
    change is never lost), and may raise to change nothing. A changed schedule or zone moves the
    anchor to ``now`` and clears the next fire time; enabling stamps ``resumed_at`` like an
    operator's enable. Raises :class:`JobNotFound` for an unknown name and :class:`JobConflictError`
    for a configured or removed job.
    """
    now = require_aware(now, "now")

    def work(connection: Connection) -> tuple[JobRecord, bool]:
        revision = bump_revision(connection, db.safe_url)
        record = _runtime_record(connection, name, "change")
        want = prepare_definitions([change(record)])
        values = _defined_values(want, 0)
        enabled = want.enabled[0]
        values.update({"name": name, "enabled": enabled, "configured_enabled": enabled})
        if enabled and not record.enabled:
            values["resumed_at"] = now
        definition = want.definitions[0]
        if definition.schedule_data != record.schedule_data or definition.timezone != record.timezone:
            values.update({"anchor": now, "next_run_at": None, "expired": False})
        values.update({"revision": revision, "updated_at": now})
        update_many(connection, [values])
        return _read_one(connection, name), True

    updated = db.run(f"change job {name!r}", work, write=True)
    log.info("changed job %s at runtime in %s", name, db.safe_url)
    return updated


def remove_runtime_job(db: Database, name: str, *, now: datetime) -> bool:
    """Mark the runtime-owned job ``name`` removed (beat stops it; its history stays until pruned
    or forgotten); return False when it already was.

    Raises :class:`JobNotFound` for an unknown name and :class:`JobConflictError` for a configured job.
    """
    now = require_aware(now, "now")

    def work(connection: Connection) -> tuple[bool, bool]:
        revision = bump_revision(connection, db.safe_url)
        record = _runtime_record(connection, name, "remove", removed_ok=True)
        if record.removed:
            return False, False
        written = {"name": name, "removed": True, "next_run_at": None, "revision": revision, "updated_at": now}
        update_many(connection, [written])
        return True, True

    removed = db.run(f"remove job {name!r}", work, write=True)
    if removed:
        log.info("removed job %s (added at runtime) from %s", name, db.safe_url)
    return removed


def _at(values: Sequence[Any], indices: Sequence[int]) -> list[Any]:
    """The values at ``indices``, in that order."""
    return [values[index] for index in indices]


def _refuse_taken(names: Sequence[str], found: Mapping[str, tuple[Any, ...]]) -> None:
    """Raise :class:`InvalidJobError` naming each job (and its owner) whose name is held already."""
    taken = [name for name in names if name in found and not found[name][1]]
    if not taken:
        return
    described = []
    for name in taken[:_LISTED]:
        owner, _, source = found[name]
        if owner == OWNER_CONFIG:
            described.append(
                f"{name!r} is taken by a configured job ({source}); configured jobs are changed in their source"
            )
        else:
            described.append(f"{name!r} is taken by a job added at runtime earlier; update it, or remove it first")
    more = f" (and {len(taken) - _LISTED} more)" if len(taken) > _LISTED else ""
    raise InvalidJobError(f"cannot add job{'' if len(taken) == 1 else 's'} at runtime: {'; '.join(described)}{more}")


def _runtime_record(connection: Connection, name: str, verb: str, *, removed_ok: bool = False) -> JobRecord:
    """The stored record of ``name`` if it is owned at runtime; else why it cannot be changed."""
    record = _read_one(connection, name)
    if record.owner != OWNER_RUNTIME:
        raise JobConflictError(
            f"job {name!r} is configured ({record.source}), not added at runtime: {verb} it in its configuration "
            "and restart beat (at runtime it can be paused, resumed, enabled and disabled)"
        )
    if record.removed and not removed_ok:
        raise JobConflictError(f"job {name!r} was removed: add it again instead")
    return record


def _read_one(connection: Connection, name: str) -> JobRecord:
    records = read_job_records(connection, where=JOBS.c.name == name)
    if not records:
        raise JobNotFound([name])
    return records[0]


def _defined_values(wanted: WantedColumns, index: int) -> dict[str, Any]:
    """The columns job ``index`` of ``wanted`` defines, JSON ones as the text to store."""
    want = wanted.job(index)
    return {column: want.text(column) if column in JSON_COLUMNS else want.value(column) for column in _DEFINED}


def _taken_over_values(wanted: WantedColumns, index: int, now: datetime, revision: int) -> dict[str, Any]:
    """The columns written when a runtime add takes a removed job's row over: a new job, with fresh
    operator state and a new anchor (the run bookkeeping and the ledger's history stay)."""
    enabled = wanted.enabled[index]
    values = _defined_values(wanted, index)
    values.update(
        {
            "name": wanted.names[index],
            "source": wanted.definitions[index].source,
            "enabled": enabled,
            "configured_enabled": enabled,
            "paused": False,
            "resumed_at": None,
            "anchor": now,
            "next_run_at": None,
            "removed": False,
            "expired": False,
            "owner": OWNER_RUNTIME,
            "revision": revision,
            "updated_at": now,
        }
    )
    return values


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown if len(names) <= _LISTED else f"{shown} and {len(names) - _LISTED} more"
