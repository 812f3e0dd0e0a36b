"""``record_runs``: put runs in the ledger the way a beat does (claim, publish, confirm), for tests.

Tests that need history or counts in a store (the status table, ``history``, change detection)
record runs through the store's real public protocol, :meth:`JobStore.claim_runs` then
:meth:`JobStore.save_progress`, rather than through a shortcut the scheduler never takes.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery_orchestra.store import JobStore, Progress, RunRecord


def record_runs(store: JobStore, runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Claim ``runs`` and confirm the ones claimed as sent; return those (runs already recorded are skipped).

    Each job's count grows by its new runs; its last and next run move to its newest new run when
    that is newer than the stored last run (as a beat's progress does).
    """
    claimed = store.claim_runs(runs)
    if not claimed:
        return []
    stored = {record.name: record for record in store.all_jobs()}
    newest: dict[str, RunRecord] = {}
    counts: dict[str, int] = {}
    for run in claimed:
        counts[run.job_name] = counts.get(run.job_name, 0) + 1
        if run.job_name not in newest or newest[run.job_name].fire_time < run.fire_time:
            newest[run.job_name] = run
    progress = {}
    for name, run in newest.items():
        last = stored[name].last_run_at
        advances = last is None or last < run.fire_time
        next_run_at = run.next_run_at if advances else stored[name].next_run_at
        progress[name] = Progress(run.fire_time, counts[name], next_run_at)
    store.save_progress(progress, published=claimed)
    return claimed
