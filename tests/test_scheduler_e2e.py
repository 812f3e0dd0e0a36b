"""End to end: real ``celery beat`` / ``celery worker -B`` processes with ``celery_orchestra.Scheduler``.

Each test writes a small Celery app into ``tmp_path`` whose broker is ``filesystem://`` with its
folders in ``tmp_path``: every published message is a JSON file there, so the test counts what beat
really published, per job and task id, and compares it with the run ledger in the SQLite store beside
``-s``. Processes are stopped with SIGTERM (a clean shutdown) or SIGKILL (a crash), by the pid we
started, and killed in ``finally`` whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from celery_orchestra import run_task_id
from celery_orchestra.store import JobRecord, JobStore, LedgerEntry
from tests.servers import free_port

pytestmark = pytest.mark.slow

#: How long a process may take to start and send its first message on a busy 2-core machine.
START_DEADLINE = 30.0
STOP_DEADLINE = 30.0

APP_TEMPLATE = """\
import os
from celery import Celery

here = os.path.dirname(os.path.abspath(__file__))
app = Celery("e2eapp", broker="filesystem://")
app.conf.broker_transport_options = {{
    "data_folder_in": os.path.join(here, "broker"),
    "data_folder_out": os.path.join(here, "broker"),
    "control_folder": os.path.join(here, "control"),
}}
app.conf.result_backend = None
app.conf.result_expires = None
app.conf.beat_schedule = {schedule!r}
"""


@dataclass(frozen=True)
class Published:
    """One task message found in the broker folder."""

    task: str
    task_id: str
    queue: str


class Project:
    """A Celery project in a temporary folder, and the processes started on it."""

    def __init__(self, folder: Path, schedule: dict[str, dict[str, Any]], settings: dict[str, Any]) -> None:
        self.folder = folder
        folder.mkdir()
        self.broker = folder / "broker"
        self.broker.mkdir()
        (folder / "control").mkdir()
        app = APP_TEMPLATE.format(schedule=schedule) + f"app.conf.update({settings!r})\n"
        (folder / "e2eapp.py").write_text(app)
        self.schedule_file = folder / "celerybeat-schedule"
        self.db_url = f"sqlite:///{self.schedule_file}.orchestra.db"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, *arguments: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"process-{len(self.logs) + 1}.log"
        self.logs.append(log)
        environment = {**os.environ, "PYTHONPATH": str(self.folder), "PYTHONUNBUFFERED": "1"}
        environment.pop("CELERY_BROKER_URL", None)
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "e2eapp", *arguments, "-l", "info"],
                cwd=self.folder,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def beat(self, scheduler: str = "celery_orchestra.Scheduler") -> subprocess.Popen[bytes]:
        return self.start("beat", "-S", scheduler, "-s", str(self.schedule_file))

    def log_text(self, index: int = -1) -> str:
        return self.logs[index].read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for log in self.logs)

    def stop(self, process: subprocess.Popen[bytes], how: signal.Signals = signal.SIGTERM) -> int:
        if process.poll() is None:
            process.send_signal(how)
        try:
            return process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE)
            pytest.fail(f"pid {process.pid} did not stop within {STOP_DEADLINE} s after {how.name}:\n{self.all_logs()}")

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_DEADLINE)

    def published(self) -> list[Published]:
        """Every task message in the broker folder (pidbox and other messages are left out)."""
        found: list[Published] = []
        for path in sorted(self.broker.glob("*.msg")):
            try:
                message = json.loads(path.read_bytes())
            except ValueError:
                continue  # being written right now; seen next time
            headers = message.get("headers") or {}
            if "task" in headers and "id" in headers:
                queue = path.name.split(".", 1)[1].removesuffix(".msg")
                found.append(Published(headers["task"], headers["id"], queue))
        return found

    def count(self, task: str) -> int:
        return sum(1 for p in self.published() if p.task == task)

    def wait_for(self, what: str, condition: Callable[[], bool], deadline: float = START_DEADLINE) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if condition():
                return
            for process in self.processes[-1:]:
                if process.poll() is not None:
                    pytest.fail(
                        f"process exited with {process.returncode} while waiting for {what}:\n{self.all_logs()}"
                    )
            time.sleep(0.05)
        pytest.fail(f"timed out after {deadline} s waiting for {what}:\n{self.all_logs()}")

    def store(self) -> JobStore:
        return JobStore(self.db_url)

    def ledger(self, job: str) -> tuple[JobRecord, list[LedgerEntry]]:
        store = self.store()
        try:
            record = store.get_job(job)
            assert record is not None, f"job {job!r} is not in the store"
            return record, sorted(store.history(job, limit=10_000), key=lambda e: e.fire_time)
        finally:
            store.close()


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    projects: list[Project] = []

    def make(schedule: dict[str, dict[str, Any]], **settings: Any) -> Project:
        project = Project(tmp_path / f"project-{len(projects) + 1}", schedule, settings)
        projects.append(project)
        return project

    try:
        yield make
    finally:
        for project in projects:
            project.cleanup()


def assert_on_grid(record: JobRecord, fires: list[datetime], every: float) -> None:
    """``fires`` are distinct instants ``anchor + k * every`` (k >= 1), in order.

    Not necessarily consecutive: when beat is stalled (a loaded CI machine, a restart gap) past more
    than one instant, catch-up 'once' sends only the latest of them.
    """
    steps = [(fire - record.anchor) / timedelta(seconds=every) for fire in fires]
    assert all(step >= 1 and step == int(step) for step in steps), steps
    assert steps == sorted(set(steps)), steps


def assert_resent_only_after_kills(task_ids: list[str], kills: int) -> None:
    """A task id is published twice only for a kill -9 between publishing and confirming its run.

    README's "Recovery from the ledger": the next holder sends a repeating job's unconfirmed run
    again with the same task id (at least once), so each kill may leave one duplicate, never more.
    """
    repeats = {task_id: times for task_id, times in Counter(task_ids).items() if times > 1}
    assert all(times == 2 for times in repeats.values()), repeats
    assert len(repeats) <= kills, repeats


def test_one_off_is_never_resent_and_interval_job_never_duplicated_across_kill_and_term(
    make_project: Callable[..., Project],
) -> None:
    project = make_project(
        {
            "every2": {"task": "tasks.every2", "schedule": "every 2 seconds"},
            "once": {"task": "tasks.once", "schedule": "once in 3 seconds"},
        }
    )

    # Crash (kill -9) right after the one-off was published: the worst moment for DCB#828.
    first = project.beat()
    project.wait_for("the one-off to be published", lambda: project.count("tasks.once") == 1)
    assert project.stop(first, signal.SIGKILL) == -signal.SIGKILL

    second = project.beat()
    seen = project.count("tasks.every2")
    project.wait_for("two more runs of every2", lambda: project.count("tasks.every2") >= seen + 2)
    assert project.stop(second, signal.SIGTERM) == 0

    third = project.beat()
    seen = project.count("tasks.every2")
    project.wait_for("two more runs of every2", lambda: project.count("tasks.every2") >= seen + 2)
    assert project.stop(third, signal.SIGKILL) == -signal.SIGKILL

    fourth = project.beat()
    seen = project.count("tasks.every2")
    project.wait_for("three more runs of every2", lambda: project.count("tasks.every2") >= seen + 3)
    assert project.stop(fourth, signal.SIGTERM) == 0

    published = project.published()
    assert Counter(p.task for p in published)["tasks.once"] == 1, project.all_logs()
    once_record, once_runs = project.ledger("once")
    assert [r.task_id for r in once_runs] == [p.task_id for p in published if p.task == "tasks.once"]
    assert once_runs[0].fire_time == once_record.anchor + timedelta(seconds=3)
    assert (once_record.total_run_count, once_record.last_run_at) == (1, once_runs[0].fire_time)

    every2_ids = [p.task_id for p in published if p.task == "tasks.every2"]
    assert_resent_only_after_kills(every2_ids, kills=2)
    record, runs = project.ledger("every2")
    ledger_ids = {r.task_id: r for r in runs}
    assert set(every2_ids) <= set(ledger_ids)
    # A run whose send the final SIGTERM interrupted stays claimed: at most one per stop.
    assert len(runs) - len(set(every2_ids)) <= 2
    for run in runs:
        assert run.task_id == run_task_id("every2", run.fire_time)
    fires = [r.fire_time for r in runs]
    assert_on_grid(record, fires, 2)
    assert len(fires) >= 6
    assert "Traceback" not in project.all_logs()


def test_interval_job_fires_although_beat_restarts_more_often_than_its_interval(
    make_project: Callable[..., Project],
) -> None:
    project = make_project({"every5": {"task": "tasks.every5", "schedule": "every 5 seconds"}})
    started = time.monotonic()
    kills = 0
    for cycle in range(6):
        process = project.beat()
        project.wait_for("beat to schedule its job", lambda: "scheduled to run at" in project.log_text())
        time.sleep(3.0)
        how = signal.SIGKILL if cycle % 3 == 2 else signal.SIGTERM
        kills += how == signal.SIGKILL
        project.stop(process, how)
    elapsed = time.monotonic() - started

    published = [p.task_id for p in project.published() if p.task == "tasks.every5"]
    record, runs = project.ledger("every5")
    fires = [r.fire_time for r in runs]
    # Stock beat (and an interval counted from each start) would never fire here: every run of beat
    # is shorter than the interval. The anchor is stored, so the grid goes on across restarts, and a
    # fire instant that fell into a restart gap is caught up by the next beat (several instants in
    # one gap, on a loaded machine, become one run: catch-up 'once').
    assert len(fires) >= 3, project.all_logs()
    assert len(fires) >= elapsed / 5 / 2, (elapsed, fires)
    assert_on_grid(record, fires, 5)
    assert_resent_only_after_kills(published, kills)
    assert set(published) <= {r.task_id for r in runs}
    assert len(runs) - len(set(published)) <= kills
    assert [r.task_id for r in runs] == [run_task_id("every5", f) for f in fires]


def test_scheduler_alias_orchestra_works(make_project: Callable[..., Project]) -> None:
    project = make_project({"tick": {"task": "tasks.tick", "schedule": "every 1 second"}})

    process = project.beat(scheduler="orchestra")
    project.wait_for("two runs of tick", lambda: project.count("tasks.tick") >= 2)
    assert project.stop(process) == 0

    assert "scheduler -> celery_orchestra.Scheduler" in project.log_text()
    assert f". store -> {project.db_url}" in project.log_text()
    record, runs = project.ledger("tick")
    assert {p.task_id for p in project.published()} <= {r.task_id for r in runs}
    assert_on_grid(record, [r.fire_time for r in runs], 1)


def test_worker_with_embedded_beat_sends(make_project: Callable[..., Project]) -> None:
    # The job goes to a queue the worker does not consume, so its messages stay in the folder to count.
    project = make_project(
        {"embedded": {"task": "tasks.embedded", "schedule": "every 1 second", "options": {"queue": "beat-only"}}}
    )

    worker = project.start(
        "worker",
        "-B",
        "--scheduler",
        "celery_orchestra.Scheduler",
        "-s",
        str(project.schedule_file),
        "-Q",
        "worker-only",
        "--pool",
        "solo",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    )
    project.wait_for("two runs of embedded", lambda: project.count("tasks.embedded") >= 2, deadline=45)
    project.stop(worker)

    published = [p for p in project.published() if p.task == "tasks.embedded"]
    assert {p.queue for p in published} == {"beat-only"}
    record, runs = project.ledger("embedded")
    assert {p.task_id for p in published} <= {r.task_id for r in runs}
    assert len(runs) >= 2
    assert_on_grid(record, [r.fire_time for r in runs], 1)


def test_beat_waits_for_an_unreachable_database_then_exits_in_one_line(
    make_project: Callable[..., Project],
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://orchestra:secret@127.0.0.1:{port}/orchestra?connect_timeout=1"
    project = make_project(
        {"tick": {"task": "tasks.tick", "schedule": "every 1 second"}},
        orchestra_database_url=url,
        orchestra_store_wait=3,
    )
    process = project.beat()
    assert process.wait(timeout=START_DEADLINE) == 1, project.all_logs()
    log = project.log_text()
    assert "Traceback" not in log
    assert "secret" not in log
    assert "the store is not reachable yet" in log
    [last] = [line for line in log.splitlines() if "CRITICAL" in line]
    assert last.endswith("(waited 3 s for the store: orchestra_store_wait)")


def test_sigterm_in_the_middle_of_a_batch_settles_it_and_stops(make_project: Callable[..., Project]) -> None:
    jobs = {f"job-{n:04d}": {"task": "tasks.many", "schedule": "every 20 seconds"} for n in range(1500)}
    project = make_project(jobs)
    process = project.beat()
    project.wait_for("the batch to start going out", lambda: project.count("tasks.many") >= 50, deadline=60)
    stopped = time.monotonic()
    assert project.stop(process) == 0
    took = time.monotonic() - stopped
    log = project.log_text()
    assert "Traceback" not in log and "I/O operation on closed file" not in log
    assert took < 15, took

    published = {p.task_id for p in project.published() if p.task == "tasks.many"}
    store = JobStore(project.db_url)
    try:
        with store.engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT task_id, published FROM orchestra_runs").all()
    finally:
        store.close()
    # Every message that went out is confirmed in the ledger, and nothing is left claimed but unsent.
    assert {task_id for task_id, confirmed in rows if confirmed} == published
    assert [task_id for task_id, confirmed in rows if not confirmed] == []


def test_a_standby_beat_takes_over_when_the_active_one_is_killed(make_project: Callable[..., Project]) -> None:
    project = make_project({"tick": {"task": "tasks.tick", "schedule": "every 1 second"}})
    first = project.beat()
    project.wait_for("the first beat to send", lambda: project.count("tasks.tick") >= 2)
    second = project.beat()
    project.wait_for("the second beat to be standby", lambda: "standby: another beat" in project.log_text(-1))
    project.stop(first, signal.SIGKILL)
    killed_at, sent = time.monotonic(), project.count("tasks.tick")
    project.wait_for("the standby to send", lambda: project.count("tasks.tick") > sent)
    assert time.monotonic() - killed_at < 12  # the lease TTL (10 s) + 2 s; same host: about 1 s
    assert "taking its lease over now" in project.log_text(-1) or "took over" in project.log_text(-1)
    assert project.stop(second) == 0
    published = [p.task_id for p in project.published() if p.task == "tasks.tick"]
    assert_resent_only_after_kills(published, kills=1)
