"""Jobs managed at runtime: ownership in the store, add/update/remove/enable/disable, and a running beat.

Each store test runs on SQLite and on PostgreSQL (the ``store_url`` fixture). Runtime-owned jobs are
never touched by reconcile; a name held by the other owner is an error naming both; an update
changes only what it is given and re-anchors a changed timing; a removed job stops and keeps its
history; a running scheduler sends a job added through the API within its poll interval.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from celery import Celery
from celery.schedules import crontab, solar
from test_scheduler import FakeClock, Harness, at, every

from celery_orchestra import (
    ConfigError,
    ControlError,
    InvalidJobError,
    JobSpec,
    JobSpecError,
    NoMatchingJobsError,
    NoSuchJobError,
    ScheduleDataError,
    add_job,
    add_jobs,
    disable_job,
    disable_jobs_with_tags,
    enable_job,
    enable_jobs_with_tags,
    export_jobs,
    forget_job,
    get_job,
    job_history,
    list_jobs,
    remove_job,
    timing,
    update_job,
)
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.jobs.yaml_files import definitions_from_yaml_text
from celery_orchestra.ops import jobs_api
from celery_orchestra.store import JobStore, RunRecord
from celery_orchestra.store.database import Database
from celery_orchestra.store.schema import alembic_config
from celery_orchestra.timing import parser
from tests.ledger import record_runs

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MINUTE = {"type": "interval", "seconds": 60.0, "relative": False}


def configured(*names: str, **fields: Any) -> list[JobDefinition]:
    return [JobDefinition(name, f"tasks.{name}", MINUTE, **fields) for name in names]


@pytest.fixture
def store(store_url: str) -> Iterator[JobStore]:
    job_store = JobStore(store_url)
    job_store.migrate()
    job_store.reconcile(configured("conf-a", "conf-b"), now=T0)
    yield job_store
    job_store.close()


# ------------------------------------------------------------------------------ ownership in the store


def test_jobs_stored_before_owners_existed_are_owned_by_the_configuration(store: JobStore, store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0004")
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
    finally:
        engine.dispose()
    assert [(record.name, record.owner) for record in store.all_jobs()] == [("conf-a", "config"), ("conf-b", "config")]


def test_a_runtime_job_survives_every_restart_untouched(store: JobStore) -> None:
    added = add_job(store, "sync-crm", task="crm.sync", schedule="every 15 minutes", tags=("crm",))
    assert (added.owner, added.source, added.state, added.tags) == ("runtime", "runtime", "Running", ("crm",))
    before = store.get_job("sync-crm")

    report = store.reconcile(configured("conf-a"), now=T0 + timedelta(hours=1))

    assert report.runtime == ("sync-crm",)
    assert report.removed == ("conf-b",)
    after = store.get_job("sync-crm")
    assert after == before  # not removed, not rewritten: same revision and stamps
    assert {record.name: record.owner for record in report.jobs} == {
        "conf-a": "config",
        "conf-b": "config",
        "sync-crm": "runtime",
    }
    # A second restart (nothing configured changed) leaves it alone too.
    again = store.reconcile(configured("conf-a"), now=T0 + timedelta(hours=2))
    assert (again.runtime, again.revision) == (("sync-crm",), None)
    assert store.get_job("sync-crm") == before


def test_a_configured_job_named_like_a_runtime_job_stops_the_start_naming_both(store: JobStore) -> None:
    add_job(store, "sync-crm", task="crm.sync", schedule=60)
    revision = store.current_revision()

    with pytest.raises(ConfigError) as raised:
        store.reconcile([*configured("conf-a", "conf-b"), *configured("sync-crm", source="jobs.yaml:7")], now=T0)

    (problem,) = raised.value.problems
    assert (problem.source, problem.line, problem.job) == ("jobs.yaml", 7, "sync-crm")
    assert "taken by a job added at runtime" in problem.message
    assert "celery orchestra remove sync-crm" in problem.message
    assert store.current_revision() == revision  # nothing written
    record = store.get_job("sync-crm")
    assert record is not None and (record.owner, record.task) == ("runtime", "crm.sync")


def test_adding_a_name_a_job_holds_is_refused_naming_the_owner(store: JobStore) -> None:
    add_job(store, "sync-crm", task="crm.sync", schedule=60)
    with pytest.raises(InvalidJobError, match=r"'conf-a' is taken by a configured job \(beat_schedule\)"):
        add_job(store, "conf-a", task="other.task", schedule=60)
    with pytest.raises(InvalidJobError, match=r"'sync-crm' is taken by a job added at runtime earlier; update it"):
        add_job(store, "sync-crm", task="other.task", schedule=60)
    assert store.get_job("conf-a").task == "tasks.conf-a"  # type: ignore[union-attr]
    assert store.get_job("sync-crm").task == "crm.sync"  # type: ignore[union-attr]


def test_a_removed_jobs_name_is_free_for_the_other_owner_and_its_history_stays(store: JobStore) -> None:
    record_runs(store, [RunRecord("conf-b", T0, T0, "t-1", None)])
    store.reconcile(configured("conf-a"), now=T0)  # conf-b is no longer configured: Removed

    status = add_job(store, "conf-b", task="now.runtime", schedule="every 5 minutes")

    assert (status.owner, status.state, status.task) == ("runtime", "Running", "now.runtime")
    assert [run.task_id for run in job_history(store, "conf-b")] == ["t-1"]
    # And back: removed at runtime, then configured again, the configuration owns it.
    assert remove_job(store, "conf-b") is True
    report = store.reconcile(configured("conf-a", "conf-b"), now=T0 + timedelta(hours=1))
    assert report.restored == ("conf-b",)
    restored = store.get_job("conf-b")
    assert restored is not None and (restored.owner, restored.task, restored.removed) == (
        "config",
        "tasks.conf-b",
        False,
    )


# ------------------------------------------------------------------------------ add


@pytest.mark.parametrize(
    ("schedule", "kind", "described"),
    [
        ("every 15 minutes", "cyclic", "every 15 minutes"),
        (timing("every day at 03:00"), "daily", "every day at 03:00:00"),
        (crontab(minute="*/5"), "crontab", "crontab */5 * * * *"),
        (timedelta(seconds=30), "cyclic", "every 30 seconds"),
        (90, "cyclic", "every 1 minute and 30 seconds"),
        (solar("sunrise", 52.5, 13.4), "solar", "solar sunrise at 52.5, 13.4"),
    ],
)
def test_add_job_takes_every_schedule_beat_schedule_takes(
    store: JobStore, schedule: object, kind: str, described: str
) -> None:
    status = add_job(store, "j", task="t.j", schedule=schedule)
    assert (status.kind, status.schedule, status.owner) == (kind, described, "runtime")
    record = store.get_job("j")
    assert record is not None and record.kind == kind


def test_add_job_stores_every_field_it_is_given(store: JobStore) -> None:
    add_job(
        store,
        "full",
        task="t.full",
        schedule=timing("every day at 03:00", tz="Asia/Tokyo"),
        args=(1, "two"),
        kwargs={"k": [3]},
        options={"queue": "low", "priority": 5},
        tags=["a", "b", "a"],
        enabled=False,
    )
    record = store.get_job("full")
    assert record is not None
    assert (record.task, record.timezone, record.args, record.kwargs) == (
        "t.full",
        "Asia/Tokyo",
        (1, "two"),
        {"k": [3]},
    )
    assert (record.options, record.tags, record.enabled, record.paused) == (
        {"priority": 5, "queue": "low"},
        ("a", "b"),
        False,
        False,
    )
    assert get_job(store, "full").state == "Disabled"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"schedule": "every 5 minuts"},
            r"runtime: job 'bad': bad timing: .*'minuts' \(in 'every 5 minuts' at column 9\)",
        ),
        ({"schedule": 60, "timezone": "Mars/Olympus"}, r"job 'bad': bad time zone: unknown time zone 'Mars/Olympus'"),
        ({"schedule": 60, "args": [object()]}, r"job 'bad': args\[0\] is object"),
        ({"schedule": 60, "options": {"eta": 5}}, r"job 'bad': options must not contain 'eta'"),
        ({"schedule": 60, "task": "t" * 256}, r"job 'bad': 'task' is 256 characters long; at most 255"),
        ({"schedule": object()}, r"job 'bad': bad schedule: "),
        ({"schedule": timing("every day at 03:00", tz="Asia/Tokyo"), "timezone": "UTC"}, r"disagrees with 'timezone'"),
    ],
)
def test_bad_input_is_refused_as_configuration_would_be_and_nothing_is_written(
    store: JobStore, given: dict[str, Any], message: str
) -> None:
    revision = store.current_revision()
    fields = {"task": "t.bad", **given}
    with pytest.raises(JobSpecError, match=message) as raised:
        add_job(store, "bad", **fields)
    assert "\n" not in str(raised.value)
    assert store.get_job("bad") is None and store.current_revision() == revision


def test_a_name_longer_than_the_store_keeps_is_refused(store: JobStore) -> None:
    with pytest.raises(JobSpecError, match="the name is 256 characters long; at most 255 fit the store"):
        add_job(store, "n" * 256, task="t", schedule=60)


def test_a_job_repeating_faster_than_the_min_interval_is_refused_as_configuration_would_be(
    store: JobStore, tmp_path: Any
) -> None:
    """orchestra_min_interval holds for jobs added at runtime too: the rule lives once (jobs.checks)."""
    with pytest.raises(
        JobSpecError,
        match=r"job 'flood': it would run every 1e-06 seconds, more often than orchestra_min_interval \(0.1 seconds\)",
    ):
        add_job(store, "flood", task="t", schedule="every 0.000001 seconds")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    created = JobStore(url)
    created.migrate()  # what beat's first start does
    created.close()
    app = Celery("runtime", broker="memory://", set_as_current=False)
    app.conf.update(orchestra_database_url=url, orchestra_min_interval=5)
    with pytest.raises(JobSpecError, match=r"every 2 seconds, more often than orchestra_min_interval \(5 seconds\)"):
        add_job(app, "fast", task="t", schedule=2)
    assert add_job(app, "slow", task="t", schedule=5).name == "slow"
    # A store as the target (as the CLI and the HTTP API pass it) with the app whose settings apply.
    with pytest.raises(JobSpecError, match=r"every 2 seconds, more often than orchestra_min_interval \(5 seconds\)"):
        add_job(store, "fast", task="t", schedule=2, app=app)
    add_job(store, "steady", task="t", schedule=5, app=app)
    with pytest.raises(JobSpecError, match=r"every 3 seconds, more often than orchestra_min_interval \(5 seconds\)"):
        update_job(store, "steady", schedule=3, app=app)


def test_add_jobs_is_one_transaction_all_or_none(store: JobStore) -> None:
    specs = [JobSpec("one", "t.one", 60), JobSpec("conf-a", "t.two", 60)]
    with pytest.raises(InvalidJobError, match="conf-a"):
        add_jobs(store, specs)
    assert store.get_job("one") is None
    bad = [JobSpec("one", "t.one", 60), JobSpec("two", "t.two", "every 5 minuts"), JobSpec("one", "t.one", 60)]
    with pytest.raises(InvalidJobError, match="job 'two'"):
        add_jobs(store, bad)
    assert store.get_job("one") is None
    with pytest.raises(InvalidJobError, match="duplicate job name 'one'"):
        add_jobs(store, [JobSpec("one", "t.one", 60), JobSpec("one", "t.one", 60)])


def test_ten_thousand_jobs_are_added_in_one_call_and_kept_by_a_restart(store: JobStore) -> None:
    # How fast is measured by benchmarks/bench_runtime_jobs.py, not here: a busy machine is no failure.
    specs = [JobSpec(f"bulk-{i:05d}", "t.bulk", "every 5 minutes", tags=("bulk",)) for i in range(10_000)]
    statuses = add_jobs(store, specs)
    assert len(statuses) == 10_000 and statuses[-1].name == "bulk-09999" and statuses[0].owner == "runtime"
    assert len(store.names_with_tags(["bulk"])) == 10_000
    # A restart with these in the store keeps them all, unwritten.
    report = store.reconcile(configured("conf-a", "conf-b"), now=T0)
    assert len(report.runtime) == 10_000 and report.revision is None and len(report.jobs) == 10_002


def test_every_write_bumps_the_change_counter_so_beat_sees_it(store: JobStore) -> None:
    seen = store.current_revision()
    add_job(store, "r", task="t.r", schedule=60)
    seen, changed = store.changes_since(seen)
    assert [record.name for record in changed] == ["r"]
    update_job(store, "r", tags=("x",))
    seen, changed = store.changes_since(seen)
    assert [(record.name, record.tags) for record in changed] == [("r", ("x",))]
    remove_job(store, "r")
    _, changed = store.changes_since(seen)
    assert [(record.name, record.removed) for record in changed] == [("r", True)]


# ------------------------------------------------------------------------------ update


def test_update_changes_only_what_is_given_and_keeps_the_anchor(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_api, "_now", lambda: T0)
    add_job(store, "r", task="t.r", schedule=60, args=(1,), options={"queue": "q"}, tags=("a",))
    monkeypatch.setattr(jobs_api, "_now", lambda: T0 + timedelta(hours=1))

    status = update_job(store, "r", tags=("b", "c"), kwargs={"k": 1})

    record = store.get_job("r")
    assert record is not None
    assert (status.tags, record.kwargs, record.args, record.options, record.task) == (
        ("b", "c"),
        {"k": 1},
        (1,),
        {"queue": "q"},
        "t.r",
    )
    assert record.anchor == T0  # the timing did not change
    assert record.owner == "runtime" and record.source == "runtime"


def test_a_new_timing_gives_a_new_anchor_and_a_fresh_next_fire(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_api, "_now", lambda: T0)
    add_job(store, "r", task="t.r", schedule="every 15 minutes", timezone="Europe/Berlin")
    store.set_next_run({"r": T0 + timedelta(minutes=15)})
    later = T0 + timedelta(hours=1, seconds=7)
    monkeypatch.setattr(jobs_api, "_now", lambda: later)

    status = update_job(store, "r", schedule="every 5 minutes")

    record = store.get_job("r")
    assert record is not None
    assert (record.anchor, record.next_run_at, record.timezone) == (later, None, "Europe/Berlin")
    assert status.schedule == "every 5 minutes"
    # A zone change is a timing change too; None follows the app's zone again.
    monkeypatch.setattr(jobs_api, "_now", lambda: later + timedelta(minutes=1))
    update_job(store, "r", timezone=None)
    record = store.get_job("r")
    assert record is not None and (record.anchor, record.timezone) == (later + timedelta(minutes=1), None)


def test_enabling_through_update_stamps_the_resume_and_disabling_stops(store: JobStore) -> None:
    add_job(store, "r", task="t.r", schedule=60, enabled=False)
    assert update_job(store, "r", enabled=True).state == "Running"
    record = store.get_job("r")
    assert record is not None and record.enabled and record.resumed_at is not None


def test_configured_removed_and_unknown_jobs_cannot_be_updated(store: JobStore) -> None:
    with pytest.raises(ControlError, match=r"job 'conf-a' is configured \(beat_schedule\), not added at runtime"):
        update_job(store, "conf-a", task="x")
    with pytest.raises(NoSuchJobError, match="no such job: conf-c"):
        update_job(store, "conf-c", task="x")
    add_job(store, "r", task="t.r", schedule=60)
    with pytest.raises(ControlError, match="nothing to change in job 'r'"):
        update_job(store, "r")
    with pytest.raises(JobSpecError, match="job 'r': bad timing"):
        update_job(store, "r", schedule="every 5 minuts")
    remove_job(store, "r")
    with pytest.raises(ControlError, match="job 'r' was removed: add it again"):
        update_job(store, "r", task="x")


def test_concurrent_updates_of_different_fields_are_all_kept(store_url: str, store: JobStore) -> None:
    add_job(store, "r", task="t.r", schedule=60)
    errors: list[BaseException] = []

    def change(**fields: Any) -> None:
        own = JobStore(store_url)
        try:
            for _ in range(5):
                update_job(own, "r", **fields)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            own.close()

    threads = [
        threading.Thread(target=change, kwargs={"tags": ("t",)}),
        threading.Thread(target=change, kwargs={"args": (9,)}),
        threading.Thread(target=change, kwargs={"options": {"queue": "q"}}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    record = store.get_job("r")
    assert record is not None and (record.tags, record.args, record.options) == (("t",), (9,), {"queue": "q"})


def test_update_parses_the_stored_timing_before_it_takes_the_write_lock(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first parse in a process builds the timing parser (about 0.4 s of CPU). A fresh `celery
    # orchestra update` process did it inside its write transaction, holding SQLite's write lock
    # meanwhile: 20 such processes at once starved each other (and beat) past their busy timeouts.
    add_job(store, "r", task="t.r", schedule="every 15 minutes")
    parser.parse_expression.cache_clear()
    writes: list[bool] = []
    parsed_in_a_write: list[bool] = []
    run, parse = Database.run, parser.parse_expression_uncached

    def tracked_run(self: Database, operation: str, work: Any, *, write: bool, durable: bool = True) -> Any:
        writes.append(write)
        try:
            return run(self, operation, work, write=write, durable=durable)
        finally:
            writes.pop()

    def tracked_parse(text: str) -> Any:
        parsed_in_a_write.append(any(writes))
        return parse(text)

    monkeypatch.setattr(Database, "run", tracked_run)
    monkeypatch.setattr(parser, "parse_expression_uncached", tracked_parse)

    update_job(store, "r", kwargs={"k": 1})

    assert parsed_in_a_write and not any(parsed_in_a_write)
    record = store.get_job("r")
    assert record is not None and record.kwargs == {"k": 1}


# ------------------------------------------------------------------------------ remove, enable, disable


def test_remove_stops_the_job_keeps_its_history_and_forget_then_deletes_it(store: JobStore) -> None:
    add_job(store, "r", task="t.r", schedule=60)
    with pytest.raises(ControlError, match="remove it first"):
        forget_job(store, "r")
    record_runs(store, [RunRecord("r", T0, T0, "t-1", None)])

    assert remove_job(store, "r") is True
    assert remove_job(store, "r") is False
    status = get_job(store, "r")
    assert (status.state, status.due_at) == ("Removed", None)
    assert [run.task_id for run in job_history(store, "r")] == ["t-1"]
    assert [job.name for job in list_jobs(store)] == ["conf-a", "conf-b"]

    assert forget_job(store, "r") == 1
    assert store.get_job("r") is None


def test_configured_jobs_cannot_be_removed_at_runtime(store: JobStore) -> None:
    with pytest.raises(
        ControlError, match=r"job 'conf-a' is configured \(beat_schedule\).*remove it in its configuration"
    ):
        remove_job(store, "conf-a")
    with pytest.raises(NoSuchJobError):
        remove_job(store, "nope")


def test_an_operators_disable_of_a_configured_job_survives_restarts(store: JobStore) -> None:
    assert disable_job(store, "conf-a").describe() == "disabled: conf-a"
    assert disable_job(store, "conf-a").describe() == "already disabled: conf-a"
    store.reconcile(configured("conf-a", "conf-b"), now=T0 + timedelta(hours=1))
    assert get_job(store, "conf-a").state == "Disabled"
    assert enable_job(store, "conf-a").describe() == "enabled: conf-a"
    store.reconcile(configured("conf-a", "conf-b"), now=T0 + timedelta(hours=2))
    assert get_job(store, "conf-a").state == "Running"


def test_enable_and_disable_by_tags_reach_both_owners(store: JobStore) -> None:
    store.reconcile(configured("conf-a", "conf-b", tags=("io",)), now=T0)
    add_job(store, "r", task="t.r", schedule=60, tags=("io", "x"))
    result = disable_jobs_with_tags(store, "io")
    assert (result.changed, result.selector) == (("conf-a", "conf-b", "r"), "jobs with tag io")
    assert enable_jobs_with_tags(store, ["io", "x"], any_tag=False).changed == ("r",)
    assert {job.name: job.state for job in list_jobs(store)} == {
        "conf-a": "Disabled",
        "conf-b": "Disabled",
        "r": "Running",
    }
    with pytest.raises(NoMatchingJobsError):
        enable_jobs_with_tags(store, "nothing")


# ------------------------------------------------------------------------------ a running beat


def test_a_job_added_to_a_running_scheduler_is_sent_within_its_poll_interval(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    harness = Harness(f"sqlite:///{tmp_path / 'orchestra.db'}", clock, tmp_path)
    try:
        scheduler = harness.start({"conf": every(60)})
        harness.run_until(at(10), scheduler)
        monkeypatch.setattr(jobs_api, "_now", lambda: clock.now().replace(microsecond=0))

        add_job(harness.other_store(), "added", task="tasks.added", schedule=5)
        harness.run_until(at(31), scheduler)

        # Anchored at 10 s: fires at 15, 20, 25, 30; the first one within a poll (1 s) of being due.
        assert harness.outbox.fires("added") == [at(15), at(20), at(25), at(30)]
        assert scheduler.schedule["added"].record.owner == "runtime"

        update_job(harness.other_store(), "added", schedule=20)  # re-anchored at 31 s
        harness.run_until(at(75), scheduler)
        assert harness.outbox.fires("added")[4:] == [at(51), at(71)]

        remove_job(harness.other_store(), "added")
        harness.run_until(at(120), scheduler)
        assert harness.outbox.fires("added")[-1] == at(71)
        assert harness.outbox.fires("conf") == [at(60), at(120)]
    finally:
        harness.close()


# ------------------------------------------------------------------------------ export


def test_export_writes_a_schedule_file_that_re_creates_the_runtime_jobs(store: JobStore, store_url: str) -> None:
    add_job(
        store,
        "sync-crm",
        task="crm.sync",
        schedule="every 15 minutes",
        args=(1, "x: y"),
        kwargs={"full": True, "on": "yes"},
        options={"queue": "low", "priority": 5},
        tags=("crm", "io"),
    )
    add_job(store, "tokyo", task="t.tokyo", schedule=timing("every day at 03:00", tz="Asia/Tokyo"), enabled=False)
    add_job(store, "ninety", task="t.ninety", schedule=90)
    add_job(store, "gone", task="t.gone", schedule=60)
    remove_job(store, "gone")

    text = export_jobs(store, owner="runtime")

    assert text.startswith(f"# celery orchestra export: the jobs owned by runtime in {store.safe_url}\n")
    found, problems = definitions_from_yaml_text(text, "exported.yaml")
    assert problems == []
    by_name = {definition.name: definition for definition in found}
    assert sorted(by_name) == ["ninety", "sync-crm", "tokyo"]
    for name, definition in by_name.items():
        record = store.get_job(name)
        assert record is not None
        assert (definition.task, definition.timezone, definition.args, definition.kwargs) == (
            record.task,
            record.timezone,
            record.args,
            record.kwargs,
        )
        assert (definition.options, definition.tags, definition.enabled) == (
            record.options,
            record.tags,
            record.enabled,
        )
        assert definition.kind == record.kind
    assert by_name["sync-crm"].schedule_data == {"type": "timing", "expression": "every 15 minutes"}
    assert by_name["ninety"].schedule_data == {"type": "timing", "expression": "every 1 minute and 30 seconds"}
    # Every job, of both owners, with the configured ones first by name.
    assert [d.name for d in definitions_from_yaml_text(export_jobs(store), "all.yaml")[0]] == [
        "conf-a",
        "conf-b",
        "ninety",
        "sync-crm",
        "tokyo",
    ]


def test_export_refuses_schedules_the_yaml_format_cannot_hold_naming_them(store: JobStore) -> None:
    add_job(store, "five", task="t.five", schedule=crontab(minute="*/5"))
    add_job(store, "fine", task="t.fine", schedule="every minute")
    with pytest.raises(ScheduleDataError, match=r"cannot export 'five' \(crontab \*/5 \* \* \* \*\)$"):
        export_jobs(store, owner="runtime")
    with pytest.raises(ControlError, match="unknown owner 'nobody'"):
        export_jobs(store, owner="nobody")


def test_runtime_jobs_and_operator_state_survive_a_beat_restart(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    harness = Harness(f"sqlite:///{tmp_path / 'orchestra.db'}", clock, tmp_path)
    try:
        schedule = {"conf": every(30)}
        scheduler = harness.start(schedule)
        monkeypatch.setattr(jobs_api, "_now", lambda: clock.now().replace(microsecond=0))
        add_job(harness.other_store(), "added", task="tasks.added", schedule=10)
        disable_job(harness.other_store(), "conf")
        harness.run_until(at(25), scheduler)
        scheduler.close()

        restarted = harness.start(schedule)  # the configuration still lacks "added"
        harness.run_until(at(61), restarted)

        assert harness.outbox.fires("added") == [at(10), at(20), at(30), at(40), at(50), at(60)]
        assert harness.outbox.fires("conf") == []  # the operator's disable held across the restart
        record = harness.job("added")
        assert (record.owner, record.removed, record.total_run_count) == ("runtime", False, 6)
    finally:
        harness.close()


def test_a_control_character_in_a_name_or_task_is_refused_at_the_door(store: JobStore) -> None:
    # PostgreSQL's driver refused a NUL with a ValueError from deep inside; SQLite would keep it, and
    # the store could then not move to PostgreSQL. A line break makes a job no log, table or URL can
    # name. Refused alike everywhere, naming the job.
    with pytest.raises(JobSpecError, match=re.escape("job 'a\\x00b': the name holds the control character '\\x00'")):
        add_job(store, "a\x00b", task="t", schedule=60)
    with pytest.raises(JobSpecError, match=re.escape("job 'nl\\nx': the name holds the control character '\\n'")):
        add_job(store, "nl\nx", task="t", schedule=60)
    with pytest.raises(JobSpecError, match=r"job 'sync': 'task' holds the control character"):
        add_job(store, "sync", task="proj.\x00sync", schedule=60)
    assert store.get_job("sync") is None
    assert add_job(store, "café ☕ 東京", task="t", schedule=60).name == "café ☕ 東京"
