"""One way to run a benchmark's ``--quick`` smoke run for the tests that check its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_quick(script: str, *arguments: str, timeout: float = 300) -> str:
    """``benchmarks/<script> --quick <arguments>`` in a new interpreter: its output, once it exited
    0 without a traceback (the figures of a smoke run mean nothing; only the table's shape is checked)."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed.stdout
