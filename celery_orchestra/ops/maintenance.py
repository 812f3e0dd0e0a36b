"""Keeping the store tidy by hand: pruning the run ledger and forgetting removed jobs.

The active beat prunes the ledger by itself (``orchestra_run_retention``); these are the same
operations for the shell (``celery orchestra prune``, ``celery orchestra forget``) and for Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import ControlError, JobNotFound
from ..settings import read_settings
from .api import Target, no_such_job, store_for

__all__ = ["PruneResult", "forget_job", "prune_history"]


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What :func:`prune_history` deleted: how many runs, fired before when."""

    deleted: int
    before: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "before": self.before.isoformat()}


def prune_history(target: Target, older_than: timedelta | None = None, *, now: datetime | None = None) -> PruneResult:
    """Delete the runs that fired more than ``older_than`` ago (default: the app's ``orchestra_run_retention``).

    Runs claimed but never confirmed are kept (the active beat recovers them). With a store as
    ``target`` and no ``older_than``, the default retention (30 days) applies.
    """
    if older_than is None:
        conf = getattr(target, "conf", None)
        seconds = read_settings(conf if conf is not None else {}).run_retention
        if seconds is None:
            raise ControlError("orchestra_run_retention is None (keep every run): say how old with older_than")
        older_than = timedelta(seconds=seconds)
    if older_than < timedelta(0):
        raise ControlError(f"older_than must not be negative, got {older_than}")
    before = (now or datetime.now(UTC)) - older_than
    with store_for(target) as store:
        return PruneResult(store.prune_runs(before), before)


def forget_job(target: Target, name: str) -> int:
    """Delete the removed job ``name`` and its run history; return how many runs went with it.

    Raises :class:`~celery_orchestra.errors.NoSuchJobError` (with suggestions) for an unknown
    name and :class:`~celery_orchestra.errors.ControlError` for a job still configured.
    """
    with store_for(target) as store:
        try:
            return store.forget_job(name)
        except JobNotFound as missing:
            raise no_such_job(store, missing.names) from None
