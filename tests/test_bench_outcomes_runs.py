"""``benchmarks/bench_outcomes.py --quick`` runs and prints its table (never a statement about speed)."""

from __future__ import annotations

import re

from benchmarks_quick import run_quick

FIGURE = r"\s+[\d.]+ s"


def test_quick_benchmark_prints_its_table() -> None:
    out = run_quick("bench_outcomes.py")
    assert "celery-orchestra outcomes benchmark  [--quick: smoke run, figures not meaningful]" in out
    assert re.search(r"CPU: .+; nproc \d+; ", out)
    backends = ["database \\(SQLite\\)"] + (["Redis"] if "Redis not measured" not in out else [])
    for backend in backends:
        for what in ("status, 300 jobs", "status --json, 300 jobs", "history -n 300"):
            assert re.search(rf"^{backend}\s+{re.escape(what)}{FIGURE}\s+<= 2 s: (met|NOT MET)$", out, re.M), what
        assert re.search(rf"^{backend}\s+the lookup alone, 300 task ids{FIGURE}$", out, re.M)
        assert re.search(rf"^{backend}\s+status through the CLI, 300 jobs{FIGURE}$", out, re.M)
        assert re.search(rf"^{backend}\s+status through the CLI, 300 jobs\s+cpu [\d.]+ s$", out, re.M)
