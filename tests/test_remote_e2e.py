"""End to end over real Redis: `celery control orchestra_pause|resume` against a running
`celery beat -S celery_orchestra.Scheduler`, with and without workers beside it.

Every process is a real `python -m celery ...` started in a temporary project folder and stopped by
the pid we started. Each job routes to its own queue, so what beat really *published* is the length
of that Redis list (no worker running), or what a worker really *ran* is the lines it appended to a
file (with a worker). Timings leave a second or two of slack on each side: beat ticks at least once
a second and applies a change on its next tick.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

SCHEDULER = "celery_orchestra.Scheduler"
START_DEADLINE = 45.0
STOP_DEADLINE = 30.0
#: Time for a change to reach beat and for a send already under way to land.
SETTLE = 2.0
#: Each test gets its own Redis database: its own queues and its own pidbox channels.
_DATABASES = itertools.count(1)

APP_TEMPLATE = """\
import os
from celery import Celery

here = os.path.dirname(os.path.abspath(__file__))
app = Celery("{module}", broker="{broker}")
app.conf.update(
    broker_connection_retry_on_startup=True,
    result_backend=None,
    result_expires=None,
    # A resume must not replay the runs missed while paused, even with the replay-everything policy.
    orchestra_catch_up="all",
    beat_schedule={{
        "tick": {{"task": "{module}.tick", "schedule": "every 1 second", "options": {{"queue": "q-tick"}}}},
        "other": {{"task": "{module}.other", "schedule": "every 1 second", "options": {{"queue": "q-other"}}}},
    }},
{extra})


def _ran(label):
    with open(os.path.join(here, "ran.txt"), "a") as ledger:
        ledger.write(label + "\\n")


@app.task
def tick():
    _ran("tick")


@app.task
def other():
    _ran("other")
"""


class Project:
    """A Celery project in a temporary folder on its own Redis database, and its processes."""

    def __init__(self, folder: Path, redis: RedisServer) -> None:
        self.folder = folder
        self.redis = redis
        self.database = next(_DATABASES) % 16
        self.broker = redis.url(self.database)
        self.schedule_file = folder / "celerybeat-schedule"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def write_app(self, module: str, extra: str = "") -> str:
        indented = "".join(f"    {line}\n" for line in extra.splitlines())
        (self.folder / f"{module}.py").write_text(
            APP_TEMPLATE.format(module=module, broker=self.broker, extra=indented)
        )
        return module

    def environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.folder), environment.get("PYTHONPATH")]))
        environment["PYTHONUNBUFFERED"] = "1"
        environment.pop("CELERY_BROKER_URL", None)
        return environment

    def start(self, module: str, *arguments: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"{len(self.logs) + 1:02d}-{arguments[0]}.log"
        self.logs.append(log)
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", module, *arguments, "-l", "info"],
                cwd=self.folder,
                env=self.environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def beat(self, module: str) -> subprocess.Popen[bytes]:
        return self.start(module, "beat", "-S", SCHEDULER, "-s", str(self.schedule_file))

    def worker(self, module: str, name: str, queues: str) -> subprocess.Popen[bytes]:
        return self.start(
            module,
            "worker",
            "-P",
            "solo",
            "-n",
            f"{name}@%h",
            "-Q",
            queues,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        )

    def celery(self, module: str, *arguments: str) -> subprocess.CompletedProcess[str]:
        """A one-shot `celery` command, as an operator would type it."""
        return subprocess.run(
            [sys.executable, "-m", "celery", "-A", module, *arguments],
            cwd=self.folder,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE)
            pytest.fail(f"pid {process.pid} did not stop within {STOP_DEADLINE} s:\n{self.all_logs()}")

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_DEADLINE)

    def all_logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for log in self.logs)

    # -- what happened

    def published(self, queue: str) -> int:
        """Messages waiting in a queue: with no worker, everything beat published to it."""
        return _redis_llen(self.redis.port, self.database, queue)

    def ran(self, label: str) -> int:
        ledger = self.folder / "ran.txt"
        if not ledger.exists():
            return 0
        return ledger.read_text().splitlines().count(label)

    def wait_for(self, what: str, condition: Callable[[], bool], deadline: float = START_DEADLINE) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if condition():
                return
            for process in self.processes:
                if process.poll() is not None and process.returncode not in (0, -signal.SIGTERM):
                    pytest.fail(
                        f"a process exited with {process.returncode} while waiting for {what}:\n{self.all_logs()}"
                    )
            time.sleep(0.2)
        pytest.fail(f"timed out after {deadline} s waiting for {what}:\n{self.all_logs()}")


def _redis_llen(port: int, database: int, key: str) -> int:
    """LLEN over a plain socket (RESP), so that the test needs no Redis client library."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        for command in ([b"SELECT", str(database).encode()], [b"LLEN", key.encode()]):
            request = b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in command)
            connection.sendall(request)
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += connection.recv(64)
            if reply.startswith(b"-"):
                raise RuntimeError(f"redis error: {reply!r}")
    return int(reply[1:].strip())


@pytest.fixture
def project(tmp_path: Path, redis: RedisServer) -> Iterator[Project]:
    folder = tmp_path / "project"
    folder.mkdir()
    created = Project(folder, redis)
    try:
        yield created
    finally:
        created.cleanup()


def beat_node() -> str:
    return f"orchestra@{socket.gethostname()}"


def control(project: Project, module: str, *arguments: str, destination: str | None = None) -> list[dict[str, Any]]:
    """`celery control --json ...`; the replies, by node. Retries while no node has answered yet."""
    options = ["--json", "-t", "3"]
    if destination:
        options += ["-d", destination]
    deadline = time.monotonic() + START_DEADLINE
    while True:
        result = project.celery(module, "control", *options, *arguments)
        if result.returncode == 0:
            replies: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
            return replies
        assert "No nodes replied" in result.stderr, f"{result.stdout}\n{result.stderr}\n{project.all_logs()}"
        if time.monotonic() > deadline:
            pytest.fail(f"no node answered {arguments} within {START_DEADLINE} s:\n{project.all_logs()}")
        time.sleep(1.0)


def reply_of(replies: list[dict[str, Any]], node: str) -> dict[str, Any]:
    found = [reply[node] for reply in replies if node in reply]
    assert len(found) == 1, replies
    answer: dict[str, Any] = found[0]
    return answer


def test_control_pauses_and_resumes_a_running_beat_and_the_pause_survives_a_restart(project: Project) -> None:
    module = project.write_app("beatonly")
    beat = project.beat(module)
    project.wait_for(
        "beat to send both jobs", lambda: project.published("q-tick") >= 2 and project.published("q-other") >= 2
    )

    replies = control(project, module, "orchestra_pause", "tick", destination=beat_node())
    assert reply_of(replies, beat_node()) == {"ok": "paused: tick"}
    time.sleep(SETTLE)
    paused_ticks, others = project.published("q-tick"), project.published("q-other")
    time.sleep(5)
    assert project.published("q-tick") == paused_ticks, "a paused job was still sent"
    assert project.published("q-other") >= others + 3, "the other job stopped too"

    # Resume: it runs again, and the ~7 fire times missed while paused are not replayed.
    replies = control(project, module, "orchestra_resume", "tick", destination=beat_node())
    assert reply_of(replies, beat_node()) == {"ok": "resumed: tick"}
    time.sleep(3)
    resumed = project.published("q-tick") - paused_ticks
    assert 1 <= resumed <= 5, f"{resumed} sends in the 3 s after a resume"

    # Paused again, beat restarted: still paused, while the other job runs on.
    replies = control(project, module, "orchestra_pause", "tick", destination=beat_node())
    assert reply_of(replies, beat_node()) == {"ok": "paused: tick"}
    time.sleep(SETTLE)
    project.stop(beat)
    paused_ticks, others = project.published("q-tick"), project.published("q-other")
    restarted = project.beat(module)
    project.wait_for("the restarted beat to send", lambda: project.published("q-other") >= others + 4)
    assert project.published("q-tick") == paused_ticks, "the pause did not survive a restart"
    status = project.celery(module, "orchestra", "status", "--json", "-s", str(project.schedule_file))
    assert status.returncode == 0, status.stderr
    payload = json.loads(status.stdout)
    states = {job["name"]: job["state"] for job in payload["jobs"]}
    assert states == {"tick": "Paused", "other": "Running"}
    assert payload["beat"]["active"]["pid"] == restarted.pid

    # The restarted beat answers remote control again.
    replies = control(project, module, "orchestra_resume", "tick", "nope", destination=beat_node())
    assert reply_of(replies, beat_node()) == {"error": "no such job: nope"}
    assert "Traceback" not in project.all_logs()


def test_workers_beside_beat_answer_without_errors(project: Project) -> None:
    database = project.folder / "orchestra.db"
    module = project.write_app("withdb", f'orchestra_database_url="sqlite:///{database.as_posix()}",')
    plain = project.write_app("nodb")
    project.worker(module, "runner", "q-tick,q-other")
    project.worker(plain, "bystander", "q-unused")
    project.beat(module)
    project.wait_for("the worker to run both jobs", lambda: project.ran("tick") >= 2 and project.ran("other") >= 2)
    host = socket.gethostname()
    runner, bystander = f"runner@{host}", f"bystander@{host}"

    replies = control(project, module, "orchestra_pause", "tick")
    nodes = {node for reply in replies for node in reply}
    assert {beat_node(), runner, bystander} <= nodes, replies
    assert all("error" not in answer for reply in replies for answer in reply.values()), replies
    # Beat and the worker with the database URL both applied it: one changed it, the other found it done.
    assert sorted([reply_of(replies, beat_node())["ok"], reply_of(replies, runner)["ok"]]) == [
        "already paused: tick",
        "paused: tick",
    ]
    assert "not applied by this worker" in reply_of(replies, bystander)["ok"]
    time.sleep(SETTLE + 1)
    ran_ticks, ran_others = project.ran("tick"), project.ran("other")
    time.sleep(5)
    assert project.ran("tick") == ran_ticks, "a paused job still ran"
    assert project.ran("other") >= ran_others + 3

    inspected = project.celery(module, "inspect", "--json", "-t", "3", "orchestra_jobs")
    assert inspected.returncode == 0, inspected.stderr
    jobs_by_node = json.loads(inspected.stdout.strip().splitlines()[-1])
    assert jobs_by_node[beat_node()]["jobs"]["tick"]["state"] == "Paused"
    assert jobs_by_node[runner]["jobs"]["other"]["state"] == "Running"
    assert "not listed by this worker" in jobs_by_node[bystander]["ok"]

    replies = control(project, module, "orchestra_resume_tags", "nosuchtag")
    assert reply_of(replies, beat_node()) == {"error": "no job has tag nosuchtag"}
    replies = control(project, module, "orchestra_resume", "tick")
    assert all("error" not in answer for reply in replies for answer in reply.values()), replies
    project.wait_for("the resumed job to run", lambda: project.ran("tick") >= ran_ticks + 2, deadline=15)

    logs = project.all_logs()
    assert "KeyError" not in logs
    assert "pidbox command error" not in logs
    assert "Traceback" not in logs
