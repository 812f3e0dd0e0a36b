"""``benchmarks/bench_dashboard.py --quick`` runs and prints its table (never a statement about speed)."""

from __future__ import annotations

import re

import pytest
from benchmarks_quick import run_quick
from browser import require_chromium

FIGURE = r"\s+[\d.]+ s"

pytestmark = pytest.mark.slow


def test_quick_benchmark_prints_its_table() -> None:
    require_chromium()
    out = run_quick("bench_dashboard.py")
    assert "celery-orchestra dashboard benchmark  [--quick: smoke run, figures not meaningful]" in out
    assert re.search(r"CPU: .+; nproc \d+; not pinned", out)
    assert re.search(r", Chromium \d+\.", out)
    assert re.search(r"^store: 301 jobs in SQLite, .+; pages of 100 jobs$", out, re.M)
    first_page = rf"^first page of 301 jobs on screen \(2 loads\){FIGURE}{FIGURE}  <= 1 s: (met|NOT MET)$"
    assert re.search(first_page, out, re.M)
    for part in ("the page and its scripts loaded", "GET /api/jobs, as the browser saw it", "the rows drawn"):
        assert re.search(rf"^  of which: {re.escape(part)}.*?{FIGURE}{FIGURE}$", out, re.M), part
    assert re.search(rf"^GET /api/jobs alone, one page of 100 \(from Python\){FIGURE}$", out, re.M)
