"""The jobs snapshot a long-lived reader (the HTTP API) keeps: always what the store holds now."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from celery_orchestra import JobSpec, add_jobs, forget_job, pause_jobs, remove_job
from celery_orchestra.ops.api import list_jobs_page
from celery_orchestra.ops.snapshot import JobsSnapshot
from celery_orchestra.store import JobStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    store = JobStore(f"sqlite:///{tmp_path / 'snapshot.db'}")
    store.migrate()
    add_jobs(store, [JobSpec(f"job-{i}", "proj.task", "every 5 minutes") for i in range(6)])
    yield store
    store.close()


def full_reads(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    real = store.all_jobs

    def counted(**kwargs: Any) -> Any:
        reads.append(1)
        return real(**kwargs)

    monkeypatch.setattr(store, "all_jobs", counted)
    return reads


def test_the_snapshot_follows_every_write_reading_only_what_changed(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = JobsSnapshot(store)
    reads = full_reads(store, monkeypatch)
    assert snapshot.jobs() == store.all_jobs()
    reads.clear()

    pause_jobs(store, ["job-1", "job-2"])
    add_jobs(store, [JobSpec("job-new", "proj.task", "every hour")])
    remove_job(store, "job-3")
    assert snapshot.jobs() == store.all_jobs()
    assert [job.name for job in snapshot.jobs() if job.paused] == ["job-1", "job-2"]
    assert "job-3" not in [job.name for job in snapshot.jobs(include_removed=False)]
    assert len(reads) == 1  # the comparison's own read: the snapshot read only the changed rows

    reads.clear()
    assert snapshot.jobs() == snapshot.jobs()  # nothing written: nothing read
    assert reads == []


def test_a_deleted_row_is_dropped_from_the_snapshot(store: JobStore) -> None:
    snapshot = JobsSnapshot(store)
    remove_job(store, "job-4")
    assert "job-4" in [job.name for job in snapshot.jobs()]
    forget_job(store, "job-4")
    assert [job.name for job in snapshot.jobs()] == [job.name for job in store.all_jobs()]
    assert "job-4" not in [job.name for job in snapshot.jobs()]


def test_a_state_filtered_page_through_the_snapshot_equals_the_one_without(store: JobStore) -> None:
    snapshot = JobsSnapshot(store)
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    for _ in range(2):
        for states in (["Running"], ["Paused"], ["Paused", "Running"]):
            direct = list_jobs_page(store, states=states, limit=3, now=now)
            cached = list_jobs_page(store, states=states, limit=3, now=now, snapshot=snapshot)
            assert [job.as_dict() for job in cached.jobs] == [job.as_dict() for job in direct.jobs]
            assert cached.total == direct.total
        pause_jobs(store, ["job-0", "job-5"])
    assert list_jobs_page(store, states=["Paused"], snapshot=snapshot).total == 2
