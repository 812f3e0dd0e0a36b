"""``benchmarks/bench_outcomes.py --quick`` runs and prints its table (never a statement about speed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_outcomes.py"
FIGURE = r"\s+[\d.]+ s"


def test_quick_benchmark_prints_its_table() -> None:
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
    assert "celery-orchestra outcomes benchmark  [--quick: smoke run, figures not meaningful]" in out
    assert re.search(r"CPU: .+; nproc \d+; ", out)
    backends = ["database \\(SQLite\\)"] + (["Redis"] if "Redis not measured" not in out else [])
    for backend in backends:
        for what in ("status, 300 jobs", "status --json, 300 jobs", "history -n 300"):
            assert re.search(rf"^{backend}\s+{re.escape(what)}{FIGURE}\s+<= 2 s: (met|NOT MET)$", out, re.M), what
        assert re.search(rf"^{backend}\s+the lookup alone, 300 task ids{FIGURE}$", out, re.M)
        assert re.search(rf"^{backend}\s+status through the CLI, 300 jobs{FIGURE}$", out, re.M)
        assert re.search(rf"^{backend}\s+status through the CLI, 300 jobs\s+cpu [\d.]+ s$", out, re.M)
    assert "Traceback" not in completed.stderr
