"""Operator state: pause, enable, expire, touch and forget jobs by name.

Operator state is never overwritten by configuration: ``paused`` is only changed here;
``enabled`` follows the configuration only when the configured value itself changes (see
:mod:`.reconcile`), so an operator's choice survives restarts and redeploys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import Connection

from ..errors import JobConflictError
from ..timing.zones import require_aware
from .database import Database
from .lease import Fence, check_fence
from .records import OWNER_RUNTIME
from .sql import bump_revision, existing, require_known, stamp
from .tables import JOBS, RUNS

__all__ = ["forget", "set_flag", "touch"]

log = logging.getLogger(__name__)


def set_flag(
    db: Database,
    column: str,
    names: Sequence[str],
    value: bool,
    verb: str,
    *,
    resumed: bool = False,
    now: datetime | None = None,
    fence: Fence | None = None,
) -> list[str]:
    """Set the boolean ``column`` of the named jobs; return the names whose value changed.

    ``resumed`` also stamps ``resumed_at`` (``now``, default: the current time), so that no
    scheduler replays the fire times missed meanwhile, even one that was not running at the time.
    ``fence``: written by a beat, only while it holds the lease (see :mod:`.lease`). Raises
    :class:`~celery_orchestra.errors.JobNotFound`, changing nothing, if a name is unknown.
    """
    unique = list(dict.fromkeys(names))
    if not unique:
        return []
    values: dict[str, Any] = {column: value}
    if resumed:
        values["resumed_at"] = require_aware(now, "now") if now is not None else datetime.now(UTC)

    def work(connection: Connection) -> tuple[list[str], bool]:
        revision = bump_revision(connection, db.safe_url)
        if fence is not None:
            check_fence(connection, fence)
        current = existing(connection, unique, (JOBS.c[column],))
        require_known(unique, current)
        changed = [name for name in unique if current[name][0] != value]
        if not changed:
            return [], False
        stamp(connection, changed, revision, values)
        return changed, True

    changed = db.run(f"{verb} {len(unique)} job{'' if len(unique) == 1 else 's'}", work, write=True)
    if changed:
        log.info("%s in %s: %s", verb, db.safe_url, ", ".join(changed))
    return changed


def touch(db: Database, names: Sequence[str]) -> int:
    """Mark jobs as changed, so running schedulers reload them; return the new revision."""
    unique = list(dict.fromkeys(names))

    def work(connection: Connection) -> tuple[int, bool]:
        revision = bump_revision(connection, db.safe_url)
        require_known(unique, existing(connection, unique, ()))
        if unique:
            stamp(connection, unique, revision, {})
        return revision, True

    return db.run(f"touch {len(unique)} jobs", work, write=True)


def forget(db: Database, name: str) -> int:
    """Delete the removed job ``name`` and its run history; return how many runs were deleted."""

    def work(connection: Connection) -> tuple[int, bool]:
        bump_revision(connection, db.safe_url)
        current = existing(connection, [name], (JOBS.c.removed, JOBS.c.owner))
        require_known([name], current)
        removed, owner = current[name]
        if not removed and owner == OWNER_RUNTIME:
            raise JobConflictError(
                f"job {name!r} was added at runtime and is not removed: remove it first "
                "(remove_job, or celery orchestra remove) (forget deletes only jobs shown as Removed)"
            )
        if not removed:
            raise JobConflictError(
                f"job {name!r} is still configured: remove it from beat_schedule or its YAML file and restart "
                "beat first (forget deletes only jobs shown as Removed)"
            )
        runs = connection.execute(delete(RUNS).where(RUNS.c.job_name == name)).rowcount
        connection.execute(delete(JOBS).where(JOBS.c.name == name))
        return runs, True

    runs = db.run(f"forget job {name!r}", work, write=True)
    log.info("forgot job %s and its %d recorded run(s) in %s", name, runs, db.safe_url)
    return runs
