"""Celery's ``Scheduler.add`` and ``update_from_dict``, and ``beat_cron_starting_deadline``, on the real scheduler.

Same harness as ``test_scheduler.py``: a fake clock, an SQLite store in ``tmp_path``, sends captured.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, beat
from celery.bin.celery import celery as celery_group
from celery.schedules import crontab
from click.testing import CliRunner
from test_scheduler import SCHEDULER_LOGGER, T0, FakeClock, Harness, RecordingScheduler, at, every, grid, messages_of

from celery_orchestra import add_job
from celery_orchestra.cli import orchestra
from celery_orchestra.errors import JobSpecError

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(f"sqlite:///{tmp_path / 'orchestra.db'}", FakeClock(), tmp_path)
    try:
        yield h
    finally:
        h.close()


def minutes(*values: float) -> list[Any]:
    return [T0 + timedelta(minutes=value) for value in values]


# ------------------------------------------------------------------------------------ add, update_from_dict


def test_add_and_update_from_dict_entries_fire_at_their_exact_instants(harness: Harness) -> None:
    scheduler = harness.start({"configured": every(60)})
    harness.run_until(at(30), scheduler)

    entry = scheduler.add(name="added", task="tasks.added", schedule="every 20 seconds", tags=["crm", "fast"])
    scheduler.update_from_dict(
        {
            # 10:15, 10:30 and 10:45 in Paris are 09:15, 09:30 and 09:45 UTC in January.
            "paris": {"task": "tasks.paris", "schedule": crontab(minute="*/15", hour="10"), "timezone": "Europe/Paris"},
            "string": {"task": "tasks.string", "schedule": "every 10 minutes", "args": [1], "kwargs": {"k": "v"}},
            "seconds": {"task": "tasks.seconds", "schedule": 300.0, "options": {"queue": "q"}},
        }
    )
    harness.run_until(at(3600), scheduler)

    assert entry is not None and entry.name == "added" and entry.tags == ("crm", "fast")
    # Added at 09:00:30: on its grid from there, from the next tick on.
    assert harness.outbox.fires("added") == grid(50, 3590, 20)
    assert harness.outbox.fires("paris") == minutes(15, 30, 45)
    assert harness.outbox.fires("string") == [at(30 + 600 * k) for k in range(1, 6)]
    assert harness.outbox.fires("seconds") == [at(30 + 300 * k) for k in range(1, 12)]
    assert harness.outbox.fires("configured") == grid(60, 3600, 60)  # the configured job is left alone
    sent = next(message for message in harness.outbox.messages if message.task == "tasks.string")
    assert (sent.args, sent.kwargs) == ((1,), {"k": "v"})
    assert next(m for m in harness.outbox.messages if m.task == "tasks.seconds").options["queue"] == "q"


def test_jobs_given_through_celerys_api_are_stored_as_configuration_and_seen_by_others(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = harness.start({"configured": every(60)})
    other = harness.other_store()
    revision = other.current_revision()

    scheduler.add(name="added", task="tasks.added", schedule="every day at 10:00", timezone="Asia/Tokyo", tags=["t"])
    scheduler.update_from_dict({"dict": {"task": "tasks.dict", "schedule": crontab(minute="0"), "enabled": False}})

    assert other.current_revision() > revision  # other processes notice (their poll reads the counter)
    added, from_dict = harness.job("added"), harness.job("dict")
    assert (added.owner, added.source, added.timezone, added.tags) == ("config", "Scheduler.add", "Asia/Tokyo", ("t",))
    assert (from_dict.owner, from_dict.source, from_dict.enabled) == ("config", "Scheduler.update_from_dict", False)

    monkeypatch.syspath_prepend(str(tmp_path))
    module = f"celeryapi_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from celery import Celery\n"
        "app = Celery('p', broker='memory://')\n"
        f"app.conf.update(timezone='UTC', orchestra_database_url={harness.db_url!r})\n"
    )
    if "orchestra" not in celery_group.commands:
        celery_group.add_command(orchestra)
    try:
        result = CliRunner().invoke(celery_group, ["-A", module, "orchestra", "status", "--json"])
    finally:
        sys.modules.pop(module, None)
    assert result.exit_code == 0, result.output
    jobs = {job["name"]: job for job in json.loads(result.stdout)["jobs"]}
    assert {name: (job["owner"], job["source"], job["state"]) for name, job in jobs.items()} == {
        "added": ("config", "Scheduler.add", "Running"),
        "configured": ("config", "beat_schedule", "Running"),
        "dict": ("config", "Scheduler.update_from_dict", "Disabled"),
    }
    assert jobs["added"]["due_at"] == "2026-01-06T10:00:00+09:00"


def test_a_restart_without_the_calls_marks_their_jobs_removed(harness: Harness) -> None:
    scheduler = harness.start({"configured": every(60)})
    scheduler.add(name="added", task="tasks.added", schedule=30)
    scheduler.update_from_dict({"dict": every(30, task="tasks.dict")})
    harness.run_until(at(60), scheduler)
    scheduler.close()

    restarted = harness.start({"configured": every(60)})
    harness.run_until(at(180), restarted)

    assert (harness.job("added").removed, harness.job("dict").removed, harness.job("configured").removed) == (
        True,
        True,
        False,
    )
    assert restarted.schedule["added"].state == "Removed"
    assert harness.outbox.fires("added") == [at(30), at(60)]
    assert harness.outbox.fires("dict") == [at(30), at(60)]
    assert harness.outbox.fires("configured") == grid(60, 180, 60)


class GivingScheduler(RecordingScheduler):
    """A subclass that gives jobs through Celery's API before its start-up, as stock beat's users do."""

    def setup_schedule(self) -> None:
        self.update_from_dict(
            {
                "stock-entry": beat.ScheduleEntry(name="stock-entry", task="tasks.stock", schedule=timedelta(0, 60)),
                "configured": every(20, task="tasks.replaced"),
            }
        )
        self.add(name="early", task="tasks.early", schedule="every 30 seconds")
        super().setup_schedule()


def test_jobs_given_before_start_up_join_the_configured_ones_and_replace_a_namesake(harness: Harness) -> None:
    app = harness.app({"configured": every(60, task="tasks.configured"), "plain": every(45)})
    scheduler = GivingScheduler(
        app, clock=harness.clock, outbox=harness.outbox, schedule_filename=str(harness.folder / "beat")
    )
    harness.schedulers.append(scheduler)

    harness.run_until(at(120), scheduler)

    assert harness.outbox.fires("stock-entry") == [at(60), at(120)]
    assert harness.outbox.fires("early") == grid(30, 120, 30)
    assert harness.outbox.fires("configured") == grid(20, 120, 20)  # replaced, as stock beat's update does
    assert "tasks.configured" not in {message.task for message in harness.outbox.messages}
    assert harness.outbox.fires("plain") == [at(45), at(90)]
    assert (harness.job("configured").task, harness.job("configured").source) == (
        "tasks.replaced",
        "Scheduler.update_from_dict",
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s: s.update_from_dict({"d": {"task": "t", "schedule": "every 5 minuts"}}),
            "Scheduler.update_from_dict: job 'd': bad timing: expected 'days', 'hours', 'minutes', 'seconds' or "
            "'weeks', got 'minuts' (in 'every 5 minuts' at column 9)",
        ),
        (
            lambda s: s.add(name="a", task="t", schedule=60, tz="UTC"),
            "Scheduler.add: job 'a': unknown key 'tz' in the entry; did you mean 'timezone'?",
        ),
        (
            lambda s: s.add(name="a", task="t", schedule=60, timezone="Mars/Olympus"),
            "Scheduler.add: job 'a': bad time zone: unknown time zone 'Mars/Olympus'",
        ),
        (
            lambda s: s.add(name="a", task="t", schedule=60, options={"eta": 5}),
            "Scheduler.add: job 'a': options must not contain 'eta': beat decides when a job runs",
        ),
        (
            lambda s: s.add(name="a", task="t", schedule=0.001),
            "Scheduler.add: job 'a': it would run every 0.001 seconds, more often than orchestra_min_interval",
        ),
        (lambda s: s.add(task="t", schedule=60), "Scheduler.add: job 'None': a job name must be a non-empty string"),
        (
            lambda s: s.update_from_dict([("d", {})]),
            "Scheduler.update_from_dict: must be a dict of job name to entry, got list",
        ),
        (
            lambda s: s.add(name="held", task="t", schedule=60),
            "Scheduler.add: job 'held': the name is taken by a job added at runtime (owner runtime, in sqlite:///",
        ),
    ],
)
def test_bad_input_raises_one_clear_line_naming_the_job_and_changes_nothing(
    harness: Harness, call: Any, message: str
) -> None:
    scheduler = harness.start({"configured": every(60)})
    add_job(harness.other_store(), "held", "tasks.held", 60)
    before = {record.name for record in harness.other_store().all_jobs()}

    with pytest.raises(JobSpecError) as raised:
        call(scheduler)

    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value)
    assert {record.name for record in harness.other_store().all_jobs()} == before
    assert not {"a", "d"} & set(scheduler.schedule)


# ------------------------------------------------------------------------------------ beat_cron_starting_deadline

#: A crontab every 5 minutes and an interval of 5 minutes; beat runs until 09:06, is down, and
#: starts again at 09:32:30: 09:10 ... 09:30 were missed (5 runs), the latest 150 s before the start.
DOWN_UNTIL = 32 * 60 + 30


def _down_and_up(harness: Harness, **settings: Any) -> RecordingScheduler:
    schedule = {"cron": {"task": "tasks.cron", "schedule": crontab(minute="*/5")}, "interval": every(300)}
    scheduler = harness.start(schedule, **settings)
    harness.run_until(at(360), scheduler)
    scheduler.close()
    harness.clock.advance(DOWN_UNTIL - 360)
    restarted = harness.start(schedule, **settings)
    harness.run_until(at(35 * 60), restarted)
    return restarted


@pytest.mark.parametrize(
    ("settings", "caught_up"),
    [
        ({}, [30]),  # no deadline: the policy alone (once: the latest)
        ({"beat_cron_starting_deadline": 600}, [30]),  # within: once sends the latest
        ({"beat_cron_starting_deadline": 120}, []),  # after: nothing, whatever the policy
        ({"beat_cron_starting_deadline": 0}, []),
        ({"beat_cron_starting_deadline": 600, "orchestra_catch_up": "all"}, [25, 30]),  # 09:25 and 09:30 within
        ({"beat_cron_starting_deadline": 120, "orchestra_catch_up": "all"}, []),
        ({"orchestra_catch_up": "all"}, [10, 15, 20, 25, 30]),
        ({"beat_cron_starting_deadline": 600, "orchestra_catch_up": "skip", "orchestra_misfire_grace": 200}, [30]),
        ({"beat_cron_starting_deadline": 120, "orchestra_catch_up": "skip", "orchestra_misfire_grace": 200}, []),
        ({"beat_cron_starting_deadline": 600, "orchestra_catch_up": "skip", "orchestra_misfire_grace": 60}, []),
    ],
    ids=repr,
)
def test_a_crontab_missed_while_beat_was_down_is_caught_up_only_within_the_deadline(
    harness: Harness, settings: dict[str, Any], caught_up: list[float]
) -> None:
    _down_and_up(harness, **settings)

    assert harness.outbox.fires("cron") == minutes(5, *caught_up, 35)


def test_the_deadline_bounds_crontab_jobs_only_and_says_what_it_skipped(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=SCHEDULER_LOGGER)

    _down_and_up(harness, beat_cron_starting_deadline=120)

    assert harness.outbox.fires("interval") == [at(300), at(1800), at(2100)]  # once, as without a deadline
    skipped = "celery-orchestra: job cron: skipped 5 missed run(s) (older than beat_cron_starting_deadline, 120 s)"
    assert skipped in messages_of(caplog, logging.WARNING)
    assert f"(`{skipped}`)" in README  # the README's example is this test's scenario


def test_a_running_beat_sends_every_crontab_run_late_by_less_than_the_grace_whatever_the_deadline(
    harness: Harness,
) -> None:
    scheduler = harness.start(
        {"cron": {"task": "tasks.cron", "schedule": crontab(minute="*/5")}}, beat_cron_starting_deadline=0
    )

    harness.run_until(at(1800), scheduler, step=7)  # every tick up to 7 s late

    assert harness.outbox.fires("cron") == minutes(5, 10, 15, 20, 25, 30)


def test_stock_celery_would_skip_the_same_stale_crontab_run() -> None:
    """What is mirrored: Celery's crontab.is_due with the deadline, on the same instants."""
    app = Celery("stock", set_as_current=False)
    app.conf.beat_cron_starting_deadline = 120
    start = T0 + timedelta(seconds=DOWN_UNTIL)
    cron = crontab(minute="*/5", app=app, nowfun=lambda: start)
    assert not cron.is_due(T0 + timedelta(minutes=5)).is_due
    app.conf.beat_cron_starting_deadline = 600
    assert cron.is_due(T0 + timedelta(minutes=5)).is_due


def test_a_partial_reconcile_writes_the_listed_jobs_and_leaves_every_other_alone(tmp_path: Path) -> None:
    from celery_orchestra.jobs.definitions import JobDefinition
    from celery_orchestra.store import JobStore

    store = JobStore(f"sqlite:///{tmp_path / 'partial.db'}")
    store.migrate()
    minute = {"type": "interval", "seconds": 60.0, "relative": False}
    hour = {"type": "interval", "seconds": 3600.0, "relative": False}
    store.reconcile([JobDefinition("a", "t.a", minute), JobDefinition("b", "t.b", minute)], now=T0)

    later = T0 + timedelta(minutes=5)
    report = store.reconcile(
        [JobDefinition("b", "t.b", hour, source="Scheduler.add"), JobDefinition("c", "t.c", minute)],
        now=later,
        partial=True,
    )

    assert (report.added, report.retimed, report.removed) == (("c",), ("b",), ())
    assert [record.name for record in report.jobs] == ["b", "c"]
    jobs = {record.name: record for record in store.all_jobs()}
    assert {name: (job.removed, job.anchor, job.owner) for name, job in jobs.items()} == {
        "a": (False, T0, "config"),
        "b": (False, later, "config"),
        "c": (False, later, "config"),
    }
    assert jobs["b"].source == "Scheduler.add"
    store.close()
