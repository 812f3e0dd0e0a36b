"""``celery_orchestra.Scheduler`` against a real PostgreSQL: dispatch, restarts and two beats on one database.

The same in-process harness as ``test_scheduler.py`` (fake clock, ``memory://`` app, sends captured
at ``app.send_task``), with the store on a fresh database of the throwaway server from
``tests/servers.py``: skipped when the PostgreSQL binaries are absent, failed under ``CI=true``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_scheduler import T0, FakeClock, Harness, at, checked_delay, every, grid

from celery_orchestra import run_task_id

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_harness(fresh_postgres_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(fresh_postgres_url, FakeClock(), tmp_path)
    try:
        yield harness
    finally:
        harness.close()


def test_dispatch_on_postgresql(pg_harness: Harness) -> None:
    names = [f"batch-{i:02d}" for i in range(25)]
    schedule: dict[str, dict[str, Any]] = {name: every(30, task=f"tasks.{name}") for name in names}
    schedule["seven"] = every(7, task="tasks.seven")
    schedule["once"] = {"task": "tasks.once", "schedule": "once in 45 seconds"}
    scheduler = pg_harness.start(schedule)
    assert scheduler.info == f"    . store -> {pg_harness.other_store().safe_url}"
    assert "***" in scheduler.info

    pg_harness.run_until(at(90), scheduler)

    outbox = pg_harness.outbox
    for name in names:
        assert outbox.fires(name) == grid(30, 90, 30)
    assert outbox.fires("seven") == grid(7, 90, 7)
    assert outbox.fires("once") == [at(45)]
    assert all(s.task_id == run_task_id(s.job, s.fire) for s in outbox.sent)
    record = pg_harness.job("batch-00")
    assert (record.last_run_at, record.total_run_count, record.next_run_at) == (at(90), 3, at(120))
    assert scheduler.schedule["once"].state == "Done"


def test_restart_on_postgresql_keeps_grid_one_off_and_anchor(pg_harness: Harness) -> None:
    schedule = {
        "seven": every(7, task="tasks.seven"),
        "once": {"task": "tasks.once", "schedule": "once in 20 seconds"},
        "later": {"task": "tasks.later", "schedule": "once in 2 minutes"},
    }
    first = pg_harness.start(schedule)
    pg_harness.run_until(at(40.5), first)
    first.close()

    second = pg_harness.start(schedule)
    assert second.schedule["seven"].next_fire_at == at(42)
    assert second.schedule["once"].state == "Done"
    assert second.schedule["later"].next_fire_at == at(120)
    pg_harness.run_until(at(150), second)

    outbox = pg_harness.outbox
    assert outbox.fires("seven") == grid(7, 147, 7)
    assert outbox.fires("once") == [at(20)]
    assert outbox.fires("later") == [at(120)]
    assert pg_harness.job("seven").anchor == T0


def test_two_schedulers_on_postgresql_send_each_fire_instant_once(pg_harness: Harness) -> None:
    schedule = {"fast": every(3), "once": {"task": "tasks.once", "schedule": "once in 10 seconds"}}
    first = pg_harness.start(schedule, label="first", orchestra_poll_interval=5)
    second = pg_harness.start(schedule, label="second", orchestra_poll_interval=5)

    assert (first.active, second.active) == (True, False)

    for step in range(80):
        # At 20 s the first beat dies (kill -9): the second takes over once its lease expires.
        order = (first, second) if step < 40 else (second,)
        for scheduler in order:
            checked_delay(scheduler, scheduler.tick())
        pg_harness.clock.advance(0.5)

    sent = pg_harness.outbox.sent
    assert Counter((s.job, s.fire) for s in sent).most_common(1)[0][1] == 1
    assert pg_harness.outbox.fires("fast") == grid(3, 39, 3)
    assert pg_harness.outbox.fires("once") == [at(10)]
    assert {s.by for s in sent if s.fire <= at(19)} == {"first"}
    assert {s.by for s in sent if s.fire > at(21)} == {"second"}
    store = pg_harness.other_store()
    assert sorted(e.fire_time for e in store.history("fast", limit=100)) == grid(3, 39, 3)
