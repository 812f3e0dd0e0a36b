"""How fast does the HTTP API answer with 10,000 jobs?

Run::

    python benchmarks/bench_api.py            # about half a minute on a 2-core VM
    python benchmarks/bench_api.py --quick    # a smoke run (used by tests/test_bench_api_runs.py)

Setup: an SQLite store with N runtime jobs (N = 10,000; half every 5 minutes, half daily, each
with two tags), the app ``celery orchestra serve`` builds (no token), called in this one process
(pinned to one CPU) through FastAPI's TestClient: the whole request, routing, the operator
function, the JSON and the response model's check, without a socket. The median of 7 rounds
after one warm-up.

Target: ``GET /api/jobs`` answers in <= 200 ms per page with 10,000 jobs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import machine, one_cpu
from celery_orchestra.ops.api import pause_jobs, resume_jobs
from celery_orchestra.ops.jobs_api import JobSpec, add_jobs
from celery_orchestra.store import JobStore

#: What is asked, and how it is labelled.
REQUESTS = (
    ("first page (100 jobs)", "/api/jobs"),
    ("last page (100 jobs)", "/api/jobs?offset={last}"),
    ("page of 1000 jobs", "/api/jobs?limit=1000"),
    ("tag filter, first page", "/api/jobs?tag=team3"),
    ("name filter, first page", "/api/jobs?q=job-09"),
    ("state filter, first page", "/api/jobs?state=Running"),
    ("one job", "/api/jobs/job-00042"),
    ("tags", "/api/tags"),
    ("metrics", "/metrics"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 jobs, 2 rounds: a smoke run")
    options = parser.parse_args()
    count, rounds = (200, 2) if options.quick else (10_000, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette's note about its test client's transport
        from fastapi.testclient import TestClient

    from celery_orchestra.web import create_app

    with one_cpu() as pinning, tempfile.TemporaryDirectory() as folder:
        store = JobStore(f"sqlite:///{Path(folder) / 'orchestra.db'}")
        store.migrate()
        specs = [
            JobSpec(
                f"job-{i:05d}",
                "proj.task",
                "every 5 minutes" if i % 2 else "every day at 03:00",
                tags=["odd" if i % 2 else "even", f"team{i % 10}"],
            )
            for i in range(count)
        ]
        add_jobs(store, specs)
        client = TestClient(create_app(store), base_url="http://127.0.0.1")
        print("celery-orchestra HTTP API benchmark")
        for line in machine(pinning, ["fastapi", "pydantic", "SQLAlchemy"]):
            print(line)
        print(f"\n{count:,} jobs in SQLite, median of {rounds} rounds (ms)")
        print(f"{'request':<28}{'path':<34}{'ms':>8}")
        for label, template in REQUESTS:
            path = template.format(last=max(count - 100, 0))
            assert client.get(path).status_code == 200, path
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200, path
            print(f"{label:<28}{path:<34}{statistics.median(times) * 1000:>8.0f}")
        # As on a live store: between two requests, 10 jobs were written (paused, then resumed).
        path = "/api/jobs?state=Running"
        times = []
        for index in range(rounds):
            names = [spec.name for spec in specs[index // 2 * 10 : index // 2 * 10 + 10]]
            (pause_jobs if index % 2 == 0 else resume_jobs)(store, names)
            start = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, path
        print(f"{'state filter, after writes':<28}{path:<34}{statistics.median(times) * 1000:>8.0f}")
        store.close()


if __name__ == "__main__":
    main()
