"""``celery_orchestra.Scheduler`` in-process: configuration, dispatch, the run ledger, pause, catch-up, restarts.

Everything runs in this process on a ``memory://`` app and an SQLite store in ``tmp_path``. Time is
driven by a :class:`FakeClock` plugged into the scheduler's ``wall_time``/``monotonic`` attributes,
so hours of schedule take milliseconds and every fire instant can be asserted exactly. Sends are
captured one layer below the scheduler's own ``send_run``: ``app.send_task`` is replaced by an
:class:`Outbox` (which can also play a broker that is down), so the scheduler's real send path,
its task ids, headers and error handling are what is tested.

The helpers here (:class:`Harness` and friends) are reused by ``test_scheduler_postgres.py``.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ephem  # type: ignore[import-untyped]
import pytest
from celery import Celery
from celery.schedules import crontab, solar
from kombu.exceptions import OperationalError

from celery_orchestra import ScheduleEntry, Scheduler, run_task_id, timing
from celery_orchestra.beat.housekeeping import Housekeeper
from celery_orchestra.store import JobRecord, JobStore, LeaseLostError, Progress, RunRecord, StoreError

#: A Monday, 09:00:00 UTC: the fake clock's "now" at the start of every test.
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
#: The namespace of the deterministic task ids, written out here so the test does not trust the code's copy.
TASK_ID_NAMESPACE = uuid.UUID("6f1b0c1e-5a0e-4a4f-9c53-0c4e6b1d7a10")
SCHEDULER_LOGGER = "celery_orchestra.scheduler"


def at(seconds: float) -> datetime:
    """``T0 + seconds``."""
    return T0 + timedelta(seconds=seconds)


def grid(start: float, stop: float, every: float) -> list[datetime]:
    """``at(start), at(start + every), ...`` up to and including ``at(stop)``."""
    count = int((stop - start) // every) + 1
    return [at(start + k * every) for k in range(count)]


# ------------------------------------------------------------------------------------ test doubles


class FakeClock:
    """Wall time and monotonic time, moved by the test; ``jump`` moves only the wall clock (an NTP step)."""

    def __init__(self, start: datetime = T0) -> None:
        self.wall = start.timestamp()
        self.mono = 50_000.0

    def wall_time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall, UTC)

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.wall += seconds
        self.mono += seconds

    def jump(self, seconds: float) -> None:
        self.wall += seconds


@dataclass(frozen=True)
class Message:
    """One ``app.send_task`` call that reached the (fake) broker."""

    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    task_id: str
    headers: dict[str, Any]
    options: dict[str, Any]


@dataclass(frozen=True)
class Sent:
    """One run a scheduler reported as sent: the job, its nominal fire instant, its task id, which scheduler."""

    job: str
    fire: datetime
    task_id: str
    by: str


@dataclass
class Outbox:
    """Stands in for the broker behind ``app.send_task``; while ``broken`` every send raises."""

    messages: list[Message] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    broken: bool = False
    failed_attempts: int = 0

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        task_id: str,
        headers: dict[str, Any] | None = None,
        producer: Any = None,
        **options: Any,
    ) -> None:
        if self.broken:
            self.failed_attempts += 1
            raise OperationalError("[Errno 111] Connection refused (the test's broker is down)")
        self.messages.append(
            Message(name, tuple(args or ()), dict(kwargs or {}), task_id, dict(headers or {}), options)
        )

    def fires(self, job: str) -> list[datetime]:
        return [s.fire for s in self.sent if s.job == job]


class RecordingScheduler(Scheduler):
    """The real Scheduler on a fake clock; a successful ``send_run`` is also noted in the outbox."""

    def __init__(self, app: Celery, *, clock: FakeClock, outbox: Outbox, label: str = "beat", **kwargs: Any) -> None:
        # Before super().__init__: setup_schedule() already reads the clocks.
        self.wall_time = clock.wall_time
        self.monotonic = clock.monotonic
        self.outbox = outbox
        self.label = label
        super().__init__(app, **kwargs)

    def lease_time(self) -> datetime:
        return self._now()  # the lease expires on the fake clock too

    def send_run(self, entry: ScheduleEntry, record: RunRecord, producer: Any) -> bool:
        ok = bool(super().send_run(entry, record, producer))
        if ok:
            self.outbox.sent.append(Sent(entry.name, record.fire_time, record.task_id, self.label))
        return ok


def checked_delay(scheduler: Scheduler, delay: object) -> float:
    """What beat would sleep: a finite float in [0, max_interval], never None, NaN or negative."""
    assert isinstance(delay, float), f"tick() returned {delay!r}"
    assert math.isfinite(delay), f"tick() returned {delay!r}"
    assert 0.0 <= delay <= scheduler.max_interval, f"tick() returned {delay!r} (max_interval {scheduler.max_interval})"
    return delay


class Harness:
    """Builds apps and schedulers on one database and one fake clock, runs them, closes them."""

    def __init__(self, db_url: str, clock: FakeClock, folder: Path) -> None:
        self.db_url = db_url
        self.clock = clock
        self.folder = folder
        self.outbox = Outbox()
        self.schedulers: list[RecordingScheduler] = []
        self.stores: list[JobStore] = []

    def app(self, schedule: dict[str, dict[str, Any]], **settings: Any) -> Celery:
        app = Celery("orchestra_tests", broker="memory://", set_as_current=False)
        app.conf.update(
            beat_schedule=schedule,
            timezone="UTC",
            # No celery.backend_cleanup job: every test states its own jobs exactly.
            result_expires=None,
            orchestra_database_url=self.db_url,
            orchestra_remote_control=False,
            **settings,
        )
        app.send_task = self.outbox.send_task
        return app

    def start(
        self,
        schedule: dict[str, dict[str, Any]],
        *,
        label: str = "beat",
        max_interval: float | None = None,
        **settings: Any,
    ) -> RecordingScheduler:
        scheduler = RecordingScheduler(
            self.app(schedule, **settings),
            clock=self.clock,
            outbox=self.outbox,
            label=label,
            max_interval=max_interval,
            schedule_filename=str(self.folder / "celerybeat-schedule"),
        )
        self.schedulers.append(scheduler)
        return scheduler

    def other_store(self) -> JobStore:
        """A second JobStore on the same database: what another process (CLI, API) would use."""
        store = JobStore(self.db_url)
        self.stores.append(store)
        return store

    def job(self, name: str) -> JobRecord:
        record = self.other_store().get_job(name)
        assert record is not None, f"job {name!r} is not in the store"
        return record

    def run_until(self, until: datetime, *schedulers: Scheduler, step: float | None = None) -> None:
        """Tick like beat until the clock reads ``until`` (inclusive), sleeping what tick() asks or ``step``."""
        assert schedulers
        zero_delays = 0
        while True:
            delays = [checked_delay(s, s.tick()) for s in schedulers]
            remaining = (until - self.clock.now()).total_seconds()
            if remaining <= 0:
                return
            wait = step if step is not None else min(delays)
            if wait <= 0:
                zero_delays += 1
                assert zero_delays < 100, "tick() keeps returning 0: beat would spin"
                continue
            zero_delays = 0
            self.clock.advance(min(wait, remaining))

    def run_for(self, seconds: float, *schedulers: Scheduler, step: float | None = None) -> None:
        self.run_until(self.clock.now() + timedelta(seconds=seconds), *schedulers, step=step)

    def close(self) -> None:
        for scheduler in self.schedulers:
            scheduler.close()
        for store in self.stores:
            store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orchestra.db'}"


@pytest.fixture
def harness(db_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(db_url, clock, tmp_path)
    try:
        yield h
    finally:
        h.close()


def every(seconds: float, task: str = "tasks.job", **entry: Any) -> dict[str, Any]:
    return {"task": task, "schedule": seconds, **entry}


def messages_of(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == SCHEDULER_LOGGER and r.levelno >= level]


# ------------------------------------------------------------------------------------ construction


def test_lazy_instance_has_no_side_effects_and_close_twice_is_fine(tmp_path: Path) -> None:
    # The default store is a file beside -s; remote control is on by default: still nothing may happen.
    app = Celery("lazy", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = {"a": every(10)}
    threads_before = set(threading.enumerate())

    scheduler = Scheduler(app, lazy=True, schedule_filename=str(tmp_path / "celerybeat-schedule"))

    assert scheduler.store is None
    assert list(tmp_path.iterdir()) == []
    assert set(threading.enumerate()) == threads_before
    assert scheduler.info == f"    . store -> sqlite:///{tmp_path / 'celerybeat-schedule'}.orchestra.db"
    assert list(tmp_path.iterdir()) == []  # info does not open anything either
    scheduler.close()
    scheduler.close()
    assert list(tmp_path.iterdir()) == []
    assert set(threading.enumerate()) == threads_before


def test_a_stop_signal_while_starting_stops_at_once_without_building_a_second_scheduler(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Celery's handler would close ``service.scheduler``, the very scheduler still being built."""
    celery_handler_calls: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: celery_handler_calls.append(signum))

    class SignalledHousekeeper(Housekeeper):
        def start(self) -> None:  # the last step of start-up, after the lease was taken
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # the handler runs here
            raise AssertionError("the stop signal did not stop the start-up")

    monkeypatch.setattr("celery_orchestra.beat.scheduler.Housekeeper", SignalledHousekeeper)
    try:
        with pytest.raises(SystemExit):
            harness.start({"a": every(10)})
        assert celery_handler_calls == []
        os.kill(os.getpid(), signal.SIGTERM)  # ours is gone, the previous handler is back
        time.sleep(0.05)
        assert celery_handler_calls == [signal.SIGTERM]
        lease = harness.other_store().read_lease()
        assert lease.holder is None, "the lease taken at start-up was not released"
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_info_masks_the_database_password(tmp_path: Path) -> None:
    app = Celery("masked", broker="memory://", set_as_current=False)
    app.conf.orchestra_database_url = "postgresql+psycopg2://orchestra:s3cret-pw@127.0.0.1:1/jobs"

    scheduler = Scheduler(app, lazy=True, schedule_filename=str(tmp_path / "beat"))

    assert scheduler.info == "    . store -> postgresql+psycopg2://orchestra:***@127.0.0.1:1/jobs"
    scheduler.close()


def test_a_bad_setting_is_said_once_not_in_the_banner_and_again_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celery("bad_setting", broker="memory://", set_as_current=False)
    app.conf.update(orchestra_schedule_files=42, orchestra_remote_control=False)
    banner = Scheduler(app, lazy=True, schedule_filename=str(tmp_path / "beat"))
    assert banner.info == "    . store -> unknown (a setting is invalid; see below)"
    banner.close()
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    with pytest.raises(SystemExit):
        Scheduler(app, schedule_filename=str(tmp_path / "beat"))
    assert messages_of(caplog, logging.CRITICAL) == [
        "orchestra_schedule_files: must be a path or a list of paths, got int (42)",
        "celery-orchestra: 1 problem(s) in the schedule; beat will not start",
    ]


def test_running_scheduler_close_twice_is_fine_and_releases_the_store(harness: Harness) -> None:
    scheduler = harness.start({"a": every(10)})
    assert scheduler.store is not None
    harness.run_until(at(10), scheduler)
    scheduler.close()
    scheduler.close()
    assert harness.outbox.fires("a") == [at(10)]


def test_default_database_is_an_sqlite_file_beside_the_schedule_file(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    app = Celery("default_db", broker="memory://", set_as_current=False)
    app.conf.update(beat_schedule={"a": every(10)}, result_expires=None, orchestra_remote_control=False)
    outbox = Outbox()
    app.send_task = outbox.send_task

    expected = tmp_path / "var" / "beat-state.orchestra.db"
    with pytest.raises(SystemExit):  # like stock beat's shelve: the folder must exist
        RecordingScheduler(app, clock=clock, outbox=outbox, schedule_filename="var/beat-state")
    assert messages_of(caplog, logging.CRITICAL) == [
        f"celery-orchestra: cannot open SQLite database 'sqlite:///{expected}': the folder '{expected.parent}' "
        "does not exist (create it first; celery-orchestra creates the database file, not its folder)"
    ]
    (tmp_path / "var").mkdir()

    scheduler = RecordingScheduler(app, clock=clock, outbox=outbox, schedule_filename="var/beat-state")
    try:
        assert scheduler.info == f"    . store -> sqlite:///{expected}"
        assert expected.is_file()
        store = JobStore(f"sqlite:///{expected}")
        try:
            assert [r.name for r in store.all_jobs()] == ["a"]
        finally:
            store.close()
    finally:
        scheduler.close()


# ------------------------------------------------------------------------------------ configuration


def test_jobs_from_beat_schedule_and_yaml_files_are_merged(harness: Harness, tmp_path: Path) -> None:
    schedule_file = tmp_path / "jobs.yaml"
    schedule_file.write_text(
        "- name: reports\n"
        "  module: reports.tasks\n"
        "  schedules:\n"
        "    - name: from-yaml\n"
        "      task: build\n"
        "      schedule:\n"
        '        timing: "every 20 seconds"\n'
        "      kwargs: {kind: daily}\n"
        "      tags: [reports]\n"
    )
    scheduler = harness.start(
        {"from-beat": every(15, task="tasks.beat", args=(1, 2))}, orchestra_schedule_files=[str(schedule_file)]
    )

    assert sorted(scheduler.schedule) == ["from-beat", "from-yaml"]
    assert harness.job("from-yaml").source == f"{schedule_file}:4"
    assert harness.job("from-beat").source == "beat_schedule"
    harness.run_until(at(60), scheduler)
    assert harness.outbox.fires("from-beat") == grid(15, 60, 15)
    assert harness.outbox.fires("from-yaml") == grid(20, 60, 20)
    yaml_messages = [m for m in harness.outbox.messages if m.task == "reports.tasks.build"]
    assert [(m.args, m.kwargs) for m in yaml_messages] == [((), {"kind": "daily"})] * 3
    beat_messages = [m for m in harness.outbox.messages if m.task == "tasks.beat"]
    assert [(m.args, m.kwargs) for m in beat_messages] == [((1, 2), {})] * 4


def test_duplicate_name_in_beat_schedule_and_yaml_stops_start_up_naming_both_places(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schedule_file = tmp_path / "dup.yaml"
    schedule_file.write_text(
        "- name: block\n"
        "  schedules:\n"
        "    - name: nightly\n"
        "      task: tasks.nightly\n"
        "      schedule:\n"
        '        timing: "every day at 02:00"\n'
    )
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)

    with pytest.raises(SystemExit) as exit_info:
        harness.start({"nightly": every(60)}, orchestra_schedule_files=[str(schedule_file)])

    assert exit_info.value.code == 1
    assert messages_of(caplog, logging.CRITICAL) == [
        f"{schedule_file}:3: job 'nightly': job name defined twice: here and at beat_schedule "
        "(job names must be unique)",
        "celery-orchestra: 1 problem(s) in the schedule; beat will not start",
    ]
    # The configuration is checked before the store is even opened: no half-loaded store.
    assert not Path(harness.db_url.removeprefix("sqlite:///")).exists()


def test_every_configuration_error_is_reported_at_once_with_file_and_line(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schedule_file = tmp_path / "bad.yaml"
    schedule_file.write_text(
        "- name: block\n"
        "  schedules:\n"
        "    - name: good\n"
        "      task: tasks.good\n"
        "      schedule:\n"
        '        timing: "every 10 seconds"\n'
        "    - name: typo-timing\n"
        "      task: tasks.typo\n"
        "      schedule:\n"
        '        timing: "every 10 secnds"\n'
        "    - name: no-task\n"
        "      schedule:\n"
        '        timing: "every hour"\n'
        "    - name: unknown-key\n"
        "      task: tasks.unknown\n"
        "      schedule:\n"
        '        timing: "every minute"\n'
        "      tgas: [x]\n"
    )
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)

    with pytest.raises(SystemExit):
        harness.start(
            {"zero": {"task": "tasks.zero", "schedule": "every 0 seconds"}},
            orchestra_schedule_files=[str(schedule_file)],
        )

    critical = messages_of(caplog, logging.CRITICAL)
    assert [message.splitlines()[0] for message in critical] == [
        "beat_schedule: job 'zero': bad timing: an interval must be longer than zero",
        f"{schedule_file}:10:27: job 'typo-timing': bad timing: expected 'days', 'hours', 'minutes', 'seconds' "
        "or 'weeks', got 'secnds'",
        f"{schedule_file}:11:7: job 'no-task': the job has no 'task' (the task function's name)",
        f"{schedule_file}:18:7: job 'unknown-key': unknown key 'tgas' in the job; did you mean 'task' or 'tags'?",
        "celery-orchestra: 4 problem(s) in the schedule; beat will not start",
    ]
    # The offending line and a caret under the bad word come with the message.
    assert critical[1].splitlines()[1:] == ['            timing: "every 10 secnds"', " " * 30 + "^"]
    assert not Path(harness.db_url.removeprefix("sqlite:///")).exists()


def test_every_schedule_type_fires_at_its_exact_instants(harness: Harness) -> None:
    paris = (48.8566, 2.3522)
    scheduler = harness.start(
        {
            "text": {"task": "tasks.text", "schedule": "every 10 minutes"},
            "timing-object": {"task": "tasks.timing", "schedule": timing("every day at 10:30", "Europe/Berlin")},
            "cron": {"task": "tasks.cron", "schedule": crontab(minute="*/15")},
            "cron-zoned": {
                "task": "tasks.cron",
                "schedule": crontab(hour=9, minute=30),
                "timezone": "America/New_York",
            },
            "text-zoned": {
                "task": "tasks.text",
                "schedule": "every day at 09:00",
                "timezone": "Asia/Tokyo",
                "tags": ["billing", "nightly"],
            },
            "sunrise": {"task": "tasks.sun", "schedule": solar("sunrise", *paris)},
            "delta": {"task": "tasks.delta", "schedule": timedelta(minutes=7)},
            "seconds": {"task": "tasks.seconds", "schedule": 450},
        },
        max_interval=60,
        orchestra_poll_interval=60,
    )
    sunrise = _next_sunrise(at(0), *paris)
    expected_next = {
        "text": at(600),
        "timing-object": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),  # 10:30 CET
        "cron": datetime(2026, 1, 5, 9, 15, tzinfo=UTC),
        "cron-zoned": datetime(2026, 1, 5, 14, 30, tzinfo=UTC),  # 09:30 EST
        "text-zoned": datetime(2026, 1, 6, 0, 0, tzinfo=UTC),  # 09:00 JST
        "sunrise": sunrise,
        "delta": at(420),
        "seconds": at(450),
    }
    assert {name: entry.next_fire_at for name, entry in scheduler.schedule.items()} == expected_next
    # Paris sunrise on 6 January is 08:43-08:45 CET: the oracle itself is sane.
    assert datetime(2026, 1, 6, 7, 42, tzinfo=UTC) <= sunrise <= datetime(2026, 1, 6, 7, 46, tzinfo=UTC)
    assert harness.job("text-zoned").tags == ("billing", "nightly")
    assert scheduler.schedule["text-zoned"].tags == ("billing", "nightly")
    assert harness.job("cron-zoned").timezone == "America/New_York"

    harness.run_until(at(25 * 3600), scheduler)

    day = 24 * 3600
    fires = harness.outbox
    assert fires.fires("text") == grid(600, 25 * 3600, 600)
    assert fires.fires("timing-object") == [
        datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        datetime(2026, 1, 6, 9, 30, tzinfo=UTC),
    ]
    assert fires.fires("cron") == grid(900, 25 * 3600, 900)
    assert fires.fires("cron-zoned") == [datetime(2026, 1, 5, 14, 30, tzinfo=UTC)]
    assert fires.fires("text-zoned") == [datetime(2026, 1, 6, 0, 0, tzinfo=UTC)]
    assert fires.fires("sunrise") == [sunrise]
    assert fires.fires("delta") == grid(420, 25 * 3600, 420)
    assert fires.fires("seconds") == grid(450, 25 * 3600, 450)
    assert len(fires.fires("seconds")) == (day + 3600) // 450


def _next_sunrise(after: datetime, lat: float, lon: float) -> datetime:
    """Sunrise by ephem directly, with Celery's observer settings (upper limb, -0:34 horizon, no refraction)."""
    observer = ephem.Observer()
    observer.lat = str(lat)
    observer.lon = str(lon)
    observer.elevation = 0
    observer.horizon = "-0:34"
    observer.pressure = 0
    observer.date = after.replace(tzinfo=None)
    rising: datetime = observer.next_rising(ephem.Sun(), use_center=False).datetime().replace(tzinfo=UTC)
    rounded = rising.replace(microsecond=0)
    return rounded + timedelta(seconds=1) if rising.microsecond >= 500_000 else rounded


def test_disabled_job_is_stored_and_never_sent(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    scheduler = harness.start({"off": every(5, enabled=False), "on": every(5)})

    harness.run_until(at(60), scheduler)

    record = harness.job("off")
    assert (record.enabled, record.configured_enabled, record.next_run_at) == (False, False, None)
    assert scheduler.schedule["off"].state == "Disabled"
    assert harness.outbox.fires("off") == []
    assert harness.outbox.fires("on") == grid(5, 60, 5)
    assert "celery-orchestra: job off (tasks.job) is Disabled; it will not be sent" in messages_of(caplog)


def test_expired_one_off_is_stored_marked_logged_and_never_sent(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    scheduler = harness.start({"past": {"task": "tasks.past", "schedule": "once at 2020-01-01 10:00"}})

    harness.run_for(3600, scheduler, step=60)

    record = harness.job("past")
    assert (record.expired, record.last_run_at, record.total_run_count, record.next_run_at) == (True, None, 0, None)
    assert scheduler.schedule["past"].state == "Expired"
    assert harness.outbox.sent == []
    assert harness.outbox.messages == []
    assert (
        "celery-orchestra: job past is expired: 'once at 2020-01-01 10:00:00' had already passed when it was "
        "registered; it will not run"
    ) in messages_of(caplog, logging.WARNING)


def test_one_off_runs_once_and_is_done(harness: Harness) -> None:
    scheduler = harness.start({"soon": {"task": "tasks.soon", "schedule": "once in 30 seconds"}})
    assert scheduler.schedule["soon"].next_fire_at == at(30)

    harness.run_until(at(600), scheduler)

    assert harness.outbox.fires("soon") == [at(30)]
    assert scheduler.schedule["soon"].state == "Done"
    record = harness.job("soon")
    assert (record.last_run_at, record.total_run_count, record.next_run_at) == (at(30), 1, None)
    assert [(e.fire_time, e.task_id) for e in harness.other_store().history("soon")] == [
        (at(30), run_task_id("soon", at(30)))
    ]


# ------------------------------------------------------------------------------------ dispatch


def test_all_jobs_due_at_one_instant_are_claimed_and_sent_in_one_tick(
    harness: Harness, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"job-{i:02d}" for i in range(40)]
    scheduler = harness.start({name: every(60, task=f"tasks.{name}") for name in names})
    store = scheduler.store
    assert store is not None
    claims: list[int] = []
    real_claim = store.claim_runs

    def counting_claim(runs: Sequence[RunRecord], **options: Any) -> list[RunRecord]:
        claims.append(len(runs))
        return list(real_claim(runs, **options))

    monkeypatch.setattr(store, "claim_runs", counting_claim)
    harness.run_until(at(59), scheduler)
    assert harness.outbox.sent == []

    clock.advance(1)
    checked_delay(scheduler, scheduler.tick())

    assert claims == [40]
    assert sorted((s.job, s.fire) for s in harness.outbox.sent) == [(name, at(60)) for name in names]
    assert {m.task for m in harness.outbox.messages} == {f"tasks.{name}" for name in names}


def test_task_ids_are_uuid5_of_job_and_fire_instant(harness: Harness) -> None:
    scheduler = harness.start({"a": every(10), "b": every(25)})

    harness.run_until(at(50), scheduler)

    sent = harness.outbox.sent
    assert sorted((s.fire, s.job) for s in sent) == [
        (at(10), "a"),
        (at(20), "a"),
        (at(25), "b"),
        (at(30), "a"),
        (at(40), "a"),
        (at(50), "a"),
        (at(50), "b"),
    ]
    for s in sent:
        expected = str(uuid.uuid5(TASK_ID_NAMESPACE, f"{s.job}\0{s.fire.isoformat()}"))
        assert s.task_id == expected == run_task_id(s.job, s.fire)
    assert run_task_id("a", at(10)) == str(uuid.uuid5(TASK_ID_NAMESPACE, "a\x002026-01-05T09:00:10+00:00"))
    # The same instant given in another zone is the same run.
    assert run_task_id("a", at(10).astimezone(timing("every day at 10:30", "Asia/Tokyo").tz)) == run_task_id(
        "a", at(10)
    )
    assert [m.task_id for m in harness.outbox.messages] == [s.task_id for s in sent]
    assert all(m.headers == {"celery_beat_task": True} for m in harness.outbox.messages)


def test_interval_jobs_stay_on_their_grid_however_late_beat_wakes(harness: Harness, clock: FakeClock) -> None:
    scheduler = harness.start({"seven": every(7)})
    lateness = [0.0, 0.31, 0.9, 0.05, 0.6]

    for index in range(800):  # beat also wakes to renew its lease
        delay = checked_delay(scheduler, scheduler.tick())
        clock.advance(delay + lateness[index % len(lateness)])
    end = clock.now()
    checked_delay(scheduler, scheduler.tick())

    fires = harness.outbox.fires("seven")
    expected = grid(7, (end - T0).total_seconds(), 7)
    assert fires == expected
    assert len(fires) > 100


def test_messages_reach_a_real_memory_broker_with_ids_headers_and_options(clock: FakeClock, db_url: str) -> None:
    queue = f"orchestra-test-{uuid.uuid4().hex}"
    app = Celery("memory_broker", broker="memory://", set_as_current=False)
    app.conf.update(
        beat_schedule={
            "report": {
                "task": "tasks.report",
                "schedule": 30,
                "args": [7],
                "kwargs": {"fmt": "pdf"},
                "options": {"queue": queue, "priority": 3},
            }
        },
        result_expires=None,
        orchestra_database_url=db_url,
        orchestra_remote_control=False,
    )

    class ClockScheduler(Scheduler):
        wall_time = staticmethod(clock.wall_time)
        monotonic = staticmethod(clock.monotonic)

    scheduler = ClockScheduler(app)
    try:
        for _ in range(65):
            checked_delay(scheduler, scheduler.tick())
            clock.advance(1)
        with app.connection_for_read() as connection:
            simple = connection.SimpleQueue(queue)
            received: list[tuple[dict[str, Any], Any]] = []
            while len(received) < 3:
                try:
                    message = simple.get(timeout=0.5)
                except simple.Empty:
                    break
                received.append((message.headers, message.decode()))
                message.ack()
            simple.close()
    finally:
        scheduler.close()

    assert [h["id"] for h, _ in received] == [run_task_id("report", at(30)), run_task_id("report", at(60))]
    assert {h["task"] for h, _ in received} == {"tasks.report"}
    assert all(h["celery_beat_task"] is True for h, _ in received)
    assert [body[0] for _, body in received] == [[7], [7]]
    assert [body[1] for _, body in received] == [{"fmt": "pdf"}, {"fmt": "pdf"}]


# ------------------------------------------------------------------------------------ pause and resume


def test_pause_from_another_process_takes_effect_within_one_poll_and_resume_does_not_replay(
    harness: Harness, clock: FakeClock
) -> None:
    scheduler = harness.start({"a": every(2), "b": every(2, task="tasks.b")})
    other = harness.other_store()

    harness.run_until(at(10.5), scheduler)
    assert harness.outbox.fires("a") == grid(2, 10, 2)

    assert other.set_paused(["a"], True) == ["a"]
    paused_at = clock.now()
    harness.run_until(at(40.5), scheduler)

    poll = 1.0
    assert all(fire <= paused_at + timedelta(seconds=poll) for fire in harness.outbox.fires("a"))
    assert scheduler.schedule["a"].state == "Paused"
    assert harness.outbox.fires("b") == grid(2, 40, 2)  # the other job never noticed

    assert other.set_paused(["a"], False) == ["a"]
    resumed_at = clock.now()
    harness.run_until(at(60.5), scheduler)

    after_resume = [f for f in harness.outbox.fires("a") if f > paused_at + timedelta(seconds=poll)]
    # No replay of the 14 instants missed while paused: the first run after resuming is a fresh grid
    # instant at most one poll plus one interval after the resume, then the grid goes on.
    assert after_resume[0] > resumed_at
    assert after_resume[0] <= resumed_at + timedelta(seconds=poll + 2)
    assert after_resume == grid((after_resume[0] - T0).total_seconds(), 60, 2)
    assert scheduler.schedule["a"].state == "Running"
    assert harness.outbox.fires("b") == grid(2, 60, 2)


def test_paused_job_at_the_top_of_the_heap_never_blocks_the_others(harness: Harness) -> None:
    first = harness.start({"early": every(1), "late": every(5, task="tasks.late")})
    first.close()
    harness.other_store().set_paused(["early"], True)

    scheduler = harness.start({"early": every(1), "late": every(5, task="tasks.late")})
    harness.run_until(at(30), scheduler)
    assert harness.outbox.fires("early") == []
    assert harness.outbox.fires("late") == grid(5, 30, 5)

    # Paused while running: its stale heap items surface first every second and must be skipped.
    harness.other_store().set_paused(["early"], False)
    harness.run_until(at(40), scheduler)
    harness.other_store().set_paused(["early"], True)
    harness.run_until(at(80), scheduler)
    assert harness.outbox.fires("late") == grid(5, 80, 5)
    assert all(fire <= at(42) for fire in harness.outbox.fires("early"))


def test_a_resumed_job_does_not_replay_after_a_restart(harness: Harness, clock: FakeClock) -> None:
    schedule = {"report": every(600)}
    scheduler = harness.start(schedule, max_interval=60)
    other = harness.other_store()
    harness.run_until(at(605), scheduler)
    other.set_paused(["report"], True)
    harness.run_until(at(605 + 2 * 3600), scheduler, step=5)  # paused for two hours
    other.set_paused(["report"], False)
    harness.run_until(at(605 + 2 * 3600 + 120), scheduler)
    assert harness.outbox.fires("report") == [at(600)]
    scheduler.close()

    restarted = harness.start(schedule, max_interval=60)
    harness.run_until(at(605 + 2 * 3600 + 130), restarted)

    # 11:10:00 fell inside the pause (it ended 11:10:05): resuming must not replay it, restart or not.
    assert harness.outbox.fires("report") == [at(600)]
    harness.run_until(at(8400), restarted)
    assert harness.outbox.fires("report") == [at(600), at(8400)]


# ------------------------------------------------------------------------------------ catch-up and grace


def _down_and_up(
    harness: Harness, schedule: dict[str, dict[str, Any]], down_until: float, **settings: Any
) -> RecordingScheduler:
    """Run until a first fire at 60 s, stop beat at 61 s, start it again at ``at(down_until)``."""
    scheduler = harness.start(schedule, **settings)
    harness.run_until(at(61), scheduler)
    scheduler.close()
    harness.clock.advance(down_until - 61)
    return harness.start(schedule, **settings)


def test_catch_up_once_sends_only_the_latest_missed_run(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=SCHEDULER_LOGGER)
    restarted = _down_and_up(harness, {"m": every(60)}, 630)

    harness.run_until(at(720), restarted)

    # Down from 61 s to 630 s: 120..600 were missed (9 runs); once = one run, for the latest.
    assert harness.outbox.fires("m") == [at(60), at(600), at(660), at(720)]
    assert messages_of(caplog, logging.WARNING) == [
        "celery-orchestra: job m missed 9 run(s); catch-up 'once': sending 1, the last for 2026-01-05 09:10:00+00:00"
    ]


def test_catch_up_skip_drops_runs_older_than_the_grace(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=SCHEDULER_LOGGER)
    restarted = _down_and_up(harness, {"m": every(60)}, 630, orchestra_catch_up="skip", orchestra_misfire_grace=10)

    harness.run_until(at(720), restarted)

    assert harness.outbox.fires("m") == [at(60), at(660), at(720)]
    skipped = "celery-orchestra: job m: skipped 9 missed run(s) (catch-up 'skip')"
    assert messages_of(caplog, logging.WARNING)[0] == skipped


def test_catch_up_skip_skips_all_missed_runs_in_one_go(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger=SCHEDULER_LOGGER)
    restarted = _down_and_up(harness, {"m": every(60)}, 630, orchestra_catch_up="skip", orchestra_misfire_grace=10)
    store = restarted.store
    assert store is not None
    saves: list[int] = []
    real_save = store.save_progress

    def counting_save(progress: Any, **options: Any) -> list[str]:
        saves.append(len(progress))
        return list(real_save(progress, **options))

    monkeypatch.setattr(store, "save_progress", counting_save)

    harness.run_until(at(631), restarted)

    assert messages_of(caplog, logging.WARNING) == [
        "celery-orchestra: job m: skipped 9 missed run(s) (catch-up 'skip')"
    ]
    assert saves == [1]
    assert harness.job("m").last_run_at == at(600)  # the newest instant considered, not the oldest


def test_catch_up_skip_still_sends_a_run_late_by_less_than_the_grace(harness: Harness) -> None:
    restarted = _down_and_up(harness, {"m": every(60)}, 630, orchestra_catch_up="skip", orchestra_misfire_grace=45)

    harness.run_until(at(720), restarted)

    # 600 is 30 s late at 630 (within 45 s): sent; 120..540 are skipped.
    assert harness.outbox.fires("m") == [at(60), at(600), at(660), at(720)]


def test_catch_up_all_sends_every_missed_run_in_order(harness: Harness) -> None:
    restarted = _down_and_up(harness, {"m": every(60)}, 630, orchestra_catch_up="all")

    harness.run_until(at(720), restarted)

    assert harness.outbox.fires("m") == grid(60, 720, 60)


def test_catch_up_all_is_bounded_by_the_limit(harness: Harness) -> None:
    restarted = _down_and_up(harness, {"m": every(60)}, 630, orchestra_catch_up="all", orchestra_catch_up_limit=3)

    harness.run_until(at(720), restarted)

    # 9 runs missed (120..600 s): the latest 3 are sent, then the grid goes on.
    assert harness.outbox.fires("m") == [at(60), at(480), at(540), at(600), at(660), at(720)]


def test_catch_up_once_after_more_missed_runs_than_the_limit_still_sends_one(harness: Harness) -> None:
    restarted = _down_and_up(harness, {"s": every(1)}, 1000.5, orchestra_catch_up_limit=100)

    harness.run_until(at(1001.5), restarted)

    # Up to 61 s every second ran; 939 runs (62..1000 s) were missed: exactly one catch-up run, for
    # the latest, then the grid.
    assert harness.outbox.fires("s")[:61] == grid(1, 61, 1)
    assert harness.outbox.fires("s")[61:] == [at(1000), at(1001)]


def test_runs_late_by_less_than_the_grace_are_all_sent(harness: Harness, clock: FakeClock) -> None:
    scheduler = harness.start({"s": every(1)})
    harness.run_until(at(10), scheduler)

    clock.advance(3.5)  # beat was busy (a slow store write, a GC pause): no tick for 3.5 s
    harness.run_until(at(15), scheduler)

    assert harness.outbox.fires("s") == grid(1, 15, 1)


def test_misfire_grace_with_skip(harness: Harness) -> None:
    schedule = {"report": every(600)}
    settings: dict[str, Any] = {"orchestra_catch_up": "skip", "orchestra_misfire_grace": 30, "max_interval": 60}
    scheduler = harness.start(schedule, **settings)
    harness.run_until(at(601), scheduler)
    scheduler.close()

    harness.clock.advance(1220 - 601)  # 1200 missed by 20 s: within the grace
    scheduler = harness.start(schedule, **settings)
    harness.run_until(at(1221), scheduler)
    scheduler.close()
    assert harness.outbox.fires("report") == [at(600), at(1200)]

    harness.clock.advance(1845 - 1221)  # 1800 missed by 45 s: beyond the grace
    scheduler = harness.start(schedule, **settings)
    harness.run_until(at(2400), scheduler)
    assert harness.outbox.fires("report") == [at(600), at(1200), at(2400)]


# ------------------------------------------------------------------------------------ failures


def test_failed_send_is_released_not_counted_and_retried(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    scheduler = harness.start({"a": every(60)})
    harness.run_until(at(59), scheduler)
    harness.outbox.broken = True

    harness.run_until(at(70), scheduler)

    assert harness.outbox.failed_attempts >= 3  # tried at 60 s, then again after 1, 2, 5 s...
    assert harness.outbox.sent == []
    record = harness.job("a")
    assert (record.last_run_at, record.total_run_count) == (None, 0)
    assert harness.other_store().history("a") == []  # the claim was released
    # One line for the outage, not one per job and retry.
    assert messages_of(caplog, logging.ERROR) == [
        "celery-orchestra: cannot reach the broker: [Errno 111] Connection refused (the test's broker is down); "
        "holding what is due and trying again every 1 s until it is back"
    ]

    harness.outbox.broken = False
    harness.run_until(at(130), scheduler)

    # The retry carries the original nominal instant and task id; then the grid goes on.
    assert [(s.fire, s.task_id) for s in harness.outbox.sent] == [
        (at(60), run_task_id("a", at(60))),
        (at(120), run_task_id("a", at(120))),
    ]
    record = harness.job("a")
    assert (record.last_run_at, record.total_run_count) == (at(120), 2)
    assert [e.fire_time for e in harness.other_store().history("a")] == [at(120), at(60)]


def test_a_broker_outage_is_one_line_each_way_and_everything_due_goes_out_when_it_is_back(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    schedule = {
        "fast": every(2),
        "slow": every(7, task="tasks.slow"),
        "once": {"task": "tasks.once", "schedule": "once in 15 seconds"},
    }
    scheduler = harness.start(schedule)
    harness.run_until(at(10.5), scheduler)
    harness.outbox.broken = True
    harness.run_until(at(30.5), scheduler)  # down 20 s
    assert [s.fire for s in harness.outbox.sent if s.fire > at(10.5)] == []
    harness.outbox.broken = False
    back_at = len(harness.outbox.sent)
    harness.run_until(at(31.5), scheduler)

    # Everything due meanwhile goes out within a second of the broker's return, the one-off once.
    late = {(s.job, s.fire) for s in harness.outbox.sent[back_at:]}
    assert late == {
        *(("fast", at(t)) for t in range(12, 31, 2)),
        ("slow", at(14)),
        ("slow", at(21)),
        ("slow", at(28)),
        ("once", at(15)),
    }
    harness.run_until(at(60.5), scheduler)
    assert harness.outbox.fires("fast") == grid(2, 60, 2)
    assert harness.outbox.fires("once") == [at(15)]
    assert harness.job("once").total_run_count == 1
    errors = [m for m in messages_of(caplog, logging.ERROR) if "broker" in m]
    back = [m for m in messages_of(caplog, logging.WARNING) if "broker is reachable again" in m]
    assert len(errors) == 1 and len(back) == 1
    # First failed send at 12 s (the first fire after it went), back at 31 s.
    assert back[0] == "celery-orchestra: the broker is reachable again after 19.0 s; sending everything due"


def test_a_run_the_broker_refuses_is_that_jobs_problem_only(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    scheduler = harness.start({"good": every(2), "bad": every(2, task="tasks.bad")})
    real_send = harness.outbox.send_task

    def refuse_bad(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "tasks.bad":
            raise ValueError("expires: 'soon' is not a number")
        return real_send(name, *args, **kwargs)

    monkeypatch.setattr(scheduler.app, "send_task", refuse_bad)
    harness.run_until(at(20.5), scheduler)
    assert harness.outbox.fires("good") == grid(2, 20, 2)
    assert harness.outbox.fires("bad") == []
    refusals = [m for m in messages_of(caplog, logging.ERROR) if "sending bad (tasks.bad)" in m]
    assert 3 <= len(refusals) <= 6  # backed off: 1, 2, 5, 10 s...
    assert not any("cannot reach the broker" in m for m in messages_of(caplog))


def test_unreachable_broker_is_survived_and_retried(harness: Harness, clock: FakeClock) -> None:
    class NoBroker(RecordingScheduler):
        down = True

        @property
        def producer(self) -> Any:
            if self.down:
                raise OperationalError("broker unreachable")
            return object()  # the outbox ignores the producer

    scheduler = NoBroker(
        harness.app({"a": every(30)}), clock=clock, outbox=harness.outbox, schedule_filename=str(harness.folder / "b")
    )
    harness.schedulers.append(scheduler)

    harness.run_until(at(45), scheduler)
    assert harness.outbox.sent == []
    assert harness.other_store().history("a") == []

    scheduler.down = False
    harness.run_until(at(90), scheduler)
    assert harness.outbox.fires("a") == [at(30), at(60), at(90)]


def test_a_store_error_while_claiming_does_not_lose_the_job(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler = harness.start({"a": every(10)})
    store = scheduler.store
    assert store is not None
    real_claim = store.claim_runs
    failures = [StoreError("cannot claim 1 runs in 'sqlite://': database is locked", harness.db_url)]

    def flaky_claim(runs: Sequence[RunRecord], **options: Any) -> list[RunRecord]:
        if failures:
            raise failures.pop()
        return list(real_claim(runs, **options))

    monkeypatch.setattr(store, "claim_runs", flaky_claim)
    harness.run_until(at(60), scheduler)

    # The run for 10 s could not be claimed; it is retried, and the grid goes on.
    assert harness.outbox.fires("a")[-5:] == grid(20, 60, 10)
    assert at(10) in harness.outbox.fires("a")


def test_a_job_whose_next_fire_cannot_be_worked_out_is_retried_and_the_rest_of_its_batch_is_settled(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A schedule that raises after a send costs that job a retry; the others, due with it, go on."""
    scheduler = harness.start({"bad": every(10), "good": every(10)})
    loader = scheduler._jobs.loader
    real_next_fire = loader.next_fire
    failures = [RuntimeError("schedule exploded")]

    def next_fire(entry: ScheduleEntry, now: datetime) -> datetime | None:
        if entry.name == "bad" and now >= at(10) and failures:
            raise failures.pop()
        return real_next_fire(entry, now)

    monkeypatch.setattr(loader, "next_fire", next_fire)
    harness.run_until(at(40), scheduler)

    assert harness.outbox.fires("good") == grid(10, 40, 10)
    assert harness.outbox.fires("bad") == grid(10, 40, 10)  # its run at 10 s went out once
    assert "celery-orchestra: cannot work out the next fire time of bad" in messages_of(caplog, logging.ERROR)
    # The batch that raised was settled: both runs at 10 s are confirmed and counted.
    assert (harness.job("bad").total_run_count, harness.job("good").total_run_count) == (4, 4)


def test_a_pass_that_fails_half_way_puts_its_due_jobs_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = harness.start({"a": every(10), "b": every(10)})
    dispatcher = scheduler._dispatcher
    assert dispatcher is not None
    real_dispatch = dispatcher.dispatch
    failures = [RuntimeError("dispatch exploded")]

    def dispatch(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        real_dispatch(*args, **kwargs)

    monkeypatch.setattr(dispatcher, "dispatch", dispatch)
    harness.run_until(at(30), scheduler)

    # The pass at 10 s failed; both jobs came back a second later instead of dropping out for good.
    assert harness.outbox.fires("a") == grid(10, 30, 10)
    assert harness.outbox.fires("b") == grid(10, 30, 10)
    first = [m for m in harness.outbox.messages if m.task_id == run_task_id("a", at(10))]
    assert len(first) == 1
    assert any("before 2 due job(s) were settled (a, b)" in message for message in messages_of(caplog))


def test_tick_survives_a_store_outage_and_says_how_long_to_wait(
    harness: Harness, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = harness.start({"a": every(10)})
    store = scheduler.store
    assert store is not None
    database = store._db  # every transaction of this beat goes through it
    real_run = database.run

    def broken(*_: Any, **__: Any) -> Any:
        raise StoreError("cannot read the change counter: disk I/O error", harness.db_url, transient=True)

    monkeypatch.setattr(database, "run", broken)
    delays = []
    for _ in range(12):  # an outage from 1 s to 12 s, across the run due at 10 s
        clock.advance(1)
        delays.append(checked_delay(scheduler, scheduler.tick()))
    assert all(0.01 <= delay <= 1.0 for delay in delays), delays  # no spin, no long sleep
    assert harness.outbox.sent == []  # nothing that could not be claimed
    monkeypatch.setattr(database, "run", real_run)
    harness.run_until(at(30), scheduler)
    assert harness.outbox.fires("a") == [at(10), at(20), at(30)]  # caught up once it was back


# ------------------------------------------------------------------------------------ two schedulers


def test_two_schedulers_on_one_database_send_each_fire_instant_once(harness: Harness, clock: FakeClock) -> None:
    schedule = {
        "fast": every(3),
        "slow": every(7, task="tasks.slow"),
        "one-off": {"task": "tasks.once", "schedule": "once in 11 seconds"},
    }
    first = harness.start(schedule, label="first", orchestra_poll_interval=5)
    second = harness.start(schedule, label="second", orchestra_poll_interval=5)
    assert (first.active, second.active) == (True, False)

    for step in range(120):
        order = (first, second) if (step // 2) % 2 else (second, first)
        for scheduler in order:
            checked_delay(scheduler, scheduler.tick())
        clock.advance(0.5)

    sent = harness.outbox.sent
    instants = [(s.job, s.fire) for s in sent]
    assert len(instants) == len(set(instants)), Counter(instants).most_common(3)
    # The last tick is at 59.5 s.
    assert harness.outbox.fires("fast") == grid(3, 57, 3)
    assert harness.outbox.fires("slow") == grid(7, 56, 7)
    assert harness.outbox.fires("one-off") == [at(11)]
    assert {s.by for s in sent} == {"first"}  # the standby sends nothing
    assert len(harness.outbox.messages) == len(sent)


def test_a_standby_takes_over_within_the_lease_ttl_of_the_active_beats_death(
    harness: Harness, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    schedule = {"fast": every(2)}
    active = harness.start(schedule, label="active")
    standby = harness.start(schedule, label="standby")
    assert any("standby: another beat" in m for m in messages_of(caplog)) or not standby.active
    harness.run_until(at(20.5), active, standby, step=0.5)
    # kill -9: the active beat stops ticking and never releases its lease (renewed last at ~20 s).
    harness.run_until(at(60.5), standby, step=0.5)

    by_beat = {label: [s.fire for s in harness.outbox.sent if s.by == label] for label in ("active", "standby")}
    assert by_beat["active"] == grid(2, 20, 2)
    # Every instant is sent once, and the standby sent within the lease's 10 s (+ its 1 s look).
    assert harness.outbox.fires("fast") == grid(2, 60, 2)
    first_by_standby = next(s for s in harness.outbox.sent if s.by == "standby")
    assert first_by_standby.fire > at(20)
    takeover = [m for m in messages_of(caplog, logging.WARNING) if "took over as the active one" in m]
    assert len(takeover) == 1
    assert standby.active


def test_a_clean_stop_hands_the_lease_over_at_once(harness: Harness, clock: FakeClock) -> None:
    schedule = {"fast": every(2)}
    active = harness.start(schedule, label="active")
    standby = harness.start(schedule, label="standby")
    harness.run_until(at(10.5), active, standby, step=0.5)
    active.close()
    harness.run_until(at(12.5), standby, step=0.5)
    assert standby.active
    assert harness.outbox.fires("fast") == grid(2, 12, 2)
    assert [s.fire for s in harness.outbox.sent if s.by == "standby"] == [at(12)]


def test_a_beat_that_stalled_past_its_lease_writes_and_sends_nothing_once_another_took_over(
    harness: Harness, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = {"fast": every(2)}
    stalled = harness.start(schedule, label="stalled")
    other = harness.start(schedule, label="other")
    harness.run_until(at(10.5), stalled, other, step=0.5)
    # SIGSTOP for 40 s: the other beat takes over meanwhile.
    harness.run_until(at(50.5), other, step=0.5)
    assert other.active
    sent_before = len(harness.outbox.sent)
    store_revision = harness.other_store().current_revision()

    # SIGCONT: the stalled beat's first pass finds its lease gone and sends nothing.
    checked_delay(stalled, stalled.tick())
    assert not stalled.active
    assert len(harness.outbox.sent) == sent_before
    harness.run_until(at(70.5), stalled, other, step=0.5)

    instants = [(s.job, s.fire) for s in harness.outbox.sent]
    assert len(instants) == len(set(instants))
    assert harness.outbox.fires("fast") == grid(2, 70, 2)
    assert all(s.by == "other" for s in harness.outbox.sent if s.fire > at(11))
    assert harness.other_store().current_revision() >= store_revision
    lost = [m for m in messages_of(caplog, logging.ERROR) if "no longer the active one" in m]
    assert len(lost) == 1


def test_a_fenced_write_of_a_beat_that_lost_the_lease_is_refused(harness: Harness, clock: FakeClock) -> None:
    schedule = {"fast": every(2)}
    stalled = harness.start(schedule, label="stalled")
    harness.run_until(at(4.5), stalled, step=0.5)
    other = harness.start(schedule, label="other")
    clock.advance(30)  # the stalled beat's lease expired
    checked_delay(other, other.tick())
    assert other.active
    store = stalled.store
    assert store is not None
    before = harness.job("fast")
    run = RunRecord("fast", at(100), clock.now(), run_task_id("fast", at(100)), None)
    with pytest.raises(LeaseLostError):
        store.claim_runs([run])
    with pytest.raises(LeaseLostError):
        store.save_progress({"fast": Progress(at(100), 1, at(102))})
    with pytest.raises(LeaseLostError):
        store.set_next_run({"fast": at(102)})
    after = harness.job("fast")
    assert (after.total_run_count, after.last_run_at, after.next_run_at) == (
        before.total_run_count,
        before.last_run_at,
        before.next_run_at,
    )
    assert at(100) not in {entry.fire_time for entry in harness.other_store().history("fast", 100)}


def test_two_schedulers_keep_an_exact_run_count(harness: Harness, clock: FakeClock) -> None:
    schedule = {"fast": every(3), "one-off": {"task": "tasks.once", "schedule": "once in 11 seconds"}}
    first = harness.start(schedule, label="first", orchestra_poll_interval=5)
    second = harness.start(schedule, label="second", orchestra_poll_interval=5)
    for step in range(120):
        # Fires fall on even steps; who ticks first alternates from one fire instant to the next.
        order = (first, second) if (step // 2) % 2 else (second, first)
        for scheduler in order:
            checked_delay(scheduler, scheduler.tick())
        clock.advance(0.5)

    assert harness.job("fast").total_run_count == len(harness.outbox.fires("fast")) == 19
    assert harness.job("one-off").total_run_count == 1


# ------------------------------------------------------------------------------------ clock jumps


def test_wall_clock_jump_forward_is_logged_and_sends_no_burst(
    harness: Harness, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=SCHEDULER_LOGGER)
    scheduler = harness.start({"minutely": every(60), "ten": every(600, task="tasks.ten")})
    harness.run_until(at(125), scheduler)
    assert harness.outbox.fires("minutely") == [at(60), at(120)]

    clock.jump(3600)
    clock.advance(1)
    checked_delay(scheduler, scheduler.tick())

    assert messages_of(caplog, logging.WARNING)[0] == (
        "celery-orchestra: the wall clock jumped forward by 3600.0 s; re-evaluating every job"
    )
    # 60 runs of "minutely" and 6 of "ten" were skipped over: one catch-up run each, the latest.
    assert harness.outbox.fires("minutely") == [at(60), at(120), at(3720)]
    assert harness.outbox.fires("ten") == [at(3600)]
    harness.run_until(at(3900), scheduler)
    assert harness.outbox.fires("minutely") == [at(60), at(120), *grid(3720, 3900, 60)]
    assert harness.outbox.fires("ten") == [at(3600)]


def test_wall_clock_jump_backward_is_logged_and_does_not_stall(
    harness: Harness, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    scheduler = harness.start({"minutely": every(60)}, max_interval=60, orchestra_poll_interval=10)
    harness.run_until(at(2 * 3600 + 30), scheduler)
    assert harness.outbox.fires("minutely") == grid(60, 7200, 60)

    clock.jump(-3600)
    clock.advance(1)
    delay = checked_delay(scheduler, scheduler.tick())

    assert "celery-orchestra: the wall clock jumped backward by 3600.0 s; re-evaluating every job" in messages_of(
        caplog, logging.WARNING
    )
    now = clock.now()
    next_fire = scheduler.schedule["minutely"].next_fire_at
    assert now < next_fire <= now + timedelta(seconds=60)  # not an hour away: no stall
    assert delay <= 10.0

    # The instants of the repeated hour were already sent: the ledger keeps them from going out twice
    # (same task ids), and as soon as the clock passes new instants the grid goes on without a gap.
    harness.run_until(at(2 * 3600 + 300), scheduler, step=1)
    fires = harness.outbox.fires("minutely")
    assert fires == grid(60, 7500, 60)
    assert len({s.task_id for s in harness.outbox.sent}) == len(harness.outbox.sent)
    assert any("was already sent (run ledger); not sending it again" in m for m in messages_of(caplog))


# ------------------------------------------------------------------------------------ restarts


def test_a_one_off_that_ran_never_runs_again_after_restarts(harness: Harness) -> None:
    schedule = {"once": {"task": "tasks.once", "schedule": "once in 30 seconds"}}
    scheduler = harness.start(schedule)
    harness.run_until(at(31), scheduler)
    assert harness.outbox.fires("once") == [at(30)]
    scheduler.close()

    for _ in range(3):
        harness.clock.advance(5)
        restarted = harness.start(schedule)
        assert restarted.schedule["once"].state == "Done"
        assert restarted.schedule["once"].next_fire_at is None
        harness.run_for(60, restarted)
        restarted.close()

    assert harness.outbox.fires("once") == [at(30)]
    assert harness.job("once").total_run_count == 1


def test_a_one_off_survives_a_crash_right_after_sending(harness: Harness) -> None:
    # No close(): the first beat "dies" (kill -9) right after the send; a new one starts at once.
    schedule = {"once": {"task": "tasks.once", "schedule": "once in 30 seconds"}, "tick": every(10)}
    crashed = harness.start(schedule)
    harness.run_until(at(30), crashed)

    restarted = harness.start(schedule)
    harness.run_until(at(120), restarted)

    assert harness.outbox.fires("once") == [at(30)]
    assert harness.outbox.fires("tick") == grid(10, 120, 10)


class Crash(BaseException):
    """The process dies here (kill -9, OOM, power): nothing after this point runs."""


def test_a_one_off_is_not_lost_when_a_stop_interrupts_beat_between_claiming_and_publishing(
    harness: Harness, clock: FakeClock
) -> None:
    schedule = {"once": {"task": "tasks.once", "schedule": "once in 30 seconds"}}

    class StoppedBeforePublishing(RecordingScheduler):
        @property
        def producer(self) -> Any:
            raise Crash  # a second SIGTERM while connecting to the broker: nothing left

    dying = StoppedBeforePublishing(
        harness.app(schedule), clock=clock, outbox=harness.outbox, schedule_filename=str(harness.folder / "b")
    )
    harness.schedulers.append(dying)
    harness.run_until(at(29), dying)
    clock.advance(1)
    with pytest.raises(Crash):
        dying.tick()
    assert harness.outbox.messages == []

    clock.advance(5)
    restarted = harness.start(schedule)
    harness.run_until(at(120), restarted)

    # Published exactly once, with the run's deterministic task id (a duplicate would be recognisable).
    assert [m.task_id for m in harness.outbox.messages] == [run_task_id("once", at(30))]


def test_a_run_whose_send_was_interrupted_is_in_doubt_one_off_never_again_repeating_again_with_its_id(
    harness: Harness, clock: FakeClock
) -> None:
    """Interrupted inside the send, the message may have left: the claim stays for the ledger's recovery."""
    schedule = {"once": {"task": "tasks.once", "schedule": "once in 30 seconds"}, "tick": every(30)}

    class InterruptedInTheSend(RecordingScheduler):
        def send_run(self, entry: ScheduleEntry, record: RunRecord, producer: Any) -> bool:
            super().send_run(entry, record, producer)  # the message is out...
            raise Crash  # ...and the stop lands before the send returns

    dying = InterruptedInTheSend(
        harness.app(schedule), clock=clock, outbox=harness.outbox, schedule_filename=str(harness.folder / "b")
    )
    harness.schedulers.append(dying)
    harness.run_until(at(29), dying)
    clock.advance(1)
    with pytest.raises(Crash):
        dying.tick()
    first_sent = [m.task_id for m in harness.outbox.messages]
    assert len(first_sent) == 1  # interrupted in the first send of the batch
    dying.close()

    clock.advance(5)
    restarted = harness.start(schedule)
    harness.run_until(at(120), restarted)

    ids = [m.task_id for m in harness.outbox.messages]
    assert ids.count(run_task_id("once", at(30))) <= 1, "a one-off was sent twice"
    assert ids.count(run_task_id("tick", at(30))) >= 1, "a repeating run was lost"
    assert [e.fire_time for e in restarted.store.history("tick")] == [at(120), at(90), at(60), at(30)]  # type: ignore[union-attr]


def test_a_one_off_is_not_repeated_when_beat_dies_after_publishing_before_confirming(
    harness: Harness, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule = {"once": {"task": "tasks.once", "schedule": "once in 30 seconds"}}
    dying = harness.start(schedule)
    store = dying.store
    assert store is not None

    def die(*_: Any, **__: Any) -> list[str]:
        raise Crash

    monkeypatch.setattr(store, "save_progress", die)  # published, then killed before the confirmation
    harness.run_until(at(29), dying)
    clock.advance(1)
    with pytest.raises(Crash):
        dying.tick()
    assert [m.task_id for m in harness.outbox.messages] == [run_task_id("once", at(30))]

    clock.advance(5)
    restarted = harness.start(schedule)
    harness.run_until(at(120), restarted)

    assert [m.task_id for m in harness.outbox.messages] == [run_task_id("once", at(30))]
    # The run most likely went out, so it is counted (once); history says it was never confirmed.
    record = harness.job("once")
    assert (record.total_run_count, record.last_run_at) == (1, at(30))
    assert restarted.schedule["once"].state == "Done"
    history = restarted.store.history("once")  # type: ignore[union-attr]
    assert [(e.task_id, e.confirmed, e.abandoned) for e in history] == [(run_task_id("once", at(30)), False, True)]


def test_runs_held_because_the_lease_ran_short_do_not_back_off_like_refused_ones(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = harness.start({"a": every(10)})
    lease = scheduler._lease
    assert lease is not None
    real_may_publish = lease.may_publish
    short = [True, True, True]  # three passes find too little of the lease left to publish

    def may_publish() -> bool:
        return not short.pop() if short else real_may_publish()

    monkeypatch.setattr(lease, "may_publish", may_publish)
    harness.run_until(at(13), scheduler)

    # Held a second each time (10, 11, 12), sent at 13 s; a broker's refusals would have backed it
    # off 1 + 2 + 5 s.
    assert harness.outbox.fires("a") == [at(10)]
    assert scheduler._dispatcher is not None and scheduler._dispatcher._send_failures == {}


def test_a_job_deleted_while_its_confirmation_waits_does_not_block_the_others(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = harness.start({"gone": every(10), "kept": every(10)})
    store = scheduler.store
    assert store is not None
    real_save = store.save_progress
    failures = [StoreError("cannot save the progress of 2 jobs: database is locked", harness.db_url)]

    def flaky_save(*args: Any, **kwargs: Any) -> list[str]:
        if failures:
            raise failures.pop()
        return list(real_save(*args, **kwargs))

    monkeypatch.setattr(store, "save_progress", flaky_save)
    harness.run_until(at(10), scheduler)  # both sent; their confirmation is kept for the next pass
    with harness.other_store().engine.begin() as connection:  # `celery orchestra forget gone`, meanwhile
        connection.exec_driver_sql("DELETE FROM orchestra_runs WHERE job_name = 'gone'")
        connection.exec_driver_sql("DELETE FROM orchestra_jobs WHERE name = 'gone'")
    harness.run_until(at(30), scheduler)

    kept = harness.job("kept")
    assert kept.total_run_count == 3
    assert [e.confirmed for e in harness.other_store().history("kept")] == [True, True, True]
    assert any("gone deleted from the store while runs of it were in flight" in m for m in messages_of(caplog))


def test_two_beats_do_not_resend_runs_whose_confirmation_write_failed(
    harness: Harness, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule = {"fast": every(3)}
    first = harness.start(schedule, label="first", orchestra_poll_interval=5)
    second = harness.start(schedule, label="second", orchestra_poll_interval=5)
    store = first.store
    assert store is not None
    real_save = store.save_progress
    failures = [StoreError("cannot save the progress of 1 jobs: database is locked", harness.db_url)]

    def flaky_save(*args: Any, **kwargs: Any) -> list[str]:
        if failures:
            raise failures.pop()  # a transient error, once: the runs were published, not confirmed
        return list(real_save(*args, **kwargs))

    monkeypatch.setattr(store, "save_progress", flaky_save)
    for _ in range(240):
        for scheduler in (first, second):  # "first" always ticks first: it wins every claim
            checked_delay(scheduler, scheduler.tick())
        clock.advance(0.5)

    ids = [m.task_id for m in harness.outbox.messages]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(2)
    assert sorted(harness.outbox.fires("fast")) == grid(3, 119.5, 3)


def test_an_unconfirmed_claim_does_not_stall_the_newer_runs_of_its_job(
    harness: Harness, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule = {"two": every(2)}
    dying = harness.start(schedule)
    store = dying.store
    assert store is not None
    harness.run_until(at(9), dying)

    def die(*_: Any, **__: Any) -> list[str]:
        raise Crash

    monkeypatch.setattr(store, "save_progress", die)  # killed after publishing 10 s, before confirming it
    clock.advance(1)
    with pytest.raises(Crash):
        dying.tick()

    clock.advance(1)
    restarted = harness.start(schedule)
    harness.run_until(at(60), restarted)

    assert harness.outbox.fires("two")[:5] == grid(2, 10, 2)
    assert [f for f in harness.outbox.fires("two") if f > at(10)] == grid(12, 60, 2)


def test_once_in_five_hours_registered_two_hours_before_a_restart_fires_three_hours_after(
    harness: Harness,
) -> None:
    schedule = {"later": {"task": "tasks.later", "schedule": "once in 5 hours"}}
    scheduler = harness.start(schedule, max_interval=300, orchestra_poll_interval=300)
    harness.run_until(at(2 * 3600), scheduler, step=300)
    scheduler.close()

    restarted = harness.start(schedule, max_interval=300, orchestra_poll_interval=300)
    assert restarted.schedule["later"].next_fire_at == at(5 * 3600)
    harness.run_until(at(5 * 3600 - 1), restarted)
    assert harness.outbox.sent == []
    harness.run_until(at(6 * 3600), restarted)

    assert harness.outbox.fires("later") == [at(5 * 3600)]


def test_a_cyclic_job_keeps_its_grid_across_restarts(harness: Harness) -> None:
    schedule = {"seven": every(7)}
    scheduler = harness.start(schedule)
    harness.run_until(at(40.5), scheduler)
    scheduler.close()

    restarted = harness.start(schedule)  # back within one interval: nothing missed
    assert restarted.schedule["seven"].next_fire_at == at(42)
    harness.run_until(at(100.25), restarted)
    restarted.close()

    assert harness.outbox.fires("seven") == grid(7, 98, 7)
    assert harness.job("seven").anchor == T0


def test_changed_timing_gets_a_new_anchor_unchanged_job_keeps_its_state(harness: Harness) -> None:
    scheduler = harness.start({"a": every(10), "b": every(15, task="tasks.b")})
    harness.run_until(at(62), scheduler)
    scheduler.close()
    harness.clock.advance(3)

    restarted = harness.start({"a": every(20), "b": every(15, task="tasks.b")})

    a, b = harness.job("a"), harness.job("b")
    assert (a.anchor, a.last_run_at, a.total_run_count) == (at(65), at(60), 6)
    assert (b.anchor, b.last_run_at, b.total_run_count) == (T0, at(60), 4)
    assert restarted.schedule["a"].next_fire_at == at(85)
    assert restarted.schedule["b"].next_fire_at == at(75)
    harness.run_until(at(125), restarted)
    assert harness.outbox.fires("a") == [*grid(10, 60, 10), at(85), at(105), at(125)]
    assert harness.outbox.fires("b") == grid(15, 120, 15)


def test_a_one_off_that_ran_and_is_moved_to_a_past_date_is_expired_not_left_hanging(harness: Harness) -> None:
    scheduler = harness.start({"o": {"task": "tasks.o", "schedule": "once in 30 seconds"}})
    harness.run_until(at(40), scheduler)
    scheduler.close()
    assert harness.job("o").total_run_count == 1

    # The one-off gets a new timing that had already passed when it was registered.
    restarted = harness.start({"o": {"task": "tasks.o", "schedule": "2020-01-01 10:00"}})
    harness.run_until(at(100), restarted)

    assert restarted.schedule["o"].state == "Expired"
    assert harness.job("o").expired is True
    assert harness.outbox.fires("o") == [at(30)]


def test_a_job_removed_from_the_configuration_is_marked_removed_and_never_sent(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = harness.start({"keep": every(10), "drop": every(10, task="tasks.drop")})
    harness.run_until(at(20), scheduler)
    scheduler.close()
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)

    restarted = harness.start({"keep": every(10)})
    harness.run_until(at(120), restarted)

    record = harness.job("drop")
    assert (record.removed, record.last_run_at, record.total_run_count) == (True, at(20), 2)
    assert restarted.schedule["drop"].state == "Removed"
    assert harness.outbox.fires("drop") == [at(10), at(20)]
    assert harness.outbox.fires("keep") == grid(10, 120, 10)
    assert "celery-orchestra: job drop (tasks.drop) is Removed; it will not be sent" in messages_of(caplog)


def test_a_beat_that_lost_its_lease_while_the_database_was_down_confirms_what_it_sent_when_it_is_back(
    harness: Harness, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = {"fast": every(2)}
    active = harness.start(schedule, label="active", orchestra_catch_up="all")
    store = active.store
    assert store is not None
    harness.run_until(at(3.5), active, step=0.5)
    database = store._db  # every transaction of this beat goes through it
    real_run = database.run
    down = StoreError("cannot save: server closed the connection unexpectedly", harness.db_url, transient=True)
    gone = [False]

    def fail_after_publishing(operation: str, *args: Any, **kwargs: Any) -> Any:
        # The batch at 4 s is claimed and published; the database goes before its confirmation.
        gone[0] = gone[0] or operation.startswith("save the progress")
        if gone[0]:
            raise down
        return real_run(operation, *args, **kwargs)

    monkeypatch.setattr(database, "run", fail_after_publishing)
    harness.run_until(at(16.5), active, step=0.5)
    assert not active.active  # could not renew for longer than the lease
    assert [s.fire for s in harness.outbox.sent] == grid(2, 4, 2)

    monkeypatch.setattr(database, "run", real_run)
    checked_delay(active, active.tick())  # back: as a standby it settles what it had in flight
    assert "lost the lease with runs in flight" in " ".join(messages_of(caplog, logging.WARNING))
    other = harness.start(schedule, label="other", orchestra_catch_up="all")
    harness.run_until(at(30.5), active, other, step=0.5)

    instants = [s.fire for s in harness.outbox.sent]
    assert len(instants) == len(set(instants)), Counter(instants).most_common(2)
    assert sorted(instants) == grid(2, 30, 2)  # catch-up "all": nothing missed while the database was away
    outage = [m for m in messages_of(caplog, logging.ERROR) if "cannot reach the store" in m]
    assert len(outage) == 1, outage
    assert "Traceback" not in caplog.text


#: The one way beat's log lines show an instant (README "Log lines"): ISO 8601, seconds, UTC offset.
LOG_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d"


def test_every_time_in_beats_log_has_one_form(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    import re

    caplog.set_level(logging.INFO, logger=SCHEDULER_LOGGER)
    schedule = {
        "berlin": {"task": "tasks.job", "schedule": "every day at 10:00", "timezone": "Europe/Berlin"},
        "utc": every(60),
    }
    scheduler = harness.start(schedule)
    harness.run_until(at(61), scheduler)
    scheduler.close()
    harness.clock.advance(3600)  # down for an hour: "utc" is late at the restart, "berlin" due tomorrow
    restarted = harness.start(schedule)
    harness.run_until(at(3600 + 61 + 60), restarted)
    lines = messages_of(caplog, logging.INFO)
    started = [line for line in lines if "scheduled to run at" in line]
    assert "celery-orchestra: job berlin (tasks.job) scheduled to run at 2026-01-06 10:00:00+01:00 (in " in started[0]
    assert any(
        "job utc (tasks.job) scheduled to run at 2026-01-05 09:02:00+00:00 (overdue by 59.02 minutes)" in x
        for x in started
    )
    assert any("sent utc (tasks.job) for 2026-01-05 09:01:00+00:00, task id " in line for line in lines)
    times = re.findall(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d[^ ,;)]*", " ".join(lines))
    assert times and all(re.fullmatch(LOG_TIME, time) for time in times), times
    assert not any("(now)" in line for line in lines)
