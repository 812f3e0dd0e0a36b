"""Jobs added at runtime: how soon is an added job sent, and how fast is a bulk add of 10,000?

Run::

    python benchmarks/bench_runtime.py            # about 5 minutes on a 2-core VM
    python benchmarks/bench_runtime.py --quick    # a smoke run (used by tests/test_bench_runtime_runs.py)

* **add -> first send**: a real ``celery beat -S celery_orchestra.Scheduler`` process (SQLite
  store, default ``orchestra_poll_interval`` of 1 s) runs while this process adds jobs one at a
  time with ``add_job(app, ..., schedule="once in 0.01 seconds")``: due at once, so what is
  measured is how soon beat notices and sends a new job. Each add starts at a random moment of
  beat's poll cycle (a random pause of up to one poll interval first), and waits for its message
  before the next. The send moment is when the message reaches the broker: popped from a
  throwaway ``redis-server`` on 127.0.0.1 (``BLPOP``, from ``tests/servers.py``) or, without one,
  the modification time of the message file of kombu's filesystem transport. The figure is that
  moment minus the moment ``add_job`` returned, both read from this machine's one wall clock;
  p50, p99 and max over N adds (N = 200). Target: p99 <= 1.5 s.
* **add_jobs, 10,000 jobs**: ``add_jobs(app, specs)`` with 10,000 ``JobSpec`` values (four
  schedule forms, kwargs, a tag) into an empty, migrated store: SQLite, and PostgreSQL when a
  server binary is found (a throwaway cluster on 127.0.0.1). Everything the call does is timed:
  checking every spec, opening the store, the one transaction, and the returned statuses; the
  median of 3 rounds, a new store each round, in this process pinned to one CPU (the database
  server runs on the others). Target: <= 10 s.

Prints a table like the other benchmarks, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from servers import find_binary, find_postgres_bin_dir, start_postgres, start_redis

from benchmarks.machine import machine, one_cpu
from celery_orchestra import JobSpec, add_job, add_jobs
from celery_orchestra.ops.liveness import beat_liveness
from celery_orchestra.store import JobStore

ROOT = Path(__file__).resolve().parent.parent
SEND_TARGET_SECONDS = 1.5
BULK_TARGET_SECONDS = 10.0
ROUNDS = 3
TASK = "bench.noop"
#: Due at once: a one-off 10 ms after its anchor (the moment it is added).
DUE_AT_ONCE = "once in 0.01 seconds"
#: The schedules of the bulk add, in turn.
BULK_SCHEDULES = ("every 15 minutes", "every day at 9:15", "every Monday and Thursday at 9:00", "every hour at 05:00")
#: An add whose message has not come after this long counts as not sent.
SEND_TIMEOUT = 15.0
POLL_INTERVAL = 1.0


@dataclass(frozen=True)
class Sizes:
    adds: int
    bulk: int
    rounds: int


FULL = Sizes(adds=200, bulk=10_000, rounds=ROUNDS)
QUICK = Sizes(adds=5, bulk=300, rounds=1)


@dataclass
class SendFigures:
    """Seconds from ``add_job`` returning to the message at the broker, one per add that was sent."""

    transport: str
    latencies: list[float] = field(default_factory=list)
    add_seconds: list[float] = field(default_factory=list)
    missing: int = 0


# ---- the broker side: when did each message arrive? ----------------------------------------------


def job_number(message: dict[str, Any]) -> int | None:
    """The ``n`` kwarg of a Celery (protocol 2) message as kombu stores it, else ``None``."""
    try:
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        number = kwargs.get("n")
    except (KeyError, ValueError, TypeError):
        return None
    return number if isinstance(number, int) else None


class RedisArrivals:
    """Pops every message beat publishes to the ``celery`` queue on Redis, noting when it came."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.arrived: queue.Queue[tuple[int, float]] = queue.Queue()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._pop, name="arrivals", daemon=True)
        self.thread.start()

    def _pop(self) -> None:
        while not self.stopped.is_set():
            popped = self.client.blpop(["celery"], timeout=0.2)
            if popped is None:
                continue
            moment = time.time()
            number = job_number(json.loads(popped[1]))
            if number is not None:
                self.arrived.put((number, moment))

    def wait_for(self, number: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                found, moment = self.arrived.get(timeout=left)
            except queue.Empty:
                return None
            if found == number:
                return moment
        return None

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.client.close()


class FileArrivals:
    """The filesystem transport's message files: a message arrived when its file was written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: set[str] = set()

    def wait_for(self, number: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in self.folder.glob("*.msg"):
                if path.name in self.seen:
                    continue
                with contextlib.suppress(OSError, ValueError):
                    message = json.loads(path.read_text())
                    self.seen.add(path.name)
                    if job_number(message) == number:
                        return path.stat().st_mtime
            time.sleep(0.002)
        return None

    def close(self) -> None:
        pass


# ---- add -> first send ----------------------------------------------------------------------------


def app_module(folder: Path, broker: str, options: dict[str, Any], db_url: str) -> str:
    """Write the app beat runs (``benchruntime_app.py`` in ``folder``); return its module name."""
    source = f"""
        from celery import Celery

        app = Celery("benchruntime", broker={broker!r}, set_as_current=False)
        app.conf.update(
            broker_transport_options={options!r},
            orchestra_database_url={db_url!r},
            orchestra_remote_control=False,
            orchestra_poll_interval={POLL_INTERVAL!r},
            beat_schedule={{}},
            timezone="UTC",
        )
    """
    (folder / "benchruntime_app.py").write_text(textwrap.dedent(source))
    return "benchruntime_app"


@contextlib.contextmanager
def beat_process(folder: Path, module: str, store: JobStore) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery beat`` on ``module``'s app, until it is the active beat; stopped by its pid."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(folder), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "celery", "-A", module, "beat", "-S", "celery_orchestra.Scheduler"]
    command += ["-l", "warning", "-s", str(folder / "celerybeat-schedule")]
    with open(folder / "beat.log", "wb") as log:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while beat_liveness(store).active is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"beat did not become active; its log:\n{(folder / 'beat.log').read_text()[-4000:]}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def add_to_send(folder: Path, redis: str | None, adds: int) -> SendFigures:
    db_url = f"sqlite:///{folder / 'runtime.db'}"
    arrivals: RedisArrivals | FileArrivals
    if redis is not None:
        broker, options, transport = redis, {}, "redis (throwaway redis-server on 127.0.0.1)"
        arrivals = RedisArrivals(redis)
    else:
        messages = folder / "broker"
        messages.mkdir()
        broker, transport = "filesystem://", "filesystem (kombu's message files)"
        options = {"data_folder_in": str(messages), "data_folder_out": str(messages)}
        arrivals = FileArrivals(messages)
    app = Celery("benchruntime", broker=broker, set_as_current=False)
    app.conf.update(broker_transport_options=options, orchestra_database_url=db_url, timezone="UTC")
    store = JobStore(db_url)
    store.migrate()
    figures = SendFigures(transport)
    pauses = random.Random(10)
    try:
        with beat_process(folder, app_module(folder, broker, options, db_url), store):
            for number in range(adds):
                time.sleep(pauses.uniform(0, POLL_INTERVAL))
                start = time.time()
                add_job(app, f"added-{number:04d}", TASK, DUE_AT_ONCE, kwargs={"n": number})
                added = time.time()
                figures.add_seconds.append(added - start)
                arrived = arrivals.wait_for(number, SEND_TIMEOUT)
                if arrived is None:
                    figures.missing += 1
                else:
                    figures.latencies.append(arrived - added)
    finally:
        arrivals.close()
        store.close()
    return figures


# ---- add_jobs of 10,000 ---------------------------------------------------------------------------


def bulk_specs(count: int) -> list[JobSpec]:
    return [
        JobSpec(f"bulk-{n:05d}", TASK, BULK_SCHEDULES[n % len(BULK_SCHEDULES)], kwargs={"n": n}, tags=("bulk",))
        for n in range(count)
    ]


def timed_bulk_add(db_url: str, specs: Sequence[JobSpec]) -> float:
    """Seconds for ``add_jobs`` of ``specs`` into the empty, migrated store at ``db_url``."""
    store = JobStore(db_url)
    try:
        store.migrate()
    finally:
        store.close()
    app = Celery("benchbulk", set_as_current=False)
    app.conf.update(orchestra_database_url=db_url, timezone="UTC")
    start = time.perf_counter()
    statuses = add_jobs(app, specs)
    seconds = time.perf_counter() - start
    assert len(statuses) == len(specs) and statuses[-1].name == specs[-1].name
    return seconds


def bulk_rounds(make_url: Callable[[int], str], specs: Sequence[JobSpec], rounds: int) -> list[float]:
    return [timed_bulk_add(make_url(number), specs) for number in range(rounds)]


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        yield None
        return
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def redis_url(wanted: bool) -> Iterator[str | None]:
    binary = find_binary("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server") if wanted else None
    if binary is None:
        yield None
        return
    server = start_redis(binary)
    try:
        yield server.url(0)
    finally:
        server.stop()


# ---- the report -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p99 of 200 values is the second largest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def verdict(seconds: float, target: float) -> str:
    return f"<= {target:g} s: {'met' if seconds <= target else 'NOT MET'}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds; figures not meaningful)")
    parser.add_argument(
        "--transport",
        choices=["auto", "filesystem"],
        default="auto",
        help="broker for add -> first send: auto (Redis when redis-server exists, else filesystem) or filesystem",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    logging.getLogger("celery_orchestra").setLevel(logging.WARNING)
    specs = bulk_specs(sizes.bulk)
    bulk: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        with redis_url(args.transport == "auto") as redis:
            sends = add_to_send(work, redis, sizes.adds)
        # The database server (if any) is started before pinning, so that it does not inherit this CPU.
        with postgres() as server, one_cpu(last=True) as pinning:
            bulk["SQLite"] = bulk_rounds(lambda n: f"sqlite:///{work / f'bulk-{n}.db'}", specs, sizes.rounds)
            if server is not None:
                names = [f"bulk_{uuid.uuid4().hex[:8]}" for _ in range(sizes.rounds)]
                try:
                    bulk["PostgreSQL"] = bulk_rounds(lambda n: server.create_database(names[n]), specs, sizes.rounds)
                finally:
                    for name in names:
                        with contextlib.suppress(Exception):
                            server.drop_database(name)

    print(
        "celery-orchestra runtime benchmark" + ("  [--quick: smoke run, figures not meaningful]" if args.quick else "")
    )
    for line in machine(pinning + " (add_jobs only)", ["celery", "kombu", "redis", "SQLAlchemy", "psycopg2-binary"]):
        print(line)
    print(f"transport for add -> first send: {sends.transport}; beat polls the store every {POLL_INTERVAL:g} s")
    rows: list[tuple[str, str, str]] = []
    report: dict[str, Any] = {"adds": sizes.adds, "bulk_jobs": sizes.bulk, "rounds": sizes.rounds, "quick": args.quick}
    label = f"add -> first send, {sizes.adds} adds"
    if sends.latencies:
        p50, p99 = statistics.median(sends.latencies), percentile(sends.latencies, 0.99)
        worst = max(sends.latencies)
        rows += [
            (f"{label}: p50", f"{p50:.3f} s", ""),
            (f"{label}: p99", f"{p99:.3f} s", verdict(p99, SEND_TARGET_SECONDS) if not sends.missing else "NOT MET"),
            (f"{label}: max", f"{worst:.3f} s", ""),
        ]
        report.update(
            add_to_send_p50_s=round(p50, 4), add_to_send_p99_s=round(p99, 4), add_to_send_max_s=round(worst, 4)
        )
    rows.append(("add_job itself (median)", f"{statistics.median(sends.add_seconds):.3f} s", ""))
    report.update(add_job_median_s=round(statistics.median(sends.add_seconds), 4), not_sent=sends.missing)
    if sends.missing:
        rows.append((f"{label}: not sent within {SEND_TIMEOUT:g} s", f"{sends.missing}", "NOT MET"))
    for database, seconds in bulk.items():
        median = statistics.median(seconds)
        rounds = "1 round" if len(seconds) == 1 else f"median of {len(seconds)}"
        rows.append(
            (
                f"add_jobs, {sizes.bulk:,} jobs, {database} ({rounds})",
                f"{median:.3f} s",
                verdict(median, BULK_TARGET_SECONDS),
            )
        )
        report[f"add_jobs_{database.lower()}_s"] = round(median, 4)
        report[f"add_jobs_{database.lower()}_rounds_s"] = [round(value, 4) for value in seconds]
    print(f"\n{'measurement':<52}{'figure':>10}  target")
    for what, figure, target in rows:
        print(f"{what:<52}{figure:>10}  {target}".rstrip())
    if "PostgreSQL" not in bulk:
        print("(no PostgreSQL server binary found: add_jobs measured on SQLite only)")
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
