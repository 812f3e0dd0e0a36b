"""Beat's parts on their own: the fire queue, clock-jump detection, entry loading and the next-fire writer."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery

from celery_orchestra.beat.clock import ClockWatch
from celery_orchestra.beat.entries import Entries
from celery_orchestra.beat.loading import EntryLoader
from celery_orchestra.beat.next_fires import NextFireWriter
from celery_orchestra.beat.outages import OutageWatch
from celery_orchestra.beat.polling import StorePoller
from celery_orchestra.beat.queue import FireQueue
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.store import JobRecord, JobStore
from celery_orchestra.store.job_columns import JobColumns

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOURLY = {"type": "interval", "seconds": 3600.0, "relative": False}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---- the fire queue


def test_the_queue_pops_due_jobs_earliest_first_and_each_once() -> None:
    queue = FireQueue()
    queue.push("late", at(30))
    queue.push("early", at(10))
    queue.push("later", at(60))
    assert queue.next_when() == at(10).timestamp()
    assert queue.pop_due(at(30).timestamp()) == ["early", "late"]
    assert queue.pop_due(at(30).timestamp()) == []
    assert queue.next_when() == at(60).timestamp()


def test_rescheduling_or_discarding_a_job_turns_its_old_item_stale() -> None:
    queue = FireQueue()
    queue.push("a", at(10))
    queue.push("a", at(20))  # moved: the item for 10 s must not fire
    queue.push("b", at(15))
    queue.discard("b")
    assert queue.pop_due(at(15).timestamp()) == []
    assert queue.next_when() == at(20).timestamp()
    assert queue.pop_due(at(20).timestamp()) == ["a"]
    assert queue.next_when() is None


# ---- the clock


def test_a_wall_clock_step_is_reported_and_ordinary_drift_is_not() -> None:
    clock = ClockWatch(threshold=5.0)
    assert clock.jump(1000.0, 50.0) == 0.0  # the first reading only sets the reference
    assert clock.jump(1001.0, 51.0) == 0.0
    assert clock.jump(1005.5, 52.0) == 0.0  # 2.5 s ahead of monotonic: within the threshold
    assert clock.jump(1065.5, 53.0) == 59.0
    assert clock.jump(966.5, 54.0) == -100.0


# ---- entry loading


def record(name: str, *, anchor: datetime = T0, data: dict[str, Any] | None = None, **fields: Any) -> JobRecord:
    values: dict[str, Any] = {
        "name": name,
        "task": f"tasks.{name}",
        "schedule_data": dict(data or HOURLY),
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
        "anchor": anchor,
        "last_run_at": None,
        "total_run_count": 0,
        "max_runs": None,
        "next_run_at": None,
        "source": "beat_schedule",
        "removed": False,
        "expired": False,
        "revision": 1,
        "created_at": anchor,
        "updated_at": anchor,
        "owner": "config",
        **fields,
    }
    return JobRecord.from_row(values)


def test_jobs_loaded_together_share_equal_schedules_but_not_different_ones() -> None:
    loader = EntryLoader(Celery("t", set_as_current=False), app_zone=UTC, nowfun=lambda: T0)
    loader.start_batch()
    a, b = loader.entry(record("a")), loader.entry(record("b"))
    other_anchor = loader.entry(record("c", anchor=at(1)))
    whole_seconds = loader.entry(record("d", data={"type": "interval", "seconds": 3600, "relative": False}))
    loader.end_batch()
    alone = loader.entry(record("e"))

    assert a.schedule is b.schedule
    assert other_anchor.schedule is not a.schedule
    assert whole_seconds.schedule is not a.schedule  # 3600 and 3600.0 are kept apart, even if equal
    assert alone.schedule is not a.schedule and alone.schedule == a.schedule
    assert loader.next_fire(a, T0) == loader.next_fire(alone, T0) == at(3600)
    assert loader.next_fire(other_anchor, T0) == at(3601)


# ---- the next-fire writer


def stored_store(tmp_path: Any, names: list[str]) -> JobStore:
    store = JobStore(f"sqlite:///{tmp_path / 'next.db'}")
    store.migrate()
    store.reconcile([JobDefinition(name, f"tasks.{name}", dict(HOURLY)) for name in names], now=T0)
    return store


def entries(store: JobStore, next_fire: datetime | None) -> list[Any]:
    loader = EntryLoader(Celery("t", set_as_current=False), app_zone=UTC, nowfun=lambda: T0)
    loaded = [loader.entry(job) for job in store.all_jobs()]
    for entry in loaded:
        entry.next_fire_at = next_fire
    return loaded


def test_the_writer_writes_only_what_differs_in_the_background_and_names_its_revisions(tmp_path: Any) -> None:
    names = [f"job-{i:03d}" for i in range(450)]
    store = stored_store(tmp_path, names)
    writer = NextFireWriter(store, chunk=100, pause=0.0)
    try:
        writer.queue(entries(store, None))  # already stored as None: nothing to write
        assert len(writer) == 0
        revision = store.current_revision()

        writer.queue(entries(store, at(3600)))
        assert len(writer) == 450
        writer.start()
        deadline = time.monotonic() + 30
        while len(writer) and time.monotonic() < deadline:
            time.sleep(0.01)

        assert len(writer) == 0
        assert {job.next_run_at for job in store.all_jobs()} == {at(3600)}
        # Five chunks of at most 100 rows, each its own revision, all reported as the writer's.
        assert writer.own_revisions() == set(range(revision + 1, store.current_revision() + 1))
        assert store.current_revision() == revision + 5
        assert writer.own_revisions() == set()
    finally:
        writer.stop()
        store.close()


def test_a_chunk_that_writes_nothing_claims_no_revision_for_the_writer(tmp_path: Any) -> None:
    # The values are stored already, so the writer's transaction moves no revision; a pause by
    # someone else lands between its two reads of the counter. That revision is the pause's: the
    # scheduler's poll must not skip it as the writer's own (it did, and missed the pause).
    store = stored_store(tmp_path, ["a", "b"])
    loaded = entries(store, at(3600))[:1]  # "a", loaded while its stored next fire was unset
    store.set_next_run({"a": at(3600), "b": at(3600)})  # then stored by someone
    real_set_next_run = store.set_next_run

    def set_next_run_while_paused_elsewhere(updates: Any) -> list[str]:
        changed = real_set_next_run(updates)
        store.set_paused(["b"], True)
        return changed

    store.set_next_run = set_next_run_while_paused_elsewhere  # type: ignore[method-assign]
    writer = NextFireWriter(store)
    try:
        before = store.current_revision()
        writer.queue(loaded)
        assert len(writer) == 1
        assert writer.write_chunk() is True
        assert store.current_revision() == before + 1  # the pause's revision only
        assert writer.own_revisions() == set()
    finally:
        writer.stop()
        store.close()


def test_the_poller_tells_others_changes_from_the_writers_own(tmp_path: Any) -> None:
    # "Run now" requests are looked for when someone else changed the store. A cold start's own
    # next-fire writes move the revision on nearly every tick; they must not set that look off.
    store = stored_store(tmp_path, ["a", "b"])
    writer = NextFireWriter(store)
    start = store.current_revision()
    poller = StorePoller(
        store,
        writer,
        interval=0.0,
        revision=start,
        monotonic=time.monotonic,
        outage=OutageWatch("store", meanwhile="waiting", after="going on"),
    )
    try:
        writer.queue(entries(store, at(3600)))
        assert writer.write_chunk() is True
        assert poller.changes() == []
        assert poller.revision == start + 1  # the writer's chunk, not read back
        assert poller.others_revision == start

        store.set_paused(["b"], True)  # someone else
        assert [job.name for job in poller.changes()] == ["b"]
        assert poller.revision == poller.others_revision == start + 2
    finally:
        writer.stop()
        store.close()


def test_stopping_the_writer_writes_what_is_left(tmp_path: Any) -> None:
    store = stored_store(tmp_path, ["a", "b", "c"])
    writer = NextFireWriter(store)
    try:
        writer.queue(entries(store, at(7200)))
        writer.stop()  # never started: the rows are written here
        assert {job.next_run_at for job in store.all_jobs()} == {at(7200)}
        assert not [thread for thread in threading.enumerate() if thread.name == "orchestra-next-fire-writer"]
    finally:
        store.close()


def test_a_writer_halted_while_its_write_hangs_ends_when_the_write_returns_not_later(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """halt() waits a little, not for ever; the hung thread ends after its write, even once a new one runs."""
    monkeypatch.setattr("celery_orchestra.beat.next_fires.HALT_WAIT", 0.2)
    store = stored_store(tmp_path, ["a", "b"])
    real_set_next_run = store.set_next_run
    unblock = threading.Event()
    hanging = threading.Event()

    def hangs_once(updates: Any) -> list[str]:
        if not unblock.is_set():
            hanging.set()
            unblock.wait(10)
        return real_set_next_run(updates)

    store.set_next_run = hangs_once  # type: ignore[method-assign]
    writer = NextFireWriter(store)

    def writers() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name == "orchestra-next-fire-writer"]

    try:
        writer.start()
        writer.queue(entries(store, at(7200)))
        assert hanging.wait(5)
        started = time.monotonic()
        writer.halt()
        assert time.monotonic() - started < 2
        writer.start()  # active again
        assert len(writers()) == 2  # the hung one and the new one
        unblock.set()
        deadline = time.monotonic() + 5
        while len(writers()) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(writers()) == 1, "the halted thread kept running beside the new one"
    finally:
        unblock.set()
        writer.stop()
        store.close()


def test_a_restart_on_an_unchanged_store_writes_nothing(tmp_path: Any) -> None:
    from celery_orchestra import Scheduler

    app = Celery("restart", broker="memory://", set_as_current=False)
    app.conf.update(
        beat_schedule={f"job-{i:02d}": {"task": "tasks.t", "schedule": 3600.0} for i in range(50)},
        result_expires=None,
        orchestra_remote_control=False,
        orchestra_database_url=f"sqlite:///{tmp_path / 'restart.db'}",
    )
    first = Scheduler(app, schedule_filename=str(tmp_path / "beat"))
    first.close()  # writes whatever the writer had not written yet
    store = JobStore(app.conf.orchestra_database_url)
    try:
        assert all(job.next_run_at is not None for job in store.all_jobs())
        revision = store.current_revision()

        second = Scheduler(app, schedule_filename=str(tmp_path / "beat"))
        assert second.unwritten_next_fires == 0
        second.close()

        assert store.current_revision() == revision
    finally:
        store.close()


def test_a_cold_start_stores_each_new_jobs_first_fire_with_its_row(tmp_path: Any) -> None:
    from celery_orchestra import Scheduler

    app = Celery("cold", broker="memory://", set_as_current=False)
    app.conf.update(
        beat_schedule={
            "hourly": {"task": "tasks.t", "schedule": 3600.0},
            "daily": {"task": "tasks.t", "schedule": "every day at 03:15"},
            "off": {"task": "tasks.t", "schedule": 60.0, "enabled": False},
            "past": {"task": "tasks.t", "schedule": "2020-01-01 10:00"},
        },
        result_expires=None,
        orchestra_remote_control=False,
        orchestra_database_url=f"sqlite:///{tmp_path / 'cold.db'}",
    )
    scheduler = Scheduler(app, schedule_filename=str(tmp_path / "beat"))
    store = JobStore(app.conf.orchestra_database_url)
    try:
        assert scheduler.unwritten_next_fires == 0  # nothing left for the writer thread
        stored = {job.name: job.next_run_at for job in store.all_jobs()}
        expected = {name: entry.next_fire_at for name, entry in scheduler.schedule.items()}
        assert stored == expected
        assert stored["hourly"] == store.get_job("hourly").anchor + timedelta(hours=1)  # type: ignore[union-attr]
        assert stored["daily"] is not None
        assert stored["off"] is None and stored["past"] is None
    finally:
        scheduler.close()
        store.close()


# ---- entries built when first used


def test_a_pending_entry_is_built_once_on_first_use_with_what_was_worked_out() -> None:
    loader = EntryLoader(Celery("t", set_as_current=False), app_zone=UTC, nowfun=lambda: T0)
    loader.start_batch()
    expired: list[str] = []
    pending = loader.pending(record("a"), T0, expired)
    loader.end_batch()
    assert pending is not None and expired == []
    entries = Entries(loader.build)
    entries.add_pending(pending)
    assert len(entries) == 1 and "a" in entries and list(entries) == ["a"]
    assert dict(entries.pending) == {"a": pending}

    entry = entries["a"]
    assert entry is entries["a"]  # built once
    assert not entries.pending and len(entries) == 1
    assert entry.next_fire_at == pending.next_fire_at == at(3600)
    assert entry.state == "Running" and entry.schedule is pending.schedule

    del entries["a"]
    assert len(entries) == 0 and "a" not in entries
    with pytest.raises(KeyError):
        entries["a"]


def test_a_pending_job_gets_the_state_and_next_fire_an_entry_would_have() -> None:
    loader = EntryLoader(Celery("t", set_as_current=False), app_zone=UTC, nowfun=lambda: T0)
    once = {"type": "timing", "expression": "2020-01-01 10:00"}
    cases = {
        "running": record("running"),
        "paused": record("paused", paused=True),
        "disabled": record("disabled", enabled=False),
        "removed": record("removed", removed=True),
        "passed": record("passed", data=once, kind="once", max_runs=1),
    }
    expired: list[str] = []
    for name, stored in cases.items():
        pending = loader.pending(stored, T0, expired)
        entry = loader.entry(stored)
        assert pending is not None
        assert pending.expired == loader.expire_if_passed(entry) == (name == "passed"), name
        assert pending.next_fire_at == loader.next_fire(entry, T0), name
        assert loader.build(pending).state == entry.state, name
    assert expired == ["passed"]


def test_jobs_alike_are_worked_out_once_yet_each_is_expired_logged_and_queued(caplog: Any) -> None:
    loader = EntryLoader(Celery("t", set_as_current=False), app_zone=UTC, nowfun=lambda: T0)
    once = {"type": "timing", "expression": "2020-01-01 10:00"}
    broken = {"type": "nonsense"}
    stored = [
        record("passed-1", data=once, kind="once", max_runs=1),
        record("passed-2", data=once, kind="once", max_runs=1),
        record("hourly-1"),
        record("hourly-2"),
        record("broken-1", data=broken),
        record("broken-2", data=broken),
    ]
    jobs = JobColumns.of(stored)
    loader.start_batch()
    expired: list[str] = []
    pending = loader.pending_entries(jobs, T0, expired)
    loader.end_batch()

    assert [each.name for each in pending] == ["passed-1", "passed-2", "hourly-1", "hourly-2"]
    assert expired == ["passed-1", "passed-2"]
    assert [each.expired for each in pending] == [True, True, False, False]
    assert [each.next_fire_at for each in pending] == [None, None, at(3600), at(3600)]
    assert [each.record for each in pending] == stored[:4]
    assert caplog.text.count("is expired") == 2
    assert "'broken-1' cannot be loaded" in caplog.text and "'broken-2' cannot be loaded" in caplog.text


def test_a_row_that_cannot_be_loaded_is_skipped_with_its_name(caplog: Any) -> None:
    loader = EntryLoader(Celery("t", set_as_current=False), app_zone=UTC, nowfun=lambda: T0)
    assert loader.pending(record("broken", data={"type": "nonsense"}), T0, []) is None
    assert "job 'broken' cannot be loaded from the store" in caplog.text
