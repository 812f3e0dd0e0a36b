"""What both benchmarks print about the machine, and how they pin themselves to one CPU."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator, Sequence
from importlib import metadata


def cpu_model() -> str:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return model


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def machine(pinning: str, packages: Sequence[str], extra: str = "") -> list[str]:
    """Three lines: CPU and pinning, Python and OS, the versions of ``packages`` (and ``extra``)."""
    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    return [
        f"CPU: {cpu_model()}; nproc {os.cpu_count()}; {pinning}",
        f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}",
        f"{versions}{extra}, celery-orchestra {version('celery-orchestra')}",
    ]


@contextlib.contextmanager
def one_cpu(*, last: bool = False) -> Iterator[str]:
    """Pin this process to one CPU while the block runs (restored afterwards); yields a description.

    ``last`` picks the highest-numbered CPU, leaving the others to a server the benchmark runs.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield "single process (no CPU pinning on this OS)"
        return
    original = os.sched_getaffinity(0)
    cpu = max(original) if last else min(original)
    os.sched_setaffinity(0, {cpu})
    try:
        yield f"single process pinned to CPU {cpu}"
    finally:
        os.sched_setaffinity(0, original)
