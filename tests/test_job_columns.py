"""JobColumns: jobs held column by column, each record built when asked for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from celery_orchestra.store import JobRecord
from celery_orchestra.store.job_columns import JobColumns, taken
from celery_orchestra.store.records import JOB_FIELDS

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def record(name: str, **fields: Any) -> JobRecord:
    values: dict[str, Any] = {
        "name": name,
        "task": f"tasks.{name}",
        "schedule_data": {"type": "interval", "seconds": 60.0, "relative": False},
        "kind": "cyclic",
        "timezone": None,
        "args": (),
        "kwargs": {},
        "options": {},
        "tags": (),
        "enabled": True,
        "configured_enabled": True,
        "paused": False,
        "resumed_at": None,
        "anchor": T0,
        "last_run_at": None,
        "total_run_count": 0,
        "max_runs": None,
        "next_run_at": None,
        "source": "beat_schedule",
        "removed": False,
        "expired": False,
        "revision": 1,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return JobRecord(**values)


def test_the_columns_of_records_give_the_same_records_back() -> None:
    records = [record("b", paused=True), record("a", args=(1, 2)), record("c", total_run_count=3)]
    jobs = JobColumns.of(records)
    assert len(jobs) == 3
    assert list(jobs) == records
    assert jobs[1] == records[1] and jobs[-1] == records[-1]
    # A row is the job's columns: every field of its record but ``broken``.
    assert jobs.row(0) == tuple(records[0])[:-1]
    assert list(jobs.rows()) == [tuple(each)[:-1] for each in records]
    assert list(jobs.column("name")) == ["b", "a", "c"]
    assert jobs.value("paused", 0) is True and jobs.value("paused", 1) is False
    assert JobColumns.of(jobs) is jobs
    with pytest.raises(IndexError):
        jobs[3]


def test_jobs_are_taken_sorted_sliced_and_joined_without_losing_a_value() -> None:
    records = [record(name, total_run_count=count) for count, name in enumerate("dbca")]
    jobs = JobColumns.of(records)
    assert list(jobs.taken([2, 0])) == [records[2], records[0]]
    assert jobs.taken(range(4)) is jobs
    assert list(jobs.sorted_by_name()) == sorted(records, key=lambda each: each.name)
    assert list(jobs[1:3]) == records[1:3]
    joined = JobColumns.joined([jobs.taken([0]), JobColumns.empty(), jobs.taken([3, 1])])
    assert list(joined) == [records[0], records[3], records[1]]
    assert JobColumns.joined([JobColumns.empty()]).column("name") == ()
    assert len(JobColumns.of_rows([])) == 0


def test_columns_must_be_one_per_field_and_equally_long() -> None:
    with pytest.raises(ValueError, match="columns"):
        JobColumns([["a"]])
    columns: list[list[Any]] = [["a"] for _ in JOB_FIELDS]
    columns[3] = []
    with pytest.raises(ValueError, match="differ in length"):
        JobColumns(columns)


def test_taken_returns_the_column_itself_only_for_all_of_it_in_order() -> None:
    column = ["a", "b", "c"]
    assert taken(column, range(3)) is column
    assert taken(column, [0, 1, 2]) is column
    assert list(taken(column, [2, 1, 0])) == ["c", "b", "a"]
    assert list(taken(column, [1])) == ["b"]
    assert list(taken(column, [])) == []
