"""``benchmarks/bench_dashboard.py --quick`` runs and prints its table (never a statement about speed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser import require_chromium

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_dashboard.py"
FIGURE = r"\s+[\d.]+ s"

pytestmark = pytest.mark.slow


def test_quick_benchmark_prints_its_table() -> None:
    require_chromium()
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "celery-orchestra dashboard benchmark  [--quick: smoke run, figures not meaningful]" in out
    assert re.search(r"CPU: .+; nproc \d+; not pinned", out)
    assert re.search(r", Chromium \d+\.", out)
    assert re.search(r"^store: 301 jobs in SQLite, .+; pages of 100 jobs$", out, re.M)
    first_page = rf"^first page of 301 jobs on screen \(2 loads\){FIGURE}{FIGURE}  <= 1 s: (met|NOT MET)$"
    assert re.search(first_page, out, re.M)
    for part in ("the page and its scripts loaded", "GET /api/jobs, as the browser saw it", "the rows drawn"):
        assert re.search(rf"^  of which: {re.escape(part)}.*?{FIGURE}{FIGURE}$", out, re.M), part
    assert re.search(rf"^GET /api/jobs alone, one page of 100 \(from Python\){FIGURE}$", out, re.M)
    assert "Traceback" not in completed.stderr
