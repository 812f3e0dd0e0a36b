"""The quickstart in examples/ runs, as the README's demo command runs it, and keeps its promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"


def run_demo(var: Path, seconds: float) -> str:
    env = dict(os.environ, QUICKSTART_VAR=str(var))
    result = subprocess.run(
        [sys.executable, str(QUICKSTART / "demo.py"), "--seconds", str(seconds)],
        cwd=QUICKSTART,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.mark.slow
def test_the_demo_runs_jobs_and_a_restart_does_not_repeat_the_one_off(tmp_path: Path) -> None:
    first = run_demo(tmp_path, 9)
    # The worker ran what embedded beat sent: the one-off after 5 s and the 2-second heartbeat.
    assert "say: hello, once" in first
    assert first.count("Task proj.heartbeat[") >= 6  # received + succeeded, at least 3 runs
    assert "job task_2023_04_01_09_13 is expired" in first
    # The status table at the end.
    assert "orchestra status" in first
    for state in ("Running", "Done", "Disabled", "Expired"):
        assert state in first
    assert "29 jobs in sqlite:///" in first
    # The first hour's noise is gone: kombu's hostname warning, alembic's narration.
    assert "No hostname was supplied" not in first
    assert "alembic" not in first
    assert "Context impl" not in first

    second = run_demo(tmp_path, 4)
    assert "say: hello, once" not in second  # a one-off that ran never runs again
    assert "job hello-once (proj.say) is Done; it will not be sent" in second


def test_the_quickstart_schedule_passes_check(tmp_path: Path) -> None:
    env = dict(os.environ, QUICKSTART_VAR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "proj", "orchestra", "check"],
        cwd=QUICKSTART,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 28 jobs (4 in beat_schedule, 24 in" in result.stdout
    assert result.stderr == ""  # every task the schedule names is registered
