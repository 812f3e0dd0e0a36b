"""Run the quickstart: a Celery worker with celery-orchestra's beat embedded, for a few seconds.

Everything is local: the broker is a folder and the store an SQLite file under ``var/``. The
worker's log shows each job being scheduled, sent and run; at the end the status table shows
what the store knows. Run it twice: one-offs that already ran do not run again, and interval jobs
keep their grid across the restart.

    python examples/quickstart/demo.py [--seconds 25] [--fresh]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=25.0, help="how long the worker runs (default 25)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier runs: delete var/ first")
    args = parser.parse_args(argv)

    var = Path(os.environ.get("QUICKSTART_VAR", HERE / "var"))
    if args.fresh and var.exists():
        shutil.rmtree(var)
    var.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, QUICKSTART_VAR=str(var), PYTHONUNBUFFERED="1")
    celery = [sys.executable, "-m", "celery", "-A", "proj"]

    worker = subprocess.Popen(
        [
            *celery,
            "worker",
            "-B",
            "--scheduler",
            "celery_orchestra.Scheduler",
            "-s",
            str(var / "celerybeat-schedule"),
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=HERE,
        env=env,
    )
    try:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    print("\n--- celery -A proj orchestra status ---", flush=True)
    status = subprocess.run(
        [*celery, "orchestra", "status", "-s", str(var / "celerybeat-schedule")], cwd=HERE, env=env, check=False
    )
    return status.returncode


if __name__ == "__main__":
    sys.exit(main())
