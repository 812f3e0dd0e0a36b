"""The state words shown for a job, and the one rule that derives them.

The scheduler (deciding what may be sent) and the operator API (the status table) must agree on
what "Done" or "Paused" means, so both take the state from here.
"""

from __future__ import annotations

from datetime import datetime

STATE_RUNNING = "Running"
STATE_PAUSED = "Paused"
STATE_DISABLED = "Disabled"
STATE_DONE = "Done"
STATE_EXPIRED = "Expired"
STATE_REMOVED = "Removed"
#: A job whose stored row cannot be read (edited into something this version does not understand):
#: never sent; shown with the reason until the row is fixed.
STATE_BROKEN = "Broken"

__all__ = [
    "STATE_BROKEN",
    "STATE_DISABLED",
    "STATE_DONE",
    "STATE_EXPIRED",
    "STATE_PAUSED",
    "STATE_REMOVED",
    "STATE_RUNNING",
    "has_finished",
    "job_state",
    "ran_since_anchor",
]


def ran_since_anchor(last_run_at: datetime | None, anchor: datetime) -> bool:
    """Whether the job has run for its current timing.

    Runs are counted since the anchor, not in total: the count is history and survives a change
    of timing, but a one-off moved to a new time must fire again.
    """
    return last_run_at is not None and last_run_at >= anchor


def has_finished(max_runs: int | None, last_run_at: datetime | None, anchor: datetime) -> bool:
    """Whether a job with a run limit (a one-off) has run for its current timing."""
    return max_runs is not None and ran_since_anchor(last_run_at, anchor)


def job_state(*, removed: bool, enabled: bool, paused: bool, expired: bool, finished: bool) -> str:
    """The state shown in the status table; only ``Running`` jobs are ever sent."""
    if removed:
        return STATE_REMOVED
    if expired:
        return STATE_EXPIRED
    if finished:
        return STATE_DONE
    if not enabled:
        return STATE_DISABLED
    if paused:
        return STATE_PAUSED
    return STATE_RUNNING
