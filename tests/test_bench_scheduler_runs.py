"""``benchmarks/bench_scheduler.py --quick`` runs and prints its table (never a statement about speed)."""

from __future__ import annotations

import re

import pytest
from benchmarks_quick import run_quick

#: Every row of the table: a label and at least one measured figure with its unit.
ROWS = [
    r"idle tick, 2,000 jobs, nothing due \(median\)\s+[\d,.]+ us\s+[\d,.]+ us\s+[\d,.]+x (faster|slower)",
    r"between polls \(heap peek only\)\s+[\d,.]+ us",
    r"stock: first tick \(builds its heap\)\s+[\d,.]+ s",
    r"burst: 200 due at once, until all sent \(1 round\)\s+[\d,.]+ s\s+[\d.]+x send_task",
    r"baseline: 200 x app\.send_task\s+[\d,.]+ s\s+ratio per round: [\d.]+x",
    r"burst: 50 due at once \(context\)\s+[\d,.]+ s\s+[\d,.]+ s\s+[\d,.]+x (faster|slower)\s+send_task x 50: [\d,.]+ s",
    r"start-up, 2,000 jobs, empty SQLite store \(1 round\)\s+[\d,.]+ s\s+[\d,.]+ s\s+[\d.]+x stock\s+<= 1\.5x: .*"
    r"per round: [\d.]+x",
    r"restart, 2,000 jobs, unchanged store \(1 round\)\s+[\d,.]+ s\s+[\d,.]+ s\s+[\d.]+x stock\s+<= 1\.0x: .*"
    r"per round: [\d.]+x",
    r"ticks after the cold start, each polling the store \([\d,]+ ticks, 1 round\)\s+max [\d,.]+ ms\s+<= 5 ms: .*"
    r"p99 [\d,.]+ ms.*max per round: [\d.]+ ms",
    r"control: 1 ms of spinning at the same cadence \(this machine's stalls\)\s+max [\d,.]+ ms\s+p99 [\d,.]+ ms",
    r"memory retained per job \(tracemalloc\)\s+[\d,.]+ KiB\s+[\d,.]+ KiB\s+[\d.]+x stock\s+<= 1\.5 KiB: ",
    r"once every job's entry is built\s+[\d,.]+ KiB\s+[\d.]+x stock\s+entries are built when first used",
]


@pytest.mark.parametrize("transport", ["memory", "auto"])
def test_quick_benchmark_prints_its_table(transport: str) -> None:
    out = run_quick("bench_scheduler.py", "--transport", transport)
    assert "celery-orchestra scheduler benchmark  [--quick: smoke run, figures not meaningful]" in out
    assert re.search(r"CPU: .+; nproc \d+; ", out)
    assert re.search(r"Python \d+\.\d+\.\d+ ", out)
    assert re.search(r"celery \d+\.\d+\.\d+, kombu \d+\.\d+\.\d+", out)
    for row in ROWS:
        assert re.search(row, out), f"no row matching {row!r} in:\n{out}"
    if transport == "memory":
        assert "transport for the bursts: memory:// (in-process kombu transport)" in out
    else:
        assert re.search(r"transport for the bursts: (redis \d|memory://)", out)
