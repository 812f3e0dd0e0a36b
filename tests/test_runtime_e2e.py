"""End to end: jobs managed at runtime (issue 10) with a real beat, a real worker, Redis as the
broker and as the result backend, and the ``celery orchestra`` CLI as an operator types it.

Every process is a real ``python -m celery ...`` started in a temporary project folder (its store
an SQLite file there, its broker and results one Redis database of its own) and stopped by the pid
we started. What beat *sent* is read from the run ledger; what really *ran* is the task ids the
worker appended to a file, so a fire time sent twice shows as a task id run twice (a scheduled
run's task id is derived from its job and fire time). Timings leave seconds of slack: beat looks
at the store every ``orchestra_poll_interval`` (a second) and the machine is shared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis as redis_client
from celery import Celery
from servers import RedisServer

from celery_orchestra import JobSpec, add_jobs, get_job, job_history, run_task_id
from celery_orchestra.errors import OrchestraError
from celery_orchestra.ops.liveness import beat_liveness
from celery_orchestra.store import JobRecord, JobStore, LedgerEntry

pytestmark = [pytest.mark.slow, pytest.mark.redis]

START_DEADLINE = 45.0
STOP_DEADLINE = 30.0
#: Time for a change to reach beat (its poll interval is a second) and for a send under way to land.
SETTLE = 2.5
#: Redis databases of the two tests (flushed first): apart from test_remote_e2e's low numbers.
_DATABASES = {"lifecycle": 12, "parallel": 13}

_T = TypeVar("_T")

APP_TEMPLATE = """\
import os
from celery import Celery

here = os.path.dirname(os.path.abspath(__file__))
app = Celery("e2e", broker="{broker}", backend="{broker}")
app.conf.update(
    broker_connection_retry_on_startup=True,
    orchestra_database_url="{store_url}",
    result_expires=None,
)


def _ran(task_id):
    with open(os.path.join(here, "ran.txt"), "a") as ledger:
        ledger.write(task_id + "\\n")


@app.task(bind=True)
def ok(self, *args, **kwargs):
    _ran(self.request.id)
    return list(args)


@app.task(bind=True)
def boom(self, *args, **kwargs):
    _ran(self.request.id)
    raise ValueError("boom: " + " ".join(str(arg) for arg in args))
"""


@dataclass(frozen=True)
class Command:
    """One finished ``celery orchestra`` command: its arguments, exit status, output, and when it returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    returned_at: float

    def describe(self) -> str:
        return f"celery orchestra {' '.join(self.argv)} -> {self.returncode}\n{self.stdout}{self.stderr}"


class Project:
    """The Celery project ``e2e`` in a temporary folder, on its own Redis database, and its processes."""

    def __init__(self, folder: Path, redis: RedisServer, database: int) -> None:
        self.folder = folder
        self.broker = redis.url(database)
        redis_client.Redis(host="127.0.0.1", port=redis.port, db=database).flushdb()
        self.store_url = f"sqlite:///{(folder / 'orchestra.db').as_posix()}"
        self.schedule_file = folder / "celerybeat-schedule"
        (folder / "e2e.py").write_text(APP_TEMPLATE.format(broker=self.broker, store_url=self.store_url))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        #: The same app in this process, for the Python API (outcomes come from its result backend).
        self.app = Celery("e2e-probe", broker=self.broker, backend=self.broker, set_as_current=False)
        self.app.conf.update(orchestra_database_url=self.store_url, result_expires=None)
        self._store: JobStore | None = None

    # -- processes

    def environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.folder), environment.get("PYTHONPATH")]))
        environment["PYTHONUNBUFFERED"] = "1"
        environment.pop("CELERY_BROKER_URL", None)
        environment.pop("CELERY_RESULT_BACKEND", None)
        return environment

    def start(self, *arguments: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"{len(self.logs) + 1:02d}-{arguments[0]}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "e2e", *arguments, "-l", "info"],
                cwd=self.folder,
                env=self.environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self.logs[process.pid] = log
        return process

    def beat(self) -> subprocess.Popen[bytes]:
        return self.start("beat", "-S", "celery_orchestra.Scheduler", "-s", str(self.schedule_file))

    def worker(self) -> subprocess.Popen[bytes]:
        return self.start(
            "worker", "-P", "solo", "-n", "runner@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"
        )

    def wait_until_ready(self, worker: subprocess.Popen[bytes]) -> None:
        self.wait_for("the worker to be ready", lambda: "ready." in self.log_of(worker))

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        return self.logs[process.pid].read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for log in self.logs.values())

    def orchestra(self, *arguments: str) -> Command:
        """``celery -A e2e orchestra ARGUMENTS`` as a subprocess; never raises for its exit status."""
        result = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "e2e", "orchestra", *arguments],
            cwd=self.folder,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Command(tuple(arguments), result.returncode, result.stdout, result.stderr, time.time())

    def orchestra_ok(self, *arguments: str) -> Command:
        command = self.orchestra(*arguments)
        assert command.returncode == 0, f"{command.describe()}\n{self.all_logs()}"
        return command

    def orchestra_parallel(self, *commands: Sequence[str]) -> list[Command]:
        """Several ``celery orchestra`` commands at once, each in its own process; all must succeed."""
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            return list(pool.map(lambda arguments: self.orchestra_ok(*arguments), commands))

    def stop(self, process: subprocess.Popen[bytes]) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE)
            pytest.fail(f"pid {process.pid} did not stop within {STOP_DEADLINE} s:\n{self.all_logs()}")

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_DEADLINE)
        if self._store is not None:
            self._store.close()
        self.app.close()

    def wait_for(
        self, what: str, condition: Callable[[], _T | None], deadline: float = START_DEADLINE, every: float = 0.1
    ) -> _T:
        """The first true value of ``condition()``, polled every ``every`` seconds for ``deadline`` seconds."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            value = condition()
            if value:
                return value
            for process in self.processes:
                if process.poll() is not None and process.returncode not in (0, -signal.SIGTERM):
                    pytest.fail(
                        f"pid {process.pid} exited with {process.returncode} waiting for {what}:\n{self.all_logs()}"
                    )
            time.sleep(every)
        pytest.fail(f"timed out after {deadline} s waiting for {what}:\n{self.all_logs()}")

    def wait_until_active(self, beat: subprocess.Popen[bytes]) -> None:
        def active() -> bool:
            try:
                liveness = beat_liveness(self.store)
            except OrchestraError:  # not created yet
                return False
            return liveness.active is not None and liveness.active.pid == beat.pid

        self.wait_for(f"beat pid {beat.pid} to be the active beat", active)

    # -- what happened

    @property
    def store(self) -> JobStore:
        """The store, read from this process (opened once)."""
        if self._store is None:
            self._store = JobStore(self.store_url)
        return self._store

    def record(self, name: str) -> JobRecord:
        record = self.store.get_job(name)
        assert record is not None, f"no job {name!r} in the store"
        return record

    def ledger(self, name: str) -> list[LedgerEntry]:
        """Every recorded run of ``name``, oldest fire time first."""
        return sorted(self.store.history(name, limit=100_000), key=lambda entry: entry.fire_time)

    def sent(self, name: str) -> list[LedgerEntry]:
        return [entry for entry in self.ledger(name) if entry.confirmed]

    def ran(self) -> Counter[str]:
        """How many times the worker ran each task id."""
        path = self.folder / "ran.txt"
        return Counter(path.read_text().split()) if path.exists() else Counter()

    def wait_for_worker(self, task_ids: set[str]) -> None:
        self.wait_for(f"the worker to run {len(task_ids)} sent tasks", lambda: task_ids <= set(self.ran()))


@pytest.fixture
def make_project(tmp_path: Path, redis: RedisServer) -> Iterator[Callable[[str], Project]]:
    projects: list[Project] = []

    def make(which: str) -> Project:
        folder = tmp_path / which
        folder.mkdir()
        project = Project(folder, redis, _DATABASES[which])
        projects.append(project)
        return project

    try:
        yield make
    finally:
        for project in projects:
            project.cleanup()


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def on_grid(fires: Sequence[datetime], anchor: datetime, every: float) -> bool:
    return all(seconds(fire - anchor) > 0 and seconds(fire - anchor) % every == 0 for fire in fires)


def definition(record: JobRecord) -> tuple[Any, ...]:
    """What a restart of beat must keep of a job: its definition, operator state, owner and anchor."""
    return (
        record.owner,
        record.task,
        record.schedule_data,
        record.timezone,
        record.args,
        record.kwargs,
        record.options,
        record.tags,
        record.enabled,
        record.paused,
        record.removed,
        record.anchor,
    )


# ---------------------------------------------------------------------------- one job's life


def test_a_runtime_job_is_added_run_changed_run_now_disabled_removed_and_survives_a_restart(
    make_project: Callable[[str], Project],
) -> None:
    project = make_project("lifecycle")
    app = project.app
    worker, beat = project.worker(), project.beat()
    project.wait_until_ready(worker)
    project.wait_until_active(beat)

    # -- added at runtime: sent within 2 s of being stored (seen here by polling the store while
    # -- the commands run: a process on a busy machine may take long to exit after its commit)
    with ThreadPoolExecutor(max_workers=1) as background:
        adding = background.submit(
            project.orchestra_parallel,
            ("add", "tick", "--task", "e2e.ok", "--schedule", "every 1 second", "--args", '["tick"]', "--json"),
            ("add", "fails", "--task", "e2e.boom", "--schedule", "every 2 seconds", "--args", '["fails"]'),
            ("add", "hourly", "--task", "e2e.ok", "--schedule", "every 1 hour", "--tag", "slow"),
            ("add", "parked", "--task", "e2e.ok", "--schedule", "every 1 second"),
            ("add", "once-before", "--task", "e2e.ok", "--schedule", "once in 2 seconds"),
        )
        stored_at = project.wait_for(
            "tick to be stored", lambda: project.store.get_job("tick") is not None and time.time(), every=0.02
        )
        adds = adding.result()
    added = json.loads(adds[0].stdout)
    assert (added["name"], added["owner"], added["state"], added["schedule"]) == (
        "tick",
        "runtime",
        "Running",
        "every 1 second",
    )
    assert adds[1].stdout.startswith("added fails (runtime): e2e.boom, every 2 seconds in UTC, Running, next at ")
    first = project.wait_for("the first send of tick", lambda: project.sent("tick"))[0]
    latency = first.sent_at.timestamp() - stored_at
    assert latency <= 2.0, f"tick was sent {latency:.3f} s after `orchestra add` stored it"

    # -- outcomes: SUCCESS, and FAILURE with the exception, in get_job's last run and in history
    def succeeded(name: str) -> list[str]:
        return [run.task_id for run in job_history(app, name, 100) if run.result == "SUCCESS"]

    def failed_last() -> Any:
        last = get_job(app, "fails").last_run
        return last if last is not None and last.result == "FAILURE" else None

    project.wait_for("a run of tick to succeed", lambda: succeeded("tick"))
    last = project.wait_for("the last run of fails to show FAILURE", failed_last)
    assert last.outcome is not None and last.outcome.error == "ValueError: boom: fails"
    assert project.ran()[last.task_id] == 1
    tick_history, fails_history = (
        json.loads(command.stdout)
        for command in project.orchestra_parallel(
            ("history", "tick", "-n", "100", "--json"), ("history", "fails", "-n", "100", "--json")
        )
    )
    successes = [run for run in tick_history if run["outcome"]["state"] == "SUCCESS"]
    assert successes, tick_history
    # (A run may have succeeded before beat confirmed it in the ledger: it publishes, then confirms.)
    assert all(not run["manual"] and run["outcome"]["finished_at"] for run in successes)
    assert {run["task_id"] for run in successes} <= set(project.ran())
    failures = [run for run in fails_history if run["outcome"]["state"] == "FAILURE"]
    assert {run["outcome"]["error"] for run in failures} == {"ValueError: boom: fails"}

    # -- a one-off added at runtime runs once
    [once] = project.wait_for("the one-off to be sent", lambda: project.sent("once-before"))
    assert get_job(app, "once-before").state == "Done"

    # -- update re-anchors the job: its next fire and its sends follow the new timing; meanwhile
    # -- run now sends one extra run with its own task id, and that job's schedule does not move
    hourly_before = project.record("hourly")
    assert hourly_before.next_run_at is not None
    due_before = get_job(app, "hourly").due_at
    update, run = project.orchestra_parallel(
        ("update", "tick", "--schedule", "every 2 seconds", "--json"), ("run", "hourly")
    )
    updated = json.loads(update.stdout)
    anchor = project.record("tick").anchor
    new_first = anchor + timedelta(seconds=2)
    assert updated["schedule"] == "every 2 seconds"
    assert datetime.fromisoformat(updated["due_at"]) == new_first
    # Beat may have sent the first fire of the new timing already: its next fire is then the second.
    project.wait_for(
        "beat to store a next fire of tick on its new timing",
        lambda: (next_fire := project.record("tick").next_run_at) is not None and on_grid([next_fire], anchor, 2),
    )
    due = get_job(app, "tick").due_at
    assert due is not None and on_grid([due], anchor, 2)

    def retimed() -> list[datetime]:
        return [entry.fire_time for entry in project.sent("tick") if entry.fire_time > anchor + timedelta(seconds=1)]

    def two_retimed() -> list[datetime] | None:
        fires = retimed()
        return fires if len(fires) >= 2 else None

    after_update = project.wait_for("two sends of tick on its new timing", two_retimed)
    assert after_update[:2] == [new_first, new_first + timedelta(seconds=2)]

    manual_id = run.stdout.strip()
    assert manual_id != run_task_id("hourly", hourly_before.next_run_at)
    [manual] = project.wait_for("the manual run of hourly to be sent", lambda: project.sent("hourly"))
    assert (manual.task_id, manual.manual) == (manual_id, True)
    project.wait_for("the manual run to succeed", lambda: succeeded("hourly") == [manual_id])
    hourly_after = project.record("hourly")
    assert (hourly_after.next_run_at, hourly_after.last_run_at, hourly_after.total_run_count) == (
        hourly_before.next_run_at,
        None,
        0,
    )
    assert get_job(app, "hourly").due_at == due_before

    # -- disable and remove stop the sends; enable brings them back
    disabled, removed = project.orchestra_parallel(("disable", "tick", "parked"), ("remove", "fails"))
    assert disabled.stdout == "disabled: tick, parked\n"
    assert removed.stdout == "removed fails; its history stays until pruned\n"
    time.sleep(SETTLE)
    stopped = {name: len(project.ledger(name)) for name in ("tick", "parked", "fails")}
    time.sleep(3.0)
    assert {name: len(project.ledger(name)) for name in stopped} == stopped, "a disabled or removed job was sent"
    assert [get_job(app, name).state for name in ("tick", "parked", "fails")] == ["Disabled", "Disabled", "Removed"]
    assert project.orchestra_ok("enable", "tick").stdout == "enabled: tick\n"
    project.wait_for("tick to be sent again", lambda: len(project.ledger("tick")) > stopped["tick"], deadline=15)

    # -- restart: what was changed while beat ran, and what was asked while it was down, survive it
    assert project.stop(beat) == 0
    offline_add, offline_run = project.orchestra_parallel(
        ("add", "once-during", "--task", "e2e.ok", "--schedule", "once in 1 second", "--json"),
        ("run", "hourly"),
    )
    once_due = datetime.fromisoformat(json.loads(offline_add.stdout)["due_at"])
    offline_id = offline_run.stdout.strip()
    time.sleep(max(0.0, once_due.timestamp() - time.time()) + 0.5)
    before = {record.name: definition(record) for record in project.store.all_jobs()}
    ledger_before = {name: project.ledger(name) for name in before}
    restarted_at = datetime.now(UTC)
    restarted = project.beat()
    project.wait_until_active(restarted)
    project.wait_for("the one-off that fell due while beat was down", lambda: project.sent("once-during"))
    project.wait_for("the run asked for while beat was down", lambda: len(project.sent("hourly")) == 2)
    project.wait_for(
        "two sends of tick after the restart",
        lambda: len([e for e in project.sent("tick") if e.fire_time > restarted_at]) >= 2,
        deadline=20,
    )

    after = {record.name: definition(record) for record in project.store.all_jobs()}
    assert after == before, "a restart of beat changed a runtime job"
    states = {name: get_job(app, name).state for name in after}
    assert states == {
        "tick": "Running",
        "fails": "Removed",
        "hourly": "Running",
        "parked": "Disabled",
        "once-before": "Done",
        "once-during": "Done",
    }
    for name, entries in ledger_before.items():
        sent_before = [entry for entry in entries if entry.confirmed]
        if sent_before:
            kept = [entry for entry in project.ledger(name) if entry.fire_time <= sent_before[-1].fire_time]
            assert kept == sent_before, f"the restart changed the history of {name}"
    for name in ("fails", "parked", "once-before"):
        assert project.ledger(name) == ledger_before[name], f"{name} was sent after the restart"
    assert [entry.task_id for entry in project.ledger("once-before")] == [once.task_id]
    [once_late] = project.ledger("once-during")
    assert once_late.confirmed and once_late.fire_time == once_due
    assert [(e.task_id, e.manual) for e in project.ledger("hourly")] == [(manual_id, True), (offline_id, True)]
    hourly_final = project.record("hourly")
    assert (hourly_final.next_run_at, hourly_final.total_run_count) == (hourly_before.next_run_at, 0)
    assert on_grid(retimed(), anchor, 2), "tick left the grid its update gave it"

    # -- everything sent ran exactly once, and nothing ran that was not sent
    assert project.stop(restarted) == 0
    every_run = [entry for name in after for entry in project.ledger(name)]
    sent_ids = Counter(entry.task_id for entry in every_run if entry.confirmed)
    assert [task_id for task_id, times in sent_ids.items() if times > 1] == []
    project.wait_for_worker(set(sent_ids))
    ran = project.ran()
    assert [task_id for task_id, times in ran.items() if times > 1] == []
    assert set(ran) == set(sent_ids)
    assert project.stop(worker) == 0
    for process in (beat, restarted):
        assert "Traceback" not in project.log_of(process)
        assert "ERROR" not in project.log_of(process)
    print(f"stored -> first send {latency:.3f} s; {len(sent_ids)} runs sent, each run once")


# ---------------------------------------------------------------------------- 20 CLI processes at once

PROCESSES = 20
#: Jobs there before the CLI processes start. Each shared job is changed by four processes at once,
#: each changing one field of it; each duplicated name is added by two processes at once; each
#: contested job is updated by one process while another removes it.
SHARED, DUPLICATED, CONTESTED = 3, 2, 2
SHARED_FIELDS: tuple[Callable[[int], tuple[str, ...]], ...] = (
    lambda i: ("--args", f"[{i}]"),
    lambda i: ("--kwargs", json.dumps({"by": i})),
    lambda i: ("--tag", f"by-{i}"),
    lambda i: ("--option", f"priority={i}"),
)
#: Processes 0-11 change the shared jobs, 12-15 add the duplicated names, 16-19 fight over the contested jobs.
FIRST_DUPLICATE = SHARED * len(SHARED_FIELDS)
FIRST_CONTESTANT = FIRST_DUPLICATE + 2 * DUPLICATED


def operator_script(i: int) -> list[tuple[str, ...]]:
    """What CLI process ``i`` runs, one command after the other: first its part in a race with other
    processes (all 20 start together), then it adds its own job and re-times it (or removes it,
    one process in three).

    The shared jobs have timing strings, parsed by every update of them; the other jobs' schedules
    are numbers of seconds, which spare 40 of the 60 processes building the timing parser (a third
    of a CPU second each on a machine of two cores).
    """
    if i < FIRST_DUPLICATE:
        race = ("update", f"shared-{i % SHARED}", *SHARED_FIELDS[i // SHARED](i))
    elif i < FIRST_CONTESTANT:
        group = (i - FIRST_DUPLICATE) // 2
        race = ("add", f"dup-{group}", "--task", "e2e.ok", "--schedule", "2", "--args", f"[{i}]")
    elif i % 2 == 0:
        race = ("update", f"contested-{(i - FIRST_CONTESTANT) // 2}", "--kwargs", json.dumps({"by": i}))
    else:
        race = ("remove", f"contested-{(i - FIRST_CONTESTANT) // 2}")
    own = f"own-{i}"
    change = ("remove", own) if i % 3 == 2 else ("update", own, "--schedule", "3", "--tag", "retimed")
    return [race, ("add", own, "--task", "e2e.ok", "--schedule", "2", "--args", f"[{i}]"), change]


def test_twenty_cli_processes_in_parallel_lose_no_update_and_send_no_fire_twice(
    make_project: Callable[[str], Project],
) -> None:
    project = make_project("parallel")
    store = project.store
    store.migrate()
    add_jobs(
        store,
        [JobSpec(f"shared-{k}", "e2e.ok", "every 2 seconds") for k in range(SHARED)]
        + [JobSpec(f"contested-{k}", "e2e.ok", "every 2 seconds") for k in range(CONTESTED)],
    )
    anchors = {record.name: record.anchor for record in store.all_jobs()}
    worker, beat = project.worker(), project.beat()
    project.wait_until_ready(worker)
    project.wait_until_active(beat)
    project.wait_for("beat to send the shared jobs", lambda: all(project.sent(f"shared-{k}") for k in range(SHARED)))

    results: dict[int, list[Command]] = {}
    start = threading.Barrier(PROCESSES)

    def operate(i: int) -> None:
        start.wait()
        results[i] = [project.orchestra(*arguments) for arguments in operator_script(i)]

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=PROCESSES) as pool:
        for outcome in [pool.submit(operate, i) for i in range(PROCESSES)]:
            outcome.result()
    took = time.monotonic() - began
    time.sleep(SETTLE)

    # -- every command did its job, or lost a race and said so in one line: no traceback
    commands = [command for i in range(PROCESSES) for command in results[i]]
    failed = [command for command in commands if command.returncode != 0]
    for command in commands:
        assert "Traceback" not in command.stdout + command.stderr, command.describe()
    for command in failed:
        verb, name = command.argv[:2]
        assert command.stdout == "" and command.stderr.count("\n") == 1, command.describe()
        if verb == "add":
            assert name.startswith("dup-"), command.describe()
            assert (command.returncode, command.stderr) == (
                1,
                f"Error: cannot add job at runtime: '{name}' is taken by a job added at runtime earlier; "
                "update it, or remove it first\n",
            )
        else:
            assert (verb, name.startswith("contested-")) == ("update", True), command.describe()
            assert (command.returncode, command.stderr) == (
                2,
                f"Error: job '{name}' was removed: add it again instead\n",
            )

    # -- the store holds what the last successful command of every process implies
    def succeeded(i: int, step: int) -> bool:
        return results[i][step].returncode == 0

    for i in range(PROCESSES):
        assert succeeded(i, 1) and succeeded(i, 2), "\n".join(command.describe() for command in results[i])
        job = get_job(store, f"own-{i}")
        expected = ("Removed", "every 2 seconds", ()) if i % 3 == 2 else ("Running", "every 3 seconds", ("retimed",))
        assert (job.state, job.schedule, job.tags) == expected, f"own-{i}"
        assert (job.owner, job.task, project.record(f"own-{i}").args) == ("runtime", "e2e.ok", (i,))
    for k in range(SHARED):
        record = project.record(f"shared-{k}")
        assert (record.args, record.kwargs, record.tags, record.options) == (
            (k,),
            {"by": k + SHARED},
            (f"by-{k + 2 * SHARED}",),
            {"priority": k + 3 * SHARED},
        ), f"an update of shared-{k} was lost"
        assert record.anchor == anchors[f"shared-{k}"], "a change of arguments re-anchored the job"
    for group in range(DUPLICATED):
        adders = [i for i in range(FIRST_DUPLICATE + 2 * group, FIRST_DUPLICATE + 2 * group + 2) if succeeded(i, 0)]
        assert len(adders) == 1, f"dup-{group} was added by processes {adders}"
        assert project.record(f"dup-{group}").args == (adders[0],)
    for group in range(CONTESTED):
        updater, remover = FIRST_CONTESTANT + 2 * group, FIRST_CONTESTANT + 2 * group + 1
        contested = project.record(f"contested-{group}")
        assert succeeded(remover, 0) and contested.removed
        assert contested.kwargs == ({"by": updater} if succeeded(updater, 0) else {})

    # -- no fire time was sent twice; the re-timed jobs follow their new timing
    assert project.stop(beat) == 0
    every_run = {record.name: project.ledger(record.name) for record in store.all_jobs()}
    for name, entries in every_run.items():
        assert all(entry.task_id == run_task_id(name, entry.fire_time) for entry in entries), name
    sent = Counter(entry.task_id for entries in every_run.values() for entry in entries if entry.confirmed)
    project.wait_for_worker(set(sent))
    ran = project.ran()
    assert [task_id for task_id, times in ran.items() if times > 1] == [], "a fire time was sent twice"
    assert set(ran) == set(sent)
    # The update's anchor is taken before its transaction, which may wait seconds for the write lock
    # here: fires due before beat could see the change may still be on the old timing.
    retimed = 0
    for i in range(PROCESSES):
        record = project.record(f"own-{i}")
        if not record.removed:
            seen_by = datetime.fromtimestamp(results[i][2].returned_at + SETTLE, UTC)
            late = [entry.fire_time for entry in every_run[f"own-{i}"] if entry.fire_time > seen_by]
            assert on_grid(late, record.anchor, 3), f"own-{i} was sent off its new timing: {late}"
            retimed += len(late)
    assert retimed > 0
    assert project.stop(worker) == 0
    assert "Traceback" not in project.log_of(beat)
    print(
        f"{PROCESSES} processes ran {len(commands)} commands in {took:.1f} s, {len(failed)} lost a race; "
        f"{len(sent)} runs sent, each run once"
    )
