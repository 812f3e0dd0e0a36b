"""The Celery app the fault-injection beats run: ``celery -A tests.faults.app beat -S ...``.

Everything comes from environment variables set by the harness (:mod:`tests.faults.harness`):

* ``FAULTS_BROKER_URL``: the broker (a Redis URL, usually through the beat's own proxy port);
* ``FAULTS_STORE_URL``: ``orchestra_database_url`` (SQLite file or PostgreSQL, maybe proxied);
* ``FAULTS_JOBS``: JSON ``{"job name": "timing expression"}``; each job's task is ``faults.<job>``;
* ``FAULTS_LEASE_TTL``: ``orchestra_lease_ttl`` (seconds; ignored by a scheduler without a lease);
* ``FAULTS_CLOCK_FILE``: a file holding a number of seconds that :class:`ClockScheduler` adds to
  its wall clock (the wall-clock-jump scenario; the machine's clock is never touched).

No task is registered: beat sends by name and nobody consumes the queue but the harness's
collector. A ``before_task_publish`` handler stamps each message with the publishing process's pid
and the real time just before the publish (headers ``faults_pid``, ``faults_published_at``, and
``faults_clock_at``: the beat's shifted clock, equal to real time unless the clock is shifted), so
the harness measures send lag without its polling delay and knows which beat sent what.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

from celery_orchestra import Scheduler

app = Celery("faults")
app.conf.broker_url = os.environ.get("FAULTS_BROKER_URL", "redis://127.0.0.1:6379/0")
app.conf.result_backend = None
app.conf.result_expires = None
app.conf.timezone = "UTC"
app.conf.enable_utc = True
app.conf.orchestra_database_url = os.environ.get("FAULTS_STORE_URL")
app.conf.orchestra_catch_up = "all"
# High enough that no run the harness expects is dropped by the limit (outages here are < 2 min).
app.conf.orchestra_catch_up_limit = 10_000
app.conf.orchestra_lease_ttl = float(os.environ.get("FAULTS_LEASE_TTL", "10"))
app.conf.beat_schedule = {
    name: {"task": f"faults.{name}", "schedule": timing}
    for name, timing in json.loads(os.environ.get("FAULTS_JOBS", "{}")).items()
}


@before_task_publish.connect  # type: ignore[untyped-decorator]
def _stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers["faults_pid"] = os.getpid()
        headers["faults_published_at"] = time.time()
        headers["faults_clock_at"] = shifted_time()


_CLOCK_FILE = os.environ.get("FAULTS_CLOCK_FILE")
_offset_cache: list[float] = [0.0, -1.0]  # offset, monotonic time it was read


def _offset() -> float:
    """The clock offset from ``FAULTS_CLOCK_FILE``, re-read at most every 20 ms."""
    if not _CLOCK_FILE:
        return 0.0
    now = time.monotonic()
    if now - _offset_cache[1] >= 0.02:
        try:
            with open(_CLOCK_FILE) as handle:
                _offset_cache[0] = float(handle.read().strip() or 0)
        except (OSError, ValueError):
            pass
        _offset_cache[1] = now
    return _offset_cache[0]


def shifted_time() -> float:
    """The machine's wall clock plus the harness's offset."""
    return time.time() + _offset()


class ClockScheduler(Scheduler):
    """``celery_orchestra.Scheduler`` whose wall clock is shifted by the harness's offset file."""

    wall_time = staticmethod(shifted_time)
