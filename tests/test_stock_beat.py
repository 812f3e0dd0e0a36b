"""A Timing in ``beat_schedule`` works under *stock* ``celery beat`` (PersistentScheduler).

A real ``celery -A tinybeat beat`` subprocess runs with the ``filesystem://`` broker (plain files in
``tmp_path``, no server, no network) and its shelve schedule file in ``tmp_path``. We let it run for
about six seconds after its first send, stop it with SIGTERM, then count the messages it published and
read the Timing back out of the shelve file.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import pickle
import shelve
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from celery_orchestra import Timing, timing

APP_MODULE = '''\
"""A tiny Celery app for the stock-beat test (written by tests/test_stock_beat.py)."""

from datetime import datetime

from celery import Celery

from celery_orchestra import timing

BASE = {base!r}
ANCHOR = datetime.fromisoformat({anchor!r})

app = Celery("tinybeat", broker="filesystem://", set_as_current=True)
app.conf.update(
    broker_transport_options={{
        "data_folder_in": BASE + "/broker/out",
        "data_folder_out": BASE + "/broker/out",
        "processed_folder": BASE + "/broker/processed",
        "control_folder": BASE + "/broker/control",
    }},
    timezone="Europe/Berlin",
    beat_schedule={{
        "tick": {{
            "task": "tinybeat.tick",
            "schedule": timing("every 1 second", "Europe/Berlin", anchor=ANCHOR),
        }},
    }},
)


@app.task(name="tinybeat.tick")
def tick() -> None:
    return None
'''

RUN_AFTER_FIRST_SEND = 6.0


def messages_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.msg"), key=lambda path: int(path.name.split("_", 1)[0]))


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_timing_runs_under_stock_celery_beat(tmp_path: Path) -> None:
    for folder in ("broker/out", "broker/processed", "broker/control"):
        (tmp_path / folder).mkdir(parents=True)
    anchor = datetime.now(UTC).replace(microsecond=0)
    (tmp_path / "tinybeat.py").write_text(APP_MODULE.format(base=str(tmp_path), anchor=anchor.isoformat()))
    schedule_file = tmp_path / "celerybeat-schedule"
    log_file = tmp_path / "beat.log"

    env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH", "")]))
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tinybeat",
        "beat",
        "--schedule",
        str(schedule_file),
        "--loglevel",
        "INFO",
        "--logfile",
        str(log_file),
        "--pidfile",
        str(tmp_path / "beat.pid"),
    ]
    out_folder = tmp_path / "broker" / "out"
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not messages_in(out_folder):
            assert process.poll() is None, f"beat exited early:\n{_output(process, log_file)}"
            assert time.monotonic() < deadline, f"beat sent nothing in 20 s:\n{_output(process, log_file)}"
            time.sleep(0.05)
        time.sleep(RUN_AFTER_FIRST_SEND)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log = _output(process, log_file)

    # -- what beat published: one message per second, no bursts, no duplicates
    messages = messages_in(out_folder)
    # fires at first+1 s ... first+6 s, plus the first one
    assert 5 <= len(messages) <= 8, log
    for path in messages:
        message = json.loads(path.read_text())
        assert message["headers"]["task"] == "tinybeat.tick"
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert (args, kwargs) == ([], {})
    ids = {json.loads(path.read_text())["headers"]["id"] for path in messages}
    assert len(ids) == len(messages)
    # the file names start with the sender's monotonic clock in milliseconds
    sent_ms = [int(path.name.split("_", 1)[0]) for path in messages]
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent_ms)]
    assert 900 <= statistics.median(gaps) <= 1100, gaps
    assert min(gaps) >= 500, gaps
    assert log.count("Sending due task tick (tinybeat.tick)") == len(messages), log

    # -- what beat stored: the shelve holds the very same Timing, pickled and read back
    with shelve.open(str(schedule_file), flag="r") as stored:
        entry = stored["entries"]["tick"]
        assert stored["tz"] == "Europe/Berlin"
    schedule = entry.schedule
    assert isinstance(schedule, Timing)
    assert schedule == timing("every 1 second", "Europe/Berlin", anchor=anchor)
    assert schedule.anchor == anchor
    assert str(schedule) == "every 1 second"
    assert schedule.kind == "cyclic"
    # beat counts a run in reserve(), before publishing: SIGTERM may land between the two
    assert entry.total_run_count in (len(messages), len(messages) + 1), log
    assert entry.last_run_at is not None
    # the drift-free grid: the last run was (nearly) on anchor + k seconds
    last_run = entry.last_run_at.astimezone(UTC)
    offset = (last_run - anchor).total_seconds() % 1
    assert offset < 0.5, (last_run, anchor)
    # the stored pickle is compact: the Timing does not drag the Celery app along
    assert len(pickle.dumps(schedule)) < 400
    assert pickle.loads(pickle.dumps(schedule)) == schedule


def _output(process: subprocess.Popen[bytes], log_file: Path) -> str:
    console = ""
    if process.poll() is not None and process.stdout is not None:
        console = process.stdout.read().decode(errors="replace")
    log = log_file.read_text(errors="replace") if log_file.exists() else ""
    return f"--- console ---\n{console}\n--- log ---\n{log}"


# ------------------------------------------------------------------ our configuration under stock beat

STRING_SCHEDULE_APP = '''\
"""An app whose beat_schedule only celery-orchestra understands (written by tests/test_stock_beat.py)."""

from celery import Celery

app = Celery("stringbeat", broker="memory://", set_as_current=True)
app.conf.update(beat_schedule={"tick": {"task": "stringbeat.tick", "schedule": "every 1 second"}})
'''

NEEDS_OUR_SCHEDULER = (
    "celery-orchestra: this configuration needs celery-orchestra's scheduler "
    "(job 'tick' has a timing string as its schedule): "
)


def _run_celery(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "stringbeat.py").write_text(STRING_SCHEDULE_APP)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "celery", "-A", "stringbeat", *arguments]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_stock_beat_with_our_configuration_says_what_to_do_in_one_line(tmp_path: Path) -> None:
    done = _run_celery(tmp_path, "beat", "--schedule", str(tmp_path / "celerybeat-schedule"))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    lines = [line for line in done.stderr.splitlines() if "celery-orchestra" in line]
    assert lines == [NEEDS_OUR_SCHEDULER + "start beat with `-S celery_orchestra.Scheduler` (or set `beat_scheduler`)"]
    assert "has no attribute 'app'" not in output
    assert "Traceback" not in output
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith("__")) == ["stringbeat.py"]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_worker_with_embedded_stock_beat_and_our_configuration_exits(tmp_path: Path) -> None:
    # `-S` of `celery worker` is its state file: the mix-up that left celery_orchestra.Scheduler.dat behind.
    done = _run_celery(tmp_path, "worker", "-B", "-S", "celery_orchestra.Scheduler", "--pool", "solo")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    lines = [line for line in done.stderr.splitlines() if "celery-orchestra" in line]
    assert lines == [
        NEEDS_OUR_SCHEDULER + "start the worker's beat with `--scheduler celery_orchestra.Scheduler` "
        "(or set `beat_scheduler`) (`-S` of `celery worker` names its state file; the scheduler is `--scheduler`)"
    ]
    assert "Traceback" not in output
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith("__")) == ["stringbeat.py"]
