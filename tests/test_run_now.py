"""Run now: `run_job_now` asks the active beat for one manual run, sent within a poll; the schedule does not move."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celery_orchestra import (
    ControlError,
    NoSuchJobError,
    add_job,
    disable_job,
    job_history,
    pause_job,
    remove_job,
    run_job_now,
    run_task_id,
)
from celery_orchestra.store import JobStore
from tests.test_scheduler import FakeClock, Harness, at, every, grid


class Crash(BaseException):
    """The process dies here (kill -9): nothing after this point runs."""


@pytest.fixture
def harness(store_url: str, tmp_path: Path) -> Iterator[Harness]:
    """The scheduler harness on SQLite and on PostgreSQL (``store_url``)."""
    h = Harness(store_url, FakeClock(), tmp_path)
    try:
        yield h
    finally:
        h.close()


def sends_of(harness: Harness, task_id: str) -> list[str]:
    """Who sent the message with ``task_id``, once per time it reached the broker."""
    count = sum(1 for message in harness.outbox.messages if message.task_id == task_id)
    by = [sent.by for sent in harness.outbox.sent if sent.task_id == task_id]
    assert len(by) == count
    return by


def test_a_run_now_is_sent_once_within_a_poll_with_its_own_task_id_and_moves_nothing(harness: Harness) -> None:
    beat = harness.start({"a": every(10, args=(1,), kwargs={"k": "v"}, options={"queue": "q"})})
    harness.run_until(at(13), beat, step=0.5)
    before = harness.job("a")
    assert (before.last_run_at, before.next_run_at, before.total_run_count) == (at(10), at(20), 1)

    info = run_job_now(harness.other_store(), "a")
    assert (info.job_name, info.manual, info.confirmed, info.state) == ("a", True, False, "requested")
    harness.run_until(at(14), beat, step=0.5)  # one poll interval (1 s)

    assert sends_of(harness, info.task_id) == ["beat"]
    message = next(m for m in harness.outbox.messages if m.task_id == info.task_id)
    assert (message.task, message.args, message.kwargs, message.options.get("queue")) == (
        "tasks.job",
        (1,),
        {"k": "v"},
        "q",
    )
    assert message.headers.get("celery_beat_task") is True
    assert info.task_id not in {run_task_id("a", fire) for fire in grid(0, 100, 10)}
    # Nothing of the schedule moved: last run, next fire and run count are as they were.
    after = harness.job("a")
    assert (after.last_run_at, after.next_run_at, after.total_run_count) == (at(10), at(20), 1)
    assert beat.schedule["a"].next_fire_at == at(20)

    harness.run_until(at(45), beat, step=0.5)
    scheduled = [sent.fire for sent in harness.outbox.sent if sent.task_id != info.task_id]
    assert scheduled == grid(10, 40, 10)  # still on its grid
    assert sends_of(harness, info.task_id) == ["beat"]  # and never again
    assert harness.job("a").total_run_count == 4
    manual = [run for run in job_history(harness.other_store(), "a") if run.manual]
    assert [(run.task_id, run.confirmed, run.state, run.fire_time) for run in manual] == [
        (info.task_id, True, "sent", info.fire_time)
    ]


def test_a_paused_or_disabled_job_runs_on_request_and_stays_paused_or_disabled(harness: Harness) -> None:
    beat = harness.start({"paused": every(10), "disabled": every(10)})
    store = harness.other_store()
    pause_job(store, "paused")
    disable_job(store, "disabled")
    harness.run_until(at(2), beat, step=0.5)

    runs = [run_job_now(store, "paused"), run_job_now(store, "disabled")]
    harness.run_until(at(30), beat, step=0.5)

    assert [sends_of(harness, run.task_id) for run in runs] == [["beat"], ["beat"]]
    assert sorted(sent.task_id for sent in harness.outbox.sent) == sorted(run.task_id for run in runs)  # no other
    assert (harness.job("paused").paused, harness.job("disabled").enabled) == (True, False)
    assert beat.schedule["paused"].state == "Paused" and beat.schedule["disabled"].state == "Disabled"


def test_a_removed_or_unknown_job_cannot_be_run_and_a_request_for_a_job_removed_meanwhile_is_dropped(
    harness: Harness,
) -> None:
    beat = harness.start({})
    store = harness.other_store()
    add_job(store, "gone", task="tasks.gone", schedule="every 10 minutes")
    add_job(store, "later", task="tasks.later", schedule="every 10 minutes")
    remove_job(store, "gone")
    with pytest.raises(ControlError, match="job gone is Removed: it cannot be run"):
        run_job_now(store, "gone")
    with pytest.raises(NoSuchJobError, match="nope"):
        run_job_now(store, "nope")

    info = run_job_now(store, "later")
    remove_job(store, "later")  # before the beat's next poll
    harness.run_until(at(5), beat, step=0.5)

    assert harness.outbox.messages == []
    [run] = [run for run in job_history(store, "later") if run.manual]
    assert (run.task_id, run.confirmed, run.state) == (info.task_id, False, "not sent: the job was removed")


def test_a_standby_never_sends_a_run_now(harness: Harness) -> None:
    schedule = {"a": every(60)}
    active = harness.start(schedule, label="active")
    standby = harness.start(schedule, label="standby")
    harness.run_until(at(5), active, standby, step=0.5)
    assert active.active and not standby.active

    info = run_job_now(harness.other_store(), "a")
    harness.run_until(at(20), standby, active, step=0.5)

    assert sends_of(harness, info.task_id) == ["active"]


def test_a_run_requested_while_no_beat_runs_is_sent_once_by_the_next_one(harness: Harness) -> None:
    first = harness.start({"a": every(60)}, label="first")
    harness.run_until(at(5), first, step=0.5)
    first.close()

    info = run_job_now(harness.other_store(), "a")
    harness.clock.advance(30)
    second = harness.start({"a": every(60)}, label="second")
    harness.run_until(at(37), second, step=0.5)

    assert sends_of(harness, info.task_id) == ["second"]
    assert harness.job("a").next_run_at == at(60)


def test_a_beat_killed_after_taking_a_run_now_before_sending_it_leaves_it_to_the_next_beat(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    dying = harness.start({"a": every(60)}, label="dying")
    harness.run_until(at(5), dying, step=0.5)
    info = run_job_now(harness.other_store(), "a")

    def die(*_: Any, **__: Any) -> None:
        raise Crash

    monkeypatch.setattr(dying.app, "send_task", die)  # killed while handing it to the broker
    harness.clock.advance(1)
    with pytest.raises(Crash):
        dying.tick()
    assert [row.epoch for row in claims_of(harness.other_store(), info.task_id)] == [1]  # taken, not sent

    harness.clock.advance(5)
    restarted = harness.start({"a": every(60)}, label="restarted")
    harness.run_until(at(40), restarted, step=0.5)

    assert sends_of(harness, info.task_id) == ["restarted"]
    [run] = [run for run in job_history(harness.other_store(), "a") if run.manual]
    assert (run.task_id, run.confirmed) == (info.task_id, True)


def test_a_beat_killed_after_sending_a_run_now_before_confirming_it_sends_it_again_with_its_task_id(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    dying = harness.start({"a": every(60)}, label="dying")
    harness.run_until(at(5), dying, step=0.5)
    info = run_job_now(harness.other_store(), "a")
    assert dying.store is not None

    def die(*_: Any, **__: Any) -> list[str]:
        raise Crash

    monkeypatch.setattr(dying.store, "save_progress", die)
    harness.clock.advance(1)
    with pytest.raises(Crash):
        dying.tick()
    assert sends_of(harness, info.task_id) == ["dying"]

    harness.clock.advance(5)
    restarted = harness.start({"a": every(60)}, label="restarted")
    harness.run_until(at(40), restarted, step=0.5)

    # At least once, like a repeating job's claim: the duplicate has the same task id.
    assert sends_of(harness, info.task_id) == ["dying", "restarted"]
    assert harness.job("a").total_run_count == 0


def test_a_run_now_waits_for_the_broker_and_is_sent_once_it_answers(harness: Harness) -> None:
    beat = harness.start({"a": every(60)})
    harness.run_until(at(5), beat, step=0.5)
    harness.outbox.broken = True
    info = run_job_now(harness.other_store(), "a")
    harness.run_until(at(10), beat, step=0.5)
    assert harness.outbox.failed_attempts >= 1 and sends_of(harness, info.task_id) == []

    harness.outbox.broken = False
    harness.run_until(at(12), beat, step=0.5)
    assert sends_of(harness, info.task_id) == ["beat"]
    harness.run_until(at(50), beat, step=0.5)
    assert sends_of(harness, info.task_id) == ["beat"]


def claims_of(store: JobStore, task_id: str) -> list[Any]:
    """The ledger rows of one task id, with their epoch (what history does not show)."""
    from sqlalchemy import select

    from celery_orchestra.store.tables import RUNS

    with store.engine.connect() as connection:
        return list(connection.execute(select(RUNS.c.epoch, RUNS.c.published).where(RUNS.c.task_id == task_id)))


def test_a_request_instant_never_lands_where_scheduled_fires_land_and_skips_taken_ones(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from celery_orchestra.store.run_requests import request_instant

    whole = datetime(2026, 1, 5, 9, 0, 0, 500000, tzinfo=UTC)  # on the grid of "every 0.5 seconds"
    assert request_instant(whole) == whole + timedelta(microseconds=1)
    assert request_instant(whole + timedelta(microseconds=3)) == whole + timedelta(microseconds=3)

    store = JobStore(f"sqlite:///{tmp_path / 'orchestra.db'}")
    store.migrate()
    add_job(store, "a", task="tasks.a", schedule="every 10 minutes")
    first = store.request_run("a", task_id="one", now=whole)
    second = store.request_run("a", task_id="two", now=whole)  # the same instant: the next free one
    store.close()
    assert [first.fire_time, second.fire_time] == [
        whole + timedelta(microseconds=1),
        whole + timedelta(microseconds=2),
    ]


def test_a_requested_run_is_the_jobs_last_run_and_says_requested(tmp_path: Path) -> None:
    from celery import Celery

    from celery_orchestra import get_job

    store = JobStore(f"sqlite:///{tmp_path / 'requested.db'}")
    store.migrate()
    try:
        add_job(store, "sync", task="proj.sync", schedule="every hour")
        info = run_job_now(store, "sync")
        job = get_job(store, "sync", app=Celery("t", set_as_current=False))
        assert job.last_run is not None
        assert (job.last_run.task_id, job.last_run.state, job.last_run.manual) == (info.task_id, "requested", True)
    finally:
        store.close()
