"""Operator state: pause, enable, expire and touch jobs by name.

Operator state is never overwritten by configuration: ``paused`` is only changed here;
``enabled`` follows the configuration only when the configured value itself changes (see
:mod:`.reconcile`), so an operator's choice survives restarts and redeploys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from ..timing.zones import require_aware
from .database import Database
from .sql import bump_revision, existing, require_known, stamp
from .tables import JOBS

__all__ = ["set_flag", "touch"]

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
) -> list[str]:
    """Set the boolean ``column`` of the named jobs; return the names whose value changed.

    ``resumed`` also stamps ``resumed_at`` (``now``, default: the current time), so that no
    scheduler replays the fire times missed meanwhile, even one that was not running at the time.
    Raises :class:`~celery_orchestra.errors.JobNotFound`, changing nothing, if a name is unknown.
    """
    unique = list(dict.fromkeys(names))
    if not unique:
        return []
    values: dict[str, Any] = {column: value}
    if resumed:
        values["resumed_at"] = require_aware(now, "now") if now is not None else datetime.now(UTC)

    def work(connection: Connection) -> tuple[list[str], bool]:
        revision = bump_revision(connection, db.safe_url)
        current = existing(connection, unique, (JOBS.c[column],))
        require_known(unique, current)
        changed = [name for name in unique if current[name][0] != value]
        if not changed:
            return [], False
        stamp(connection, changed, revision, values)
        return changed, True

    changed = db.run(f"{verb} {len(unique)} jobs", work, write=True)
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
