"""JobStore behaviour on SQLite and PostgreSQL: reconcile, change detection, the run ledger, operator state."""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from celery_orchestra.errors import ControlError
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.store import (
    InvalidJobError,
    JobNotFound,
    JobRecord,
    JobStore,
    LedgerEntry,
    ReconcileReport,
    RunRecord,
    StoreError,
    ledger,
)
from tests.ledger import record_runs

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def job(name: str, seconds: float = 60, **fields: Any) -> JobDefinition:
    fields.setdefault("task", f"tasks.{name}")
    return JobDefinition(name=name, schedule_data={"type": "interval", "seconds": seconds, "relative": False}, **fields)


def one_off(name: str, expression: str) -> JobDefinition:
    return JobDefinition(name=name, task=f"tasks.{name}", schedule_data={"type": "timing", "expression": expression})


def reconcile(store: JobStore, definitions: Sequence[JobDefinition], now: datetime = T0) -> ReconcileReport:
    return store.reconcile(definitions, now=now)


def run(name: str, fire_time: datetime, next_run_at: datetime | None = None, task_id: str | None = None) -> RunRecord:
    return RunRecord(
        job_name=name,
        fire_time=fire_time,
        sent_at=fire_time + timedelta(milliseconds=5),
        task_id=task_id or f"{name}@{fire_time.isoformat()}",
        next_run_at=next_run_at,
    )


def stored(store: JobStore, name: str) -> JobRecord:
    record = store.get_job(name)
    assert record is not None, f"job {name!r} is not stored"
    return record


# -- reconcile -----------------------------------------------------------------------------------


def test_new_jobs_are_inserted_with_their_configuration_and_anchor_now(store: JobStore) -> None:
    definitions = [
        job("report", 300, args=(1, "x"), kwargs={"k": [1, 2]}, options={"queue": "q"}, tags=("ops", "daily")),
        one_off("launch", "once at 2026-02-01 10:00"),
    ]
    report = reconcile(store, definitions)

    assert report.added == ("launch", "report")
    assert report.revision == store.current_revision() > 0
    record = stored(store, "report")
    assert record.task == "tasks.report"
    assert record.schedule_data == {"type": "interval", "seconds": 300, "relative": False}
    assert record.kind == "cyclic"
    assert record.args == (1, "x")
    assert record.kwargs == {"k": [1, 2]}
    assert record.options == {"queue": "q"}
    assert record.tags == ("ops", "daily")
    assert (record.enabled, record.paused, record.removed, record.expired) == (True, False, False, False)
    assert record.anchor == record.created_at == T0
    assert record.anchor.tzinfo is UTC
    assert (record.last_run_at, record.total_run_count, record.next_run_at, record.max_runs) == (None, 0, None, None)
    assert record.revision == report.revision
    assert stored(store, "launch").kind == "once"
    assert stored(store, "launch").max_runs == 1


def test_a_reconcile_hands_on_every_job_as_stored_whatever_the_order_of_the_configuration(store: JobStore) -> None:
    first = [job(name) for name in ("a", "b", "c", "d", "e", "gone")]
    reconcile(store, first)
    reconcile(store, first[:-1])
    store.set_paused(["c"], True, now=T0)
    # Configured in another order than stored: "b" is no longer configured, "f" is new, "a" has a
    # new timing and "d" a new task; "c" (paused by an operator) and "e" are unchanged.
    again = [job("f"), job("e"), job("d", task="tasks.other"), job("c"), job("a", 120)]
    report = reconcile(store, again, now=T0 + timedelta(hours=1))

    assert (report.added, report.retimed, report.changed, report.unchanged) == (("f",), ("a",), ("d",), ("c", "e"))
    assert (report.removed, report.already_removed) == (("b",), ("gone",))
    assert list(report.jobs) == store.all_jobs()
    assert [each.name for each in report.jobs] == ["a", "b", "c", "d", "e", "f", "gone"]


def test_jobs_sharing_their_schedule_each_store_their_own_other_values(store: JobStore) -> None:
    shared = {"type": "interval", "seconds": 60, "relative": False}
    same_kwargs = {"k": 1}
    empty_list: Any = []  # a definition built by hand may hold a list
    definitions = [
        JobDefinition("plain", "t", shared),
        JobDefinition("kwargs-1", "t", shared, kwargs=same_kwargs),
        JobDefinition("kwargs-2", "t", shared, kwargs=same_kwargs),
        JobDefinition("kwargs-3", "t", shared, kwargs={"k": 3}),
        JobDefinition("args", "t", shared, args=(1,)),
        JobDefinition("list-args", "t", shared, args=empty_list),
        JobDefinition("tagged", "t", shared, tags=("x",)),
        JobDefinition("off", "t", shared, enabled=False),
        JobDefinition("other-task", "u", shared),
        JobDefinition("berlin", "t", shared, timezone="Europe/Berlin"),
    ]
    reconcile(store, definitions)

    assert [stored(store, name).kwargs for name in ("plain", "kwargs-1", "kwargs-2", "kwargs-3")] == [
        {},
        {"k": 1},
        {"k": 1},
        {"k": 3},
    ]
    assert stored(store, "args").args == (1,) and stored(store, "list-args").args == ()
    assert stored(store, "tagged").tags == ("x",) and stored(store, "plain").tags == ()
    assert stored(store, "off").enabled is False and stored(store, "plain").enabled is True
    assert stored(store, "other-task").task == "u" and stored(store, "berlin").timezone == "Europe/Berlin"
    assert not reconcile(store, definitions).wrote_anything


def test_new_jobs_get_the_first_fire_of_their_own_schedule_and_zone(store: JobStore) -> None:
    shared = {"type": "interval", "seconds": 60, "relative": False}
    offsets = {None: 1, "Europe/Berlin": 2, "Asia/Tokyo": 3}
    asked: list[str] = []

    def first_fire(definition: JobDefinition, anchor: datetime) -> datetime | None:
        asked.append(definition.name)
        return anchor + timedelta(minutes=offsets[definition.timezone] * definition.schedule_data["seconds"] / 60)

    definitions = [
        JobDefinition("utc-1", "t", shared),
        JobDefinition("utc-2", "t", shared),
        JobDefinition("berlin", "t", shared, timezone="Europe/Berlin"),
        JobDefinition("tokyo", "t", shared, timezone="Asia/Tokyo"),
        JobDefinition("off", "t", shared, enabled=False),
        JobDefinition("slower", "t", {"type": "interval", "seconds": 120, "relative": False}),
    ]
    store.reconcile(definitions, now=T0, first_fire=first_fire)

    expected = {"utc-1": 1, "utc-2": 1, "berlin": 2, "tokyo": 3, "slower": 2}
    for name, minutes in expected.items():
        assert stored(store, name).next_run_at == T0 + timedelta(minutes=minutes), name
    assert stored(store, "off").next_run_at is None
    assert sorted(asked) == ["berlin", "slower", "tokyo", "utc-1"]  # once per schedule and zone


def test_a_reconcile_in_the_stored_order_finds_the_one_job_that_changed(store: JobStore) -> None:
    names = [f"job-{number:02d}" for number in range(12)]
    reconcile(store, [job(name) for name in names])
    again = [job(name, options={"queue": "slow"}) if name == "job-07" else job(name) for name in names]
    report = reconcile(store, again, now=T0 + timedelta(hours=1))

    assert report.changed == ("job-07",)
    assert report.unchanged == tuple(name for name in names if name != "job-07")
    assert list(report.jobs) == store.all_jobs()
    assert stored(store, "job-07").options == {"queue": "slow"}

    unchanged = reconcile(store, again, now=T0 + timedelta(hours=2))
    assert not unchanged.wrote_anything and unchanged.unchanged == tuple(names)
    assert list(unchanged.jobs) == store.all_jobs()


def test_an_unchanged_job_keeps_anchor_last_run_and_counts_and_nothing_is_written(store: JobStore) -> None:
    definitions = [job("a"), job("b")]
    reconcile(store, definitions)
    record_runs(store, [run("a", T0 + timedelta(minutes=1), next_run_at=T0 + timedelta(minutes=2))])
    before = stored(store, "a")
    revision = store.current_revision()

    report = reconcile(store, definitions, now=T0 + timedelta(days=1))

    assert report.unchanged == ("a", "b")
    assert report.revision is None
    assert not report.wrote_anything
    assert store.current_revision() == revision
    assert stored(store, "a") == before
    assert before.anchor == T0
    assert (before.last_run_at, before.total_run_count) == (T0 + timedelta(minutes=1), 1)


@pytest.mark.parametrize(
    "retimed",
    [job("a", 120), job("a", 60, timezone="Europe/Paris")],
    ids=["schedule", "timezone"],
)
def test_a_changed_timing_moves_the_anchor_and_clears_next_run_but_keeps_history(
    store: JobStore, retimed: JobDefinition
) -> None:
    reconcile(store, [job("a"), job("b")])
    record_runs(store, [run("a", T0 + timedelta(minutes=1), next_run_at=T0 + timedelta(minutes=2))])
    later = T0 + timedelta(hours=3)

    report = reconcile(store, [retimed, job("b")], now=later)

    assert report.retimed == ("a",)
    assert report.unchanged == ("b",)
    record = stored(store, "a")
    assert record.anchor == later
    assert record.next_run_at is None
    assert record.last_run_at == T0 + timedelta(minutes=1)
    assert record.total_run_count == 1
    assert record.created_at == T0
    assert record.schedule_data == retimed.schedule_data
    assert record.timezone == retimed.timezone
    assert stored(store, "b").anchor == T0


def test_other_changes_are_applied_in_place_without_retiming(store: JobStore) -> None:
    reconcile(store, [job("a")])
    store.set_next_run({"a": T0 + timedelta(minutes=1)})
    changed = job(
        "a",
        task="tasks.renamed",
        args=(2,),
        kwargs={"x": 1},
        options={"queue": "other"},
        tags=("new",),
        source="schedule.yaml:3",
    )

    report = reconcile(store, [changed], now=T0 + timedelta(hours=1))

    assert report.changed == ("a",)
    record = stored(store, "a")
    assert (record.task, record.args, record.kwargs, record.options, record.tags, record.source) == (
        "tasks.renamed",
        (2,),
        {"x": 1},
        {"queue": "other"},
        ("new",),
        "schedule.yaml:3",
    )
    assert record.anchor == T0
    assert record.next_run_at == T0 + timedelta(minutes=1)
    assert record.revision == report.revision


def test_a_job_gone_from_the_configuration_is_kept_as_removed_and_restored_when_it_returns(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b")])
    record_runs(store, [run("b", T0 + timedelta(minutes=1), next_run_at=T0 + timedelta(minutes=2))])

    gone = reconcile(store, [job("a")], now=T0 + timedelta(hours=1))
    assert gone.removed == ("b",)
    removed = stored(store, "b")
    assert removed.removed
    assert removed.next_run_at is None
    assert removed.total_run_count == 1
    assert [entry.fire_time for entry in store.history("b")] == [T0 + timedelta(minutes=1)]
    assert [record.name for record in store.all_jobs(include_removed=False)] == ["a"]
    assert [record.name for record in store.all_jobs()] == ["a", "b"]

    still_gone = reconcile(store, [job("a")], now=T0 + timedelta(hours=2))
    assert still_gone.already_removed == ("b",)
    assert still_gone.revision is None

    back = reconcile(store, [job("a"), job("b")], now=T0 + timedelta(hours=3))
    assert back.restored == ("b",)
    restored = stored(store, "b")
    assert not restored.removed
    assert restored.anchor == T0  # same timing: same anchor
    assert (restored.last_run_at, restored.total_run_count) == (T0 + timedelta(minutes=1), 1)


def test_pause_is_operator_state_that_survives_reconcile_retiming_and_removal(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b")])
    assert store.set_paused(["a"], True) == ["a"]

    reconcile(store, [job("a", 30), job("b")], now=T0 + timedelta(hours=1))
    assert stored(store, "a").paused
    reconcile(store, [job("b")], now=T0 + timedelta(hours=2))
    reconcile(store, [job("a", 30), job("b")], now=T0 + timedelta(hours=3))
    assert stored(store, "a").paused
    assert not stored(store, "b").paused


def test_enabled_follows_the_configuration_only_when_the_configured_value_changes(store: JobStore) -> None:
    reconcile(store, [job("a")])
    assert store.set_enabled(["a"], False) == ["a"]

    reconcile(store, [job("a")], now=T0 + timedelta(hours=1))  # a redeploy: config still says enabled
    record = stored(store, "a")
    assert (record.enabled, record.configured_enabled) == (False, True)

    reconcile(store, [job("a", enabled=False)], now=T0 + timedelta(hours=2))
    assert store.set_enabled(["a"], True) == ["a"]
    reconcile(store, [job("a", enabled=False)], now=T0 + timedelta(hours=3))
    assert stored(store, "a").enabled  # the operator's choice stands

    report = reconcile(store, [job("a", enabled=True)], now=T0 + timedelta(hours=4))
    assert report.changed == ("a",)
    assert stored(store, "a").enabled
    report = reconcile(store, [job("a", enabled=False)], now=T0 + timedelta(hours=5))
    assert not stored(store, "a").enabled  # the configuration changed: it wins


def test_expired_survives_a_reconcile_and_is_cleared_by_a_new_timing(store: JobStore) -> None:
    # Whether a one-off had already passed when it was registered is the scheduler's call
    # (set_expired); the store keeps the flag until the job's timing changes.
    reconcile(store, [one_off("late", "once at 2020-01-01 00:00"), job("tick")])
    assert not stored(store, "late").expired
    assert store.set_expired(["late"]) == ["late"]

    reconcile(store, [one_off("late", "once at 2020-01-01 00:00"), job("tick")])
    assert stored(store, "late").expired
    assert not stored(store, "tick").expired

    reconcile(store, [one_off("late", "once at 2027-01-01 00:00"), job("tick")])
    assert not stored(store, "late").expired


def test_duplicate_names_are_refused_with_both_sources_and_nothing_is_written(store: JobStore) -> None:
    reconcile(store, [job("a")])
    revision = store.current_revision()

    with pytest.raises(InvalidJobError, match=r"duplicate job name 'b': defined in one.yaml:1 and again in two.yaml:7"):
        reconcile(store, [job("a", 5), job("b", source="one.yaml:1"), job("b", source="two.yaml:7")])

    assert store.current_revision() == revision
    assert [record.name for record in store.all_jobs()] == ["a"]
    assert stored(store, "a").schedule_data["seconds"] == 60


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (job("bad", kwargs={"when": datetime(2026, 1, 1)}), r"job 'bad' \(beat_schedule\): kwargs cannot be stored"),
        (job("bad", args=({1, 2},)), r"job 'bad' \(beat_schedule\): args cannot be stored"),
        (job("bad", kwargs={"x": float("nan")}), r"job 'bad' \(beat_schedule\): kwargs cannot be stored"),
        (job("x" * 256), r"the name is longer than 255"),
        (job("bad", tags=("ok", 3)), r"tags must be strings"),  # type: ignore[arg-type]
    ],
    ids=["datetime-kwarg", "set-arg", "nan", "long-name", "non-string-tag"],
)
def test_unstorable_definitions_are_refused_naming_the_job(
    store: JobStore, definition: JobDefinition, message: str
) -> None:
    reconcile(store, [job("a")])
    revision = store.current_revision()
    with pytest.raises(InvalidJobError, match=message):
        reconcile(store, [job("a", 5), definition])
    assert store.current_revision() == revision
    assert stored(store, "a").schedule_data["seconds"] == 60


def test_an_unusable_schedule_leaves_the_store_untouched(store: JobStore) -> None:
    reconcile(store, [job("a")])
    broken = JobDefinition(name="z", task="tasks.z", schedule_data={"type": "hourglass"})

    with pytest.raises(InvalidJobError, match=r"job 'z' \(beat_schedule\): unusable schedule .*'hourglass'"):
        store.reconcile([job("a", 5), broken], now=T0)
    assert [record.name for record in store.all_jobs()] == ["a"]
    assert stored(store, "a").schedule_data["seconds"] == 60


def test_reconcile_refuses_a_naive_now(store: JobStore) -> None:
    with pytest.raises(ValueError, match=r"reconcile\(now=...\) is a naive datetime"):
        store.reconcile([job("a")], now=datetime(2026, 1, 1))


# -- change detection ----------------------------------------------------------------------------


def test_every_write_bumps_the_counter_and_stamps_only_the_rows_it_wrote(store: JobStore) -> None:
    reconcile(store, [job(name) for name in "abcdefg"])

    def changed_by(write: Any) -> list[str]:
        seen = store.current_revision()
        write()
        revision, records = store.changes_since(seen)
        assert revision == store.current_revision() > seen
        assert all(record.revision == revision for record in records)
        return [record.name for record in records]

    assert changed_by(lambda: store.set_paused(["a"], True)) == ["a"]
    assert changed_by(lambda: store.set_enabled(["b"], False)) == ["b"]
    assert changed_by(lambda: record_runs(store, [run("c", T0)])) == ["c"]
    assert changed_by(lambda: store.set_next_run({"d": T0})) == ["d"]
    assert changed_by(lambda: store.set_expired(["e"])) == ["e"]
    assert changed_by(lambda: store.save_progress({"f": (T0, 3, T0 + timedelta(minutes=1))})) == ["f"]
    assert changed_by(lambda: store.touch(["g"])) == ["g"]
    assert changed_by(lambda: reconcile(store, [job(name) for name in "abcdef"] + [job("g", 5)])) == ["g"]


def test_writes_that_change_nothing_do_not_move_the_counter(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b")])
    store.set_paused(["a"], True)
    record_runs(store, [run("b", T0, next_run_at=T0)])
    revision = store.current_revision()

    assert store.set_paused(["a"], True) == []
    assert store.set_paused(["b"], False) == []
    assert store.set_enabled(["a", "b"], True) == []
    assert store.set_next_run({"b": T0}) == []
    assert record_runs(store, [run("b", T0)]) == []
    assert store.current_revision() == revision
    assert store.save_progress({"b": (T0, 0, None)}) == ["b"]  # next_run_at differs (None)
    revision = store.current_revision()
    assert store.save_progress({"b": (T0, 0, None)}) == []
    assert store.current_revision() == revision
    _, records = store.changes_since(revision)
    assert records == []


def test_changes_since_reads_only_rows_newer_than_the_given_revision(store: JobStore) -> None:
    reconcile(store, [job(f"job-{number:04d}") for number in range(1500)])
    seen = store.current_revision()
    store.set_paused(["job-0007", "job-1499"], True)
    store.set_next_run({"job-0100": T0})

    engine = store.engine
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        revision, records = store.changes_since(seen)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)

    assert sorted(record.name for record in records) == ["job-0007", "job-0100", "job-1499"]
    assert revision == seen + 2
    job_queries = [statement for statement in statements if "FROM orchestra_jobs" in statement]
    assert len(job_queries) == 1
    assert "orchestra_jobs.revision >" in job_queries[0]
    assert store.changes_since(revision) == (revision, [])


def test_the_revision_query_can_use_its_index(store: JobStore) -> None:
    engine = store.engine
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT * FROM orchestra_jobs WHERE revision > 5"
                )
            )
        else:
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(
                str(row[0])
                for row in connection.exec_driver_sql("EXPLAIN SELECT * FROM orchestra_jobs WHERE revision > 5")
            )
    assert "ix_orchestra_jobs_revision" in plan


def test_external_edits_become_visible_through_touch_or_the_documented_sql(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b")])
    seen = store.current_revision()
    engine = store.engine
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE orchestra_jobs SET task = 'tasks.edited' WHERE name = 'a'")
    assert store.changes_since(seen) == (seen, [])  # not bumped: invisible

    revision = store.touch(["a"])
    assert revision == seen + 1
    _, records = store.changes_since(seen)
    assert [(record.name, record.task) for record in records] == [("a", "tasks.edited")]

    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE orchestra_jobs SET task = 'tasks.by_sql' WHERE name = 'b'")
        connection.exec_driver_sql("UPDATE orchestra_meta SET revision = revision + 1 WHERE id = 1")
        connection.exec_driver_sql(
            "UPDATE orchestra_jobs SET revision = (SELECT revision FROM orchestra_meta WHERE id = 1) "
            "WHERE name IN ('b')"
        )
    _, records = store.changes_since(revision)
    assert [(record.name, record.task) for record in records] == [("b", "tasks.by_sql")]


def test_touch_of_an_unknown_name_changes_nothing(store: JobStore) -> None:
    reconcile(store, [job("a")])
    revision = store.current_revision()
    with pytest.raises(JobNotFound, match="unknown job: 'nope'"):
        store.touch(["a", "nope"])
    assert store.current_revision() == revision


# -- the run ledger ------------------------------------------------------------------------------


def test_record_runs_counts_new_runs_and_moves_last_and_next_run_to_the_newest(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b")])
    later, earlier = run("a", T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)), run("a", T0 + timedelta(minutes=1))
    paris = timezone(timedelta(hours=1))

    new = record_runs(store, [later, earlier, run("b", (T0 + timedelta(minutes=1)).astimezone(paris), T0)])

    assert [record.job_name for record in new] == ["a", "a", "b"]
    a = stored(store, "a")
    assert (a.total_run_count, a.last_run_at, a.next_run_at) == (2, later.fire_time, later.next_run_at)
    b = stored(store, "b")
    assert b.last_run_at == T0 + timedelta(minutes=1)
    assert b.last_run_at is not None and b.last_run_at.tzinfo is UTC
    assert store.history("a") == [
        LedgerEntry("a", later.fire_time, later.sent_at, later.task_id),
        LedgerEntry("a", earlier.fire_time, earlier.sent_at, earlier.task_id),
    ]
    assert [entry.fire_time for entry in store.history("a", limit=1)] == [later.fire_time]


def test_a_fire_time_already_in_the_ledger_is_skipped_and_not_counted(store: JobStore) -> None:
    reconcile(store, [job("a")])
    first = run("a", T0, T0 + timedelta(minutes=1))
    assert record_runs(store, [first]) == [first]

    again = run("a", T0, T0 + timedelta(minutes=9), task_id="another-process")
    newer = run("a", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    assert record_runs(store, [again, newer, newer]) == [newer]

    record = stored(store, "a")
    assert record.total_run_count == 2
    assert record.next_run_at == T0 + timedelta(minutes=2)
    assert [entry.task_id for entry in store.history("a")] == [newer.task_id, first.task_id]


def test_a_late_recorded_older_run_is_counted_but_does_not_move_last_run_back(store: JobStore) -> None:
    reconcile(store, [job("a")])
    record_runs(store, [run("a", T0 + timedelta(minutes=5), T0 + timedelta(minutes=6))])
    record_runs(store, [run("a", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))])
    record = stored(store, "a")
    assert record.total_run_count == 2
    assert record.last_run_at == T0 + timedelta(minutes=5)
    assert record.next_run_at == T0 + timedelta(minutes=6)


def test_two_stores_on_one_database_never_record_the_same_fire_time_twice(store_url: str) -> None:
    first, second = JobStore(store_url), JobStore(store_url)
    first.migrate()
    second.migrate()
    try:
        names = [f"job-{number}" for number in range(20)]
        reconcile(first, [job(name) for name in names])
        fire_times = [T0 + timedelta(minutes=minute) for minute in range(10)]
        runs = [run(name, fire) for name in names for fire in fire_times]
        results: dict[str, list[RunRecord]] = {}
        start = threading.Barrier(2)

        def dispatch(label: str, job_store: JobStore, batch: list[RunRecord]) -> None:
            start.wait()
            sent: list[RunRecord] = []
            for offset in range(0, len(batch), 25):
                sent.extend(record_runs(job_store, batch[offset : offset + 25]))
            results[label] = sent

        threads = [
            threading.Thread(target=dispatch, args=("first", first, runs)),
            threading.Thread(target=dispatch, args=("second", second, list(reversed(runs)))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        by_first = {(r.job_name, r.fire_time) for r in results["first"]}
        by_second = {(r.job_name, r.fire_time) for r in results["second"]}
        assert not by_first & by_second
        assert by_first | by_second == {(r.job_name, r.fire_time) for r in runs}
        assert all(stored(first, name).total_run_count == len(fire_times) for name in names)
        assert all(stored(second, name).last_run_at == fire_times[-1] for name in names)
    finally:
        first.close()
        second.close()


def test_ten_thousand_runs_are_recorded_in_one_batch_without_per_row_round_trips(store: JobStore) -> None:
    names = [f"job-{number:03d}" for number in range(500)]
    reconcile(store, [job(name) for name in names])
    fire_times = [T0 + timedelta(minutes=minute) for minute in range(20)]
    runs = [run(name, fire, fire + timedelta(minutes=1)) for name in names for fire in fire_times]
    record_runs(store, runs[::10])  # 1,000 already in the ledger

    engine = store.engine
    round_trips = 0

    def count(*_: Any) -> None:
        nonlocal round_trips
        round_trips += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    started = time.perf_counter()
    try:
        new = record_runs(store, runs)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    elapsed = time.perf_counter() - started

    assert len(runs) == 10_000
    assert len(new) == 9_000
    assert round_trips < 40, f"{round_trips} statements for 10,000 runs"
    assert elapsed < 30, f"recording 10,000 runs took {elapsed:.1f} s"
    records = {record.name: record for record in store.all_jobs()}
    assert all(record.total_run_count == 20 for record in records.values())
    assert all(record.last_run_at == fire_times[-1] for record in records.values())
    assert all(record.next_run_at == fire_times[-1] + timedelta(minutes=1) for record in records.values())


def test_runs_of_unknown_jobs_are_skipped_with_a_warning(store: JobStore, caplog: pytest.LogCaptureFixture) -> None:
    reconcile(store, [job("a")])
    with caplog.at_level(logging.WARNING, logger="celery_orchestra.store"):
        new = record_runs(store, [run("ghost", T0), run("a", T0)])
    assert [record.job_name for record in new] == ["a"]
    assert "not recording runs of jobs missing from" in caplog.text
    assert "ghost" in caplog.text


def test_record_runs_refuses_naive_datetimes_before_writing(store: JobStore) -> None:
    reconcile(store, [job("a")])
    revision = store.current_revision()
    naive = RunRecord("a", datetime(2026, 1, 1, 9), T0, "t", None)
    with pytest.raises(ValueError, match=r"fire_time of run of job 'a' is a naive datetime"):
        record_runs(store, [run("a", T0), naive])
    assert store.current_revision() == revision
    assert store.history("a") == []


def test_claim_release_and_save_progress(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b")])
    runs = [run("a", T0), run("b", T0)]
    revision = store.current_revision()

    assert store.claim_runs(runs) == runs
    assert store.claim_runs(runs) == []
    assert store.current_revision() == revision  # claims write the ledger only
    assert stored(store, "a").total_run_count == 0

    store.release_runs([runs[1], run("a", T0, task_id="not-mine")])
    # Claimed, not yet confirmed as sent: in the ledger, marked unconfirmed.
    assert [(e.task_id, e.confirmed) for e in store.history("a")] == [(runs[0].task_id, False)]
    assert [(e.task_id, e.confirmed) for e in store.history("b")] == []  # b's claim was released
    assert store.claim_runs(runs) == [runs[1]]

    progress = {"a": (T0, 1, T0 + timedelta(minutes=1)), "b": (T0, 1, None)}
    assert sorted(store.save_progress(progress, published=runs)) == ["a", "b"]
    assert [(e.task_id, e.confirmed) for e in store.history("a")] == [(runs[0].task_id, True)]
    a = stored(store, "a")
    assert (a.last_run_at, a.total_run_count, a.next_run_at) == (T0, 1, T0 + timedelta(minutes=1))
    assert store.save_progress({"a": (T0, 0, T0 + timedelta(minutes=1))}) == []
    # Counts add up and the last run never moves backwards (two beats writing their own progress).
    assert store.save_progress({"a": (T0 - timedelta(minutes=5), 2, T0 + timedelta(minutes=1))}) == ["a"]
    a = stored(store, "a")
    assert (a.last_run_at, a.total_run_count) == (T0, 3)
    with pytest.raises(JobNotFound):
        store.save_progress({"a": (T0, 5, None), "zz": (None, 0, None)})
    assert stored(store, "a").total_run_count == 3


def test_a_run_confirmed_by_two_schedulers_is_counted_once(store: JobStore) -> None:
    reconcile(store, [job("a")])
    claim = run("a", T0)
    assert store.claim_runs([claim]) == [claim]
    store.save_progress({"a": (T0, 1, None)}, published=[claim])  # the claimer confirms it
    store.save_progress({"a": (T0, 1, None)}, published=[claim])  # a second beat adopts it too
    assert stored(store, "a").total_run_count == 1


def test_prune_runs_deletes_old_ledger_rows_only(store: JobStore) -> None:
    reconcile(store, [job("a")])
    record_runs(store, [run("a", T0 + timedelta(minutes=minute)) for minute in range(5)])
    assert store.prune_runs(T0 + timedelta(minutes=3)) == 3
    assert [entry.fire_time for entry in store.history("a")] == [T0 + timedelta(minutes=4), T0 + timedelta(minutes=3)]
    assert store.prune_runs(T0) == 0
    assert stored(store, "a").total_run_count == 5


def test_pruning_keeps_unconfirmed_claims_for_recovery_and_goes_batch_by_batch(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    reconcile(store, [job("a")])
    minutes = [T0 + timedelta(minutes=minute) for minute in range(7)]
    record_runs(store, [run("a", fire) for fire in minutes[:5]])
    store.claim_runs([run("a", minutes[5]), run("a", minutes[6])])  # never confirmed
    monkeypatch.setattr(ledger, "PRUNE_BATCH", 2)

    assert store.prune_runs(T0 + timedelta(hours=1), batches=1) == 2
    assert store.prune_runs(T0 + timedelta(hours=1)) == 3
    assert [(e.fire_time, e.confirmed) for e in store.history("a")] == [(minutes[6], False), (minutes[5], False)]


def test_forget_deletes_a_removed_job_with_its_history_and_nothing_else(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b")])
    record_runs(store, [run("a", T0), run("b", T0)])
    with pytest.raises(ControlError, match="job 'a' is still configured"):
        store.forget_job("a")
    reconcile(store, [job("b")])  # "a" is removed from the configuration
    with pytest.raises(JobNotFound):
        store.forget_job("nope")

    assert store.forget_job("a") == 1
    assert store.get_job("a") is None
    assert [e.job_name for e in store.history("b")] == ["b"]
    assert stored(store, "b").total_run_count == 1


def test_set_next_run_writes_changed_values_and_refuses_unknown_names(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b")])
    assert store.set_next_run({"a": T0, "b": None}) == ["a"]
    assert stored(store, "a").next_run_at == T0
    revision = store.current_revision()
    with pytest.raises(JobNotFound, match="unknown jobs: 'x', 'y'"):
        store.set_next_run({"a": T0 + timedelta(hours=1), "x": T0, "y": None})
    assert store.current_revision() == revision
    assert stored(store, "a").next_run_at == T0


# -- operator state ------------------------------------------------------------------------------


def test_pause_and_resume_are_idempotent_and_report_what_changed(store: JobStore) -> None:
    reconcile(store, [job("a"), job("b"), job("c")])
    assert store.set_paused(["a", "b", "a"], True) == ["a", "b"]
    assert store.set_paused(["b", "c"], True) == ["c"]
    assert store.set_paused(["a", "b", "c"], True) == []
    assert store.set_paused(["c"], False) == ["c"]
    assert [(r.name, r.paused) for r in store.all_jobs()] == [("a", True), ("b", True), ("c", False)]
    assert store.set_paused([], True) == []


def test_an_unknown_name_fails_the_whole_pause_and_lists_every_unknown_name(store: JobStore) -> None:
    reconcile(store, [job("a")])
    revision = store.current_revision()
    with pytest.raises(JobNotFound) as raised:
        store.set_paused(["a", "nope", "nada"], True)
    assert raised.value.names == ("nope", "nada")
    assert str(raised.value) == "unknown jobs: 'nope', 'nada'"
    assert isinstance(raised.value, KeyError)
    assert not stored(store, "a").paused
    assert store.current_revision() == revision


def test_names_with_tags_matches_any_or_all_and_ignores_removed_jobs(store: JobStore) -> None:
    reconcile(
        store,
        [job("a", tags=("ops", "daily")), job("b", tags=("ops",)), job("c", tags=("daily",)), job("d", tags=("ops",))],
    )
    reconcile(store, [job("a", tags=("ops", "daily")), job("b", tags=("ops",)), job("c", tags=("daily",))])
    assert store.names_with_tags(["ops"]) == ["a", "b"]
    assert store.names_with_tags(["ops", "daily"]) == ["a", "b", "c"]
    assert store.names_with_tags(["ops", "daily"], any_tag=False) == ["a"]
    assert store.names_with_tags([]) == []
    assert store.names_with_tags(["none"]) == []


def test_history_of_an_unknown_job_is_an_error(store: JobStore) -> None:
    with pytest.raises(JobNotFound, match="unknown job: 'nope'"):
        store.history("nope")
    with pytest.raises(ValueError, match="limit must be >= 1"):
        store.history("nope", limit=0)


def test_a_one_off_moved_to_a_new_time_has_not_run_for_its_new_timing(store: JobStore) -> None:
    reconcile(store, [one_off("launch", "once at 2026-01-05 09:30")])
    record_runs(store, [run("launch", T0 + timedelta(minutes=30))])
    assert stored(store, "launch").has_run_since_anchor
    reconcile(store, [one_off("launch", "once at 2026-01-06 09:30")], now=T0 + timedelta(hours=1))
    record = stored(store, "launch")
    assert record.total_run_count == 1
    assert not record.has_run_since_anchor


def test_errors_survive_pickling() -> None:
    not_found = pickle.loads(pickle.dumps(JobNotFound(["a", "b"])))
    assert (not_found.names, str(not_found)) == (("a", "b"), "unknown jobs: 'a', 'b'")
    store_error = pickle.loads(pickle.dumps(StoreError("boom", "sqlite:///x.db")))
    assert (str(store_error), store_error.url) == ("boom", "sqlite:///x.db")


def test_the_report_reads_as_a_summary() -> None:
    report = ReconcileReport(added=("a", "b"), removed=("c",), revision=4)
    assert str(report) == "2 added, 0 restored, 0 retimed, 0 changed, 0 unchanged, 1 removed"


def test_a_task_holding_a_control_character_is_compared_value_by_value(store: JobStore) -> None:
    odd = job("odd", task="tasks.a\x1fb")
    reconcile(store, [odd, job("plain")])
    again = reconcile(store, [odd, job("plain")])
    assert not again.wrote_anything and again.unchanged == ("odd", "plain")

    renamed = reconcile(store, [job("odd", task="tasks.a"), job("plain")])
    assert renamed.changed == ("odd",)
    assert stored(store, "odd").task == "tasks.a"
    assert list(renamed.jobs) == store.all_jobs()


def test_many_changed_jobs_are_all_read_whole_and_updated(store: JobStore) -> None:
    names = [f"job-{number:04d}" for number in range(2_100)]
    reconcile(store, [job(name) for name in names])
    report = reconcile(store, [job(name, options={"queue": "q"}) for name in names], now=T0 + timedelta(hours=1))
    assert report.changed == tuple(names)
    assert list(report.jobs) == store.all_jobs()
    assert {record.options["queue"] for record in report.jobs} == {"q"}


def test_json_spelt_otherwise_is_no_change_and_is_respelt_once(store: JobStore) -> None:
    # A store written by an older version (or edited by hand) spells the same values differently:
    # other key order, no spaces. That is no change: the anchor, and so the job's grid, stays.
    reconcile(store, [job("a", kwargs={"b": 1, "a": [1, 2]}, tags=("x",))])
    with store.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE orchestra_jobs SET schedule_data = :schedule, kwargs = :kwargs, tags = :tags"),
            {
                "schedule": '{"type":"interval","relative":false,"seconds":60}',
                "kwargs": '{"b":1,"a":[1,2]}',
                "tags": '["x"]',
            },
        )

    report = reconcile(store, [job("a", kwargs={"b": 1, "a": [1, 2]}, tags=("x",))], now=T0 + timedelta(hours=1))

    assert report.unchanged == ("a",) and report.retimed == () and report.changed == ()
    record = stored(store, "a")
    assert (record.anchor, record.kwargs, record.tags) == (T0, {"b": 1, "a": [1, 2]}, ("x",))
    with store.engine.connect() as connection:
        spelt = connection.execute(
            sa.text("SELECT CAST(schedule_data AS TEXT), CAST(kwargs AS TEXT) FROM orchestra_jobs")
        ).one()
    assert tuple(spelt) == ('{"relative": false, "seconds": 60, "type": "interval"}', '{"a": [1, 2], "b": 1}')
    again = reconcile(store, [job("a", kwargs={"b": 1, "a": [1, 2]}, tags=("x",))], now=T0 + timedelta(hours=2))
    assert again.unchanged == ("a",) and not again.wrote_anything


def test_schedule_data_with_an_unhashable_value_is_a_clear_error(store: JobStore) -> None:
    data = {"type": "interval", "seconds": [60], "relative": False}
    broken = JobDefinition(name="z", task="tasks.z", schedule_data=data)
    with pytest.raises(InvalidJobError, match=r"job 'z' \(beat_schedule\): unusable schedule"):
        store.reconcile([broken], now=T0)
    assert store.all_jobs() == []
