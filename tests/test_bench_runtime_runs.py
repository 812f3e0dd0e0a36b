"""``benchmarks/bench_runtime.py --quick`` runs a real beat, adds jobs that it sends, and prints its
table and JSON line (never a statement about speed)."""

from __future__ import annotations

import json
import re

import pytest
from benchmarks_quick import run_quick

FIGURE = r"\s+\d+\.\d{3} s"


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["filesystem", "auto"])
def test_quick_benchmark_sends_every_added_job_and_prints_its_table(transport: str) -> None:
    out = run_quick("bench_runtime.py", "--transport", transport)
    assert "celery-orchestra runtime benchmark  [--quick: smoke run, figures not meaningful]" in out
    assert re.search(r"CPU: .+; nproc \d+; ", out)
    if transport == "filesystem":
        assert "transport for add -> first send: filesystem (kombu's message files)" in out
    else:
        assert re.search(r"transport for add -> first send: (redis|filesystem) ", out)
    for what in ("p50", "p99", "max"):
        verdict = r"\s+<= 1\.5 s: (met|NOT MET)" if what == "p99" else ""
        assert re.search(rf"^add -> first send, 5 adds: {what}{FIGURE}{verdict}$", out, re.M), what
    assert re.search(rf"^add_job itself \(median\){FIGURE}$", out, re.M)
    databases = ["SQLite"] + (["PostgreSQL"] if "measured on SQLite only" not in out else [])
    for database in databases:
        assert re.search(rf"^add_jobs, 300 jobs, {database} \(1 round\){FIGURE}\s+<= 10 s: (met|NOT MET)$", out, re.M)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["adds"] == 5 and report["bulk_jobs"] == 300 and report["quick"] is True
    assert report["not_sent"] == 0, "every job added while beat runs is sent"
    assert report["add_to_send_p50_s"] <= report["add_to_send_p99_s"] <= report["add_to_send_max_s"]
    assert report["add_jobs_sqlite_s"] > 0
