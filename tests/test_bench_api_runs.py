"""The HTTP API benchmark runs and prints its table (a smoke test: it never asserts on speed)."""

from __future__ import annotations

import re

from benchmarks_quick import run_quick


def test_the_api_benchmark_prints_a_row_per_request() -> None:
    out = run_quick("bench_api.py")
    lines = out.splitlines()
    assert lines[0] == "celery-orchestra HTTP API benchmark"
    assert "200 jobs in SQLite, median of 2 rounds (ms)" in out
    for path in ("/api/jobs ", "/api/jobs?offset=100 ", "/api/jobs?state=Running ", "/api/tags ", "/metrics "):
        assert re.search(re.escape(path) + r"\s+\d+$", out, re.M), path
