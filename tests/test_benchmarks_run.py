"""The timing benchmark runs and prints its tables (a smoke test: it never asserts on speed)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_timing.py"
KINDS = ["cyclic", "minutely", "hourly", "daily", "weekly", "once"]
PARSE_ROWS = [
    "parse_expression_uncached (no cache)",
    "timing() (parse cache hit + Timing)",
    "crontab.from_string (stock Celery)",
]
RATE = r"([\d,]+)"
RATIO = r"(\d+\.\d\d)x"


def load_benchmark() -> ModuleType:
    """Import benchmarks/bench_timing.py by path (``benchmarks`` is not a package on sys.path)."""
    name = "bench_timing_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def rate(text: str) -> int:
    return int(text.replace(",", ""))


def check_report(output: str) -> None:
    lines = output.splitlines()
    assert lines[0] == "celery-orchestra timing benchmark"
    assert re.search(r"CPU: .+; nproc \d+; ", output)
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}." in output
    assert "Parsing (27 expressions, round robin)" in output
    assert re.search(r"operation\s+per second\s+crontab\(\.\.\.\) per second\s+ratio", output)
    assert "Evaluation (1,024 different instants, round robin)" in output
    assert re.search(
        r"kind\s+expression\s+next_fire_after/s\s+remaining_estimate/s\s+crontab remaining_estimate/s\s+ratio", output
    )

    for label in PARSE_ROWS:
        match = re.search(re.escape(label) + rf"\s+{RATE}\s+{RATE}\s+{RATIO}", output)
        assert match, label
        ours, baseline, ratio = rate(match[1]), rate(match[2]), float(match[3])
        assert ours > 0
        assert baseline > 0
        assert ratio > 0
        assert ratio == pytest.approx(ours / baseline, abs=0.01, rel=0.01)

    for kind in KINDS:
        match = re.search(rf"^  {kind}\s+.+?\s{{2,}}{RATE}\s+{RATE}\s+{RATE}\s+{RATIO}\s+vs crontab\(", output, re.M)
        assert match, kind
        ours, estimate, baseline, ratio = rate(match[1]), rate(match[2]), rate(match[3]), float(match[4])
        assert min(ours, estimate, baseline) > 0
        assert ratio == pytest.approx(ours / baseline, abs=0.01, rel=0.01)


def test_main_quick_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert bench.main(["--quick"]) == 0
    check_report(capsys.readouterr().out)
    # the benchmark pins itself to one CPU only while it runs
    if affinity is not None:
        assert os.sched_getaffinity(0) == affinity


def test_measure_reports_operations_per_second() -> None:
    bench = load_benchmark()
    calls: list[int] = []
    result = bench.measure(calls.append, bench.Settings(rounds=3, min_time=0.0))
    assert result > 0
    # calibration call plus three timed rounds, all of the same size
    assert len(calls) == 4
    assert len(set(calls)) == 1


def test_the_command_line_runs() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    check_report(completed.stdout)
