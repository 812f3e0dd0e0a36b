"""The HTTP API benchmark runs and prints its table (a smoke test: it never asserts on speed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_api.py"


def test_the_api_benchmark_prints_a_row_per_request() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "celery-orchestra HTTP API benchmark"
    assert "200 jobs in SQLite, median of 2 rounds (ms)" in result.stdout
    for path in ("/api/jobs ", "/api/jobs?offset=100 ", "/api/jobs?state=Running ", "/api/tags ", "/metrics "):
        assert re.search(re.escape(path) + r"\s+\d+$", result.stdout, re.M), path
