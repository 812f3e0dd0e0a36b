"""How fast are ``status`` and ``history`` with each run's outcome? 10,000 jobs, Redis and database backends.

Run::

    python benchmarks/bench_outcomes.py            # about a minute on a 2-core VM
    python benchmarks/bench_outcomes.py --quick    # a smoke run (used by tests/test_bench_outcomes_runs.py)

Setup: an SQLite store with N runtime jobs (N = 10,000), each with one run in the ledger, and one
more job with N runs; a result stored for every run (one in ten a FAILURE with its exception),
written straight into the result backend as a worker would leave it: a throwaway ``redis-server``
on 127.0.0.1 (from ``tests/servers.py``, when the binary exists) and Celery's database backend on
an SQLite file. Measured in this one process (pinned to one CPU; Redis runs on the others) with
``time.perf_counter``, the median of 3 rounds, everything the CLI does:

* **status**: ``list_jobs`` (every job, its newest run from the ledger, the outcomes in one batch)
  and the Rich table rendered at 250 columns, with the cyclic garbage collector paused as the CLI
  pauses it (``ops/bulk.py``);
* **status --json**: the same jobs as ``status_json``;
* **history -n N**: ``job_history`` of the job with N runs, outcomes included, and its table;
* **the lookup alone**: ``outcomes(app, N task ids)``;
* **status through the CLI**: ``python -m celery -A <app> orchestra status`` as a new process
  (``COLUMNS=250``, output to a pipe), start-up included: Python, Celery and its command line
  take about a second of it before the status starts.

Target: status and history with outcomes for 10,000 jobs in <= 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ledger import record_runs
from servers import find_binary, start_redis

from benchmarks.machine import machine, one_cpu
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.ops.api import job_history, list_jobs
from celery_orchestra.ops.bulk import collector_paused
from celery_orchestra.ops.liveness import beat_liveness
from celery_orchestra.ops.outcomes import outcomes
from celery_orchestra.ops.status import history_table, jobs_table, status_json
from celery_orchestra.store import JobStore, RunRecord

TARGET_SECONDS = 2.0
ROUNDS = 3
HOURLY = {"type": "interval", "seconds": 3600.0, "relative": False}
FIRST = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
BUSY = "busy-job"


def build_store(path: Path, jobs: int) -> tuple[JobStore, list[str], list[str]]:
    """``jobs`` jobs with one run each, and :data:`BUSY` with ``jobs`` runs; both lists of task ids."""
    store = JobStore(f"sqlite:///{path}")
    store.migrate()
    names = [f"job-{number:05d}" for number in range(jobs)]
    definitions = [JobDefinition(name, "proj.task", HOURLY, source="runtime") for name in [*names, BUSY]]
    store.add_jobs(definitions, now=FIRST)
    sent = FIRST + timedelta(seconds=1)
    singles = [RunRecord(name, FIRST, sent, f"{name}-run", None) for name in names]
    busy = [
        RunRecord(BUSY, FIRST + timedelta(hours=hour), sent + timedelta(hours=hour), f"busy-{hour}", None)
        for hour in range(jobs)
    ]
    record_runs(store, singles)
    record_runs(store, busy)
    return store, [run.task_id for run in singles], [run.task_id for run in busy]


def result_meta(app: Celery, task_id: str, number: int) -> dict[str, Any]:
    failed = number % 10 == 0
    result = app.backend.prepare_exception(ValueError(f"bad row {number}")) if failed else {"rows": number}
    done = FIRST + timedelta(seconds=5 + number % 60)
    return {
        "status": "FAILURE" if failed else "SUCCESS",
        "result": result,
        "traceback": None,
        "children": [],
        "date_done": done,
        "task_id": task_id,
    }


def fill_redis(app: Celery, task_ids: Sequence[str]) -> None:
    backend: Any = app.backend
    with backend.client.pipeline(transaction=False) as pipe:
        for number, task_id in enumerate(task_ids):
            meta = result_meta(app, task_id, number)
            meta["date_done"] = meta["date_done"].isoformat()
            pipe.set(backend.get_key_for_task(task_id), backend.encode(meta))
        pipe.execute()


def fill_database(app: Celery, task_ids: Sequence[str]) -> None:
    from sqlalchemy import insert

    backend: Any = app.backend
    table = backend.task_cls.__table__
    rows = []
    for number, task_id in enumerate(task_ids):
        meta = result_meta(app, task_id, number)
        rows.append(
            {
                "task_id": task_id,
                "status": meta["status"],
                "result": str(backend.encode(meta["result"])).encode(),
                "date_done": meta["date_done"].replace(tzinfo=None),
                "traceback": None,
            }
        )
    session = backend.ResultSession()
    try:
        session.execute(insert(table), rows)
        session.commit()
    finally:
        session.close()


def median_seconds(action: Callable[[], object]) -> tuple[float, float]:
    """The median elapsed seconds of :data:`ROUNDS` calls, and the median CPU seconds they took
    (this process's and its children's: the CLI runs as one): on a shared VM the elapsed time
    also holds the other tenants' turns, the CPU time does not."""
    times, used = [], []
    for _ in range(ROUNDS):
        cpu = cpu_seconds()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
        used.append(cpu_seconds() - cpu)
    return statistics.median(times), statistics.median(used)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cli_status(folder: Path, module: str, store_url: str, backend_url: str) -> Callable[[], None]:
    """``celery orchestra status`` in a new process, on the app ``module`` written into ``folder``."""
    (folder / f"{module}.py").write_text(
        "from celery import Celery\n"
        f"app = Celery('bench', result_backend={backend_url!r}, set_as_current=False)\n"
        f"app.conf.orchestra_database_url = {store_url!r}\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": os.pathsep.join([root, str(folder)])}
    command = [sys.executable, "-m", "celery", "-A", module, "orchestra", "status"]

    def status() -> None:
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "FAILURE" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]

    return status


def measure(
    store: JobStore, app: Celery, task_ids: Sequence[str], jobs: int, cli: Callable[[], None]
) -> list[tuple[str, tuple[float, float]]]:
    console = Console(file=io.StringIO(), width=250, no_color=True)
    now = datetime.now(UTC)

    # As the CLI does them: with the cyclic garbage collector paused (see ops/bulk.py).
    def status() -> None:
        with collector_paused():
            shown = list_jobs(store, app=app, now=now)
            assert sum(1 for job in shown if job.last_run and job.last_run.outcome.state == "FAILURE") >= jobs // 10
            console.print(jobs_table(shown, now=now, width=250))

    def status_as_json() -> None:
        with collector_paused():
            status_json(list_jobs(store, app=app, now=now), beat_liveness(store))

    def history() -> None:
        with collector_paused():
            runs = job_history(store, BUSY, jobs, app=app)
            assert len(runs) == jobs and runs[-1].outcome is not None and runs[-1].outcome.state != "unknown"
            console.print(history_table(runs, width=250))

    return [
        (f"status, {jobs:,} jobs", median_seconds(status)),
        (f"status --json, {jobs:,} jobs", median_seconds(status_as_json)),
        (f"history -n {jobs:,}", median_seconds(history)),
        (f"the lookup alone, {jobs:,} task ids", median_seconds(lambda: outcomes(app, task_ids))),
        (f"status through the CLI, {jobs:,} jobs", median_seconds(cli)),
    ]


@contextlib.contextmanager
def redis_url() -> Iterator[str | None]:
    binary = find_binary("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server")
    if binary is None:
        yield None
        return
    server = start_redis(binary)
    try:
        yield server.url(0)
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds; figures not meaningful)")
    args = parser.parse_args(argv)
    jobs = 300 if args.quick else 10_000
    logging.getLogger("celery_orchestra").setLevel(logging.WARNING)
    rows: list[tuple[str, str, tuple[float, float]]] = []
    # Redis (if any) is started before pinning, so that it does not inherit this process's CPU.
    with redis_url() as redis, one_cpu(last=True) as pinning, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        store, single_ids, busy_ids = build_store(work / "store.db", jobs)
        backends = [("database (SQLite)", f"db+sqlite:///{work}/results.db", fill_database)]
        if redis is not None:
            backends.insert(0, ("Redis", redis, fill_redis))
        try:
            for number, (label, url, fill) in enumerate(backends):
                app = Celery("bench", result_backend=url)
                fill(app, [*single_ids, *busy_ids])
                cli = cli_status(work, f"bench_outcomes_app_{number}", f"sqlite:///{work / 'store.db'}", url)
                rows.extend((label, what, seconds) for what, seconds in measure(store, app, single_ids, jobs, cli))
        finally:
            store.close()
    print(
        "celery-orchestra outcomes benchmark" + ("  [--quick: smoke run, figures not meaningful]" if args.quick else "")
    )
    for line in machine(pinning, ["celery", "kombu", "redis", "SQLAlchemy"]):
        print(line)
    print(f"\n{'backend':<20}{'what':<36}{'median of 3':>12}  target")
    for label, what, (seconds, _) in rows:
        verdict = (
            ""
            if what.startswith(("the lookup", "status through the CLI"))
            else (f"<= {TARGET_SECONDS:g} s: {'met' if seconds <= TARGET_SECONDS else 'NOT MET'}")
        )
        print(f"{label:<20}{what:<36}{seconds:>10.3f} s  {verdict}".rstrip())
    print("\nCPU seconds of the same rounds (median; the CLI's are its process's)")
    for label, what, (_, cpu) in rows:
        print(f"{label:<20}{what:<36}   cpu {cpu:.3f} s")
    if redis is None:
        print("(no redis-server found: Redis not measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
