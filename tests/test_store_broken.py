"""A row edited into something this version cannot read costs that job only (store, reconcile, beat)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.store import JobStore, StoreError
from tests.test_scheduler import SCHEDULER_LOGGER, FakeClock, Harness, at, every, grid, messages_of

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NAMES = ("alpha", "beta", "gamma")
NO_KEY = "Expecting property name enclosed in double quotes"


def definition(name: str, **fields: object) -> JobDefinition:
    return JobDefinition(
        name, f"tasks.{name}", {"type": "interval", "seconds": 60, "relative": False}, tags=("t",), **fields
    )


def edit_by_hand(path: Path, *statements: str) -> None:
    """What an operator with the sqlite3 shell does: no revision bump unless asked."""
    connection = sqlite3.connect(path)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[JobStore, Path]]:
    path = tmp_path / "orchestra.db"
    store = JobStore(f"sqlite:///{path}")
    store.migrate()
    store.reconcile([definition(name) for name in NAMES], now=T0)
    try:
        yield store, path
    finally:
        store.close()


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("args", "'not json'", "column args holds 'not json', not JSON (Expecting value)"),
        ("kwargs", "'{bad'", f"column kwargs holds '{{bad', not JSON ({NO_KEY})"),
        ("schedule_data", "'[1, 2'", "column schedule_data holds '[1, 2', not JSON (Expecting ',' delimiter)"),
        ("options", "'5'", "column options holds '5', not a JSON object"),
        ("tags", "'[1]'", "column tags holds '[1]', not a JSON array of strings"),
        ("args", "'{}'", "column args holds '{}', not a JSON array"),
        ("anchor", "'yesterday'", "column anchor holds 'yesterday', not an ISO 8601 datetime"),
        ("next_run_at", "'soon'", "column next_run_at holds 'soon', not an ISO 8601 datetime"),
        ("total_run_count", "'many'", "column total_run_count holds 'many', not an integer"),
    ],
)
def test_a_row_that_cannot_be_read_is_a_broken_record_and_the_others_are_whole(
    stored: tuple[JobStore, Path], column: str, value: str, reason: str
) -> None:
    store, path = stored
    whole = {record.name: record for record in store.all_jobs()}
    edit_by_hand(
        path,
        f"UPDATE orchestra_jobs SET {column} = {value} WHERE name = 'beta'",
        "UPDATE orchestra_meta SET revision = revision + 1",
        "UPDATE orchestra_jobs SET revision = (SELECT revision FROM orchestra_meta) WHERE name = 'beta'",
    )
    records = store.all_jobs()
    assert [(record.name, record.broken) for record in records] == [("alpha", None), ("beta", reason), ("gamma", None)]
    assert [records[0], records[2]] == [whole["alpha"], whole["gamma"]]
    beta = store.get_job("beta")
    assert beta is not None and beta.broken == reason and beta.paused is False
    _, changed = store.changes_since(whole["beta"].revision)
    assert [(record.name, record.broken) for record in changed] == [("beta", reason)]
    assert store.names_with_tags(["t"]) == (["alpha", "gamma"] if column == "tags" else list(NAMES))
    # The operator columns can still be changed.
    assert store.set_paused(["beta"], True) == ["beta"]
    again = store.get_job("beta")
    assert again is not None and again.paused and again.broken == reason


def test_a_restart_rewrites_unreadable_configured_columns_and_leaves_unreadable_state_alone(
    stored: tuple[JobStore, Path],
) -> None:
    store, path = stored
    store.reconcile([definition(name) for name in (*NAMES, "delta")], now=T0)
    store.reconcile([definition(name) for name in NAMES], now=T0)  # delta is removed now
    edit_by_hand(
        path,
        "UPDATE orchestra_jobs SET args = 'not json', options = '[' WHERE name = 'alpha'",
        "UPDATE orchestra_jobs SET last_run_at = 'last week' WHERE name = 'beta'",
        "UPDATE orchestra_jobs SET kwargs = '{bad' WHERE name = 'delta'",
    )
    report = store.reconcile([definition(name, args=(1,)) for name in NAMES], now=T0)

    assert report.broken == {
        "beta": "column last_run_at holds 'last week', not an ISO 8601 datetime",
        "delta": f"column kwargs holds '{{bad', not JSON ({NO_KEY})",
    }
    assert report.changed == ("alpha", "gamma")
    assert report.already_removed == ("delta",)
    assert [job.name for job in report.jobs] == ["alpha", "gamma"]
    alpha = store.get_job("alpha")
    assert alpha is not None and alpha.broken is None and (alpha.args, alpha.options) == ((1,), {})
    assert {record.name: record.broken is not None for record in store.all_jobs()} == {
        "alpha": False,
        "beta": True,
        "delta": True,
        "gamma": False,
    }


# -- beat ----------------------------------------------------------------------------------------


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(f"sqlite:///{tmp_path / 'orchestra.db'}", FakeClock(), tmp_path)
    try:
        yield h
    finally:
        h.close()


def test_beat_skips_a_broken_job_with_one_line_and_runs_the_others(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = {"a": every(5), "b": every(5, task="tasks.b"), "c": every(5, task="tasks.c")}
    first = harness.start(schedule)
    harness.run_until(at(1), first)
    first.close()
    edit_by_hand(tmp_path / "orchestra.db", "UPDATE orchestra_jobs SET anchor = 'yesterday' WHERE name = 'b'")

    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    scheduler = harness.start(schedule)
    harness.run_until(at(20.5), scheduler)

    b_line = (
        "celery-orchestra: job 'b' cannot be loaded from the store and is skipped: "
        "column anchor holds 'yesterday', not an ISO 8601 datetime"
    )
    assert messages_of(caplog, logging.ERROR) == [b_line]
    assert harness.outbox.fires("b") == []
    assert harness.outbox.fires("a") == grid(5, 20, 5)
    assert harness.outbox.fires("c") == grid(5, 20, 5)

    # A row edited while beat runs: the poll skips that job alone.
    other = harness.other_store()
    edit_by_hand(tmp_path / "orchestra.db", "UPDATE orchestra_jobs SET kwargs = '{bad' WHERE name = 'c'")
    other.touch(["c"])
    caplog.clear()
    harness.run_until(at(40.5), scheduler)

    c_line = (
        "celery-orchestra: job 'c' cannot be loaded from the store and is skipped: "
        f"column kwargs holds '{{bad', not JSON ({NO_KEY})"
    )
    assert messages_of(caplog, logging.ERROR) == [c_line]
    assert max(harness.outbox.fires("c")) <= at(22)
    assert harness.outbox.fires("a") == grid(5, 40, 5)


def test_a_store_error_during_a_tick_is_one_line_without_a_traceback(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = harness.start({"a": every(5)})
    harness.run_until(at(1), scheduler)
    damaged = "the SQLite store '/x/orchestra.db' is damaged (database disk image is malformed): restore it"

    def fail() -> None:
        raise StoreError(damaged, "sqlite:////x/orchestra.db")

    assert scheduler._lease is not None
    monkeypatch.setattr(scheduler._lease, "tend", fail)
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    assert scheduler.tick() == 1.0
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage() for record in failures] == [
        f"celery-orchestra: tick failed: {damaged}; trying again shortly"
    ]
    assert failures[0].exc_info is None
