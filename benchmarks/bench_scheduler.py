"""How fast is celery_orchestra.Scheduler? Idle tick, burst dispatch and start-up, against stock beat in the same run.

Run::

    python benchmarks/bench_scheduler.py            # a few minutes on a 2-core VM
    python benchmarks/bench_scheduler.py --quick    # a smoke run (used by tests/test_bench_scheduler_runs.py)

Everything is measured in this one process (pinned to one CPU where the OS allows it; a Redis
server, if used, runs on the others), with ``time.perf_counter``; per-tick figures are medians.

* **Idle tick, N jobs, nothing due** (N = 100,000): our ``tick()`` with N interval jobs (every
  hour) on an SQLite store, both as beat really calls it (``poll``: every tick that ends a sleep
  also reads the store's change counter, because beat never sleeps longer than
  ``orchestra_poll_interval``) and between polls (a heap peek). Against stock
  ``celery.beat.Scheduler`` holding the same N entries as ``schedule(timedelta)``: a handful of
  idle ticks after its first (heap-building) tick. Target: ours <= 1 ms.
* **Burst, B jobs due at one instant** (B = 10,000): the time from the tick at the due instant
  until all B are published, against B plain ``app.send_task`` calls on the same transport (a
  throwaway ``redis-server`` on 127.0.0.1 from ``tests/servers.py`` when the binary exists, else
  ``memory://``). Target: ratio <= 1.3. For context, a smaller burst (1,000) through stock beat,
  which sends one task per tick.
* **Start-up, N jobs** on SQLite: ``Scheduler(app)`` from configuration to the first schedule
  (parse the N ``beat_schedule`` entries, migrate, reconcile into the store, load, build the heap),
  cold (empty database) and restart (same, unchanged database), as ratios against stock beat's
  ``Scheduler(app)`` with the same N entries, measured in the same round, seconds apart; the
  median over 3 rounds. Targets: cold <= 1.5x, restart <= 1.0x. Then the ticks after a cold start
  while the next fire times are written (each tick polls the store; target: none over 5 ms), and
  the memory retained per job (``tracemalloc``, a separate restart; target <= 1.5 KiB), also once
  every job's entry has been built (beat builds an entry when the job is first due or looked at).
  Logging stays at WARNING: at INFO, beat would also print one "scheduled to run at" line per job.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery, beat
from celery.schedules import schedule as interval_schedule

from celery_orchestra import Scheduler
from celery_orchestra.store import RunRecord

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from servers import RedisServer, find_binary, start_redis

from benchmarks.machine import machine, one_cpu


@dataclass(frozen=True)
class Sizes:
    idle_jobs: int
    stock_idle_ticks: int
    our_idle_ticks: int
    burst: int
    burst_rounds: int
    stock_burst: int
    startup_jobs: int
    startup_rounds: int


FULL = Sizes(
    idle_jobs=100_000,
    stock_idle_ticks=5,
    our_idle_ticks=2_000,
    burst=10_000,
    burst_rounds=3,
    stock_burst=1_000,
    startup_jobs=100_000,
    startup_rounds=3,
)
QUICK = Sizes(
    idle_jobs=2_000,
    stock_idle_ticks=3,
    our_idle_ticks=50,
    burst=200,
    burst_rounds=1,
    stock_burst=50,
    startup_jobs=2_000,
    startup_rounds=1,
)

TASK = "bench.noop"


# ---- the schedulers under test ------------------------------------------------------------------


class Offset:
    """Seconds added to both of our scheduler's clocks: moving both keeps it from seeing a clock jump."""

    seconds = 0.0


class BenchScheduler(Scheduler):
    """Our scheduler with a movable clock and a count of successful sends."""

    sent = 0

    @staticmethod
    def wall_time() -> float:
        return time.time() + Offset.seconds

    @staticmethod
    def monotonic() -> float:
        return time.monotonic() + Offset.seconds

    def send_run(self, entry: Any, record: RunRecord, producer: Any) -> bool:
        ok = bool(super().send_run(entry, record, producer))
        BenchScheduler.sent += ok
        return ok


class StockScheduler(beat.Scheduler):  # type: ignore[misc]
    """Stock beat, counting what it publishes."""

    sent = 0

    def send_task(self, *args: Any, **kwargs: Any) -> Any:
        result = super().send_task(*args, **kwargs)
        StockScheduler.sent += 1
        return result


def make_app(broker: str, jobs: int = 0, *, every: timedelta = timedelta(hours=1), db_url: str | None = None) -> Celery:
    app = Celery("bench", broker=broker, set_as_current=False)
    app.conf.update(
        result_expires=None,
        orchestra_remote_control=False,
        broker_connection_retry_on_startup=False,
        beat_schedule={f"job-{i:06d}": {"task": TASK, "schedule": every} for i in range(jobs)},
    )
    if db_url is not None:
        app.conf.orchestra_database_url = db_url
    return app


# ---- measurements ---------------------------------------------------------------------------------


@dataclass
class Results:
    transport: str = ""
    our_tick_poll_us: float = 0.0
    our_tick_peek_us: float = 0.0
    stock_tick_us: float = 0.0
    stock_first_tick_s: float = 0.0
    stock_setup_s: float = 0.0
    burst_ours_s: float = 0.0
    burst_send_task_s: float = 0.0
    burst_ratios: list[float] = field(default_factory=list)
    stock_burst_s: float = 0.0
    stock_burst_ours_s: float = 0.0
    stock_burst_send_task_s: float = 0.0
    stock_startup_s: float = 0.0
    startup_cold_s: float = 0.0
    startup_warm_s: float = 0.0
    cold_ratios: list[float] = field(default_factory=list)
    warm_ratios: list[float] = field(default_factory=list)
    #: Per round: the tick durations after that round's cold start, and the control's turns.
    ticks_after_start_ms: list[list[float]] = field(default_factory=list)
    control_turns_ms: list[list[float]] = field(default_factory=list)
    bytes_per_job: float = 0.0
    bytes_per_job_built: float = 0.0
    stock_bytes_per_entry: float = 0.0


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def retained_bytes(action: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated after ``action`` (and a collection) that were not before; the result is kept alive."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        value = action()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, value


def startup(folder: Path, sizes: Sizes, results: Results) -> BenchScheduler:
    """Cold start, ticks while the next fire times are written, restart, memory; stock beat alongside.

    Stock beat's start-up is ``Scheduler(app)`` with the same entries as ``schedule(timedelta)``.
    Each round measures stock, then our cold start (a new database) and the ticks after it, then
    our restart, so each ratio compares figures taken seconds apart; the reported ratio is the median over the rounds
    (a shared VM drifts over minutes). Memory is measured after a further restart, and after
    another once every job's entry has been built (entries are built when first used).
    """
    stock_app = make_app("memory://", sizes.startup_jobs, every=timedelta(hours=1))
    stock_app.conf.beat_schedule = {
        name: {**entry, "schedule": interval_schedule(timedelta(hours=1))}
        for name, entry in stock_app.conf.beat_schedule.items()
    }
    stock_s: list[float] = []
    cold_s: list[float] = []
    warm_s: list[float] = []
    app = make_app("memory://", sizes.startup_jobs)
    for round_number in range(sizes.startup_rounds):
        seconds, stock = timed(lambda: StockScheduler(stock_app))
        stock.close()
        del stock
        stock_s.append(seconds)
        app.conf.orchestra_database_url = f"sqlite:///{folder / f'startup-{round_number}.db'}"
        Offset.seconds = 0.0
        seconds, cold = timed(lambda: BenchScheduler(app))
        cold_s.append(seconds)
        ticks, control = ticks_while_writing(cold)
        results.ticks_after_start_ms.append(ticks)
        results.control_turns_ms.append(control)
        cold.close()
        seconds, warm = timed(lambda: BenchScheduler(app))
        warm_s.append(seconds)
        warm.close()
        del cold, warm
    results.stock_startup_s = statistics.median(stock_s)
    results.startup_cold_s = statistics.median(cold_s)
    results.startup_warm_s = statistics.median(warm_s)
    results.cold_ratios = [ours / stock for ours, stock in zip(cold_s, stock_s, strict=True)]
    results.warm_ratios = [ours / stock for ours, stock in zip(warm_s, stock_s, strict=True)]

    def started_and_built() -> BenchScheduler:
        scheduler = BenchScheduler(app)
        assert len(list(scheduler.schedule.values())) == sizes.startup_jobs
        return scheduler

    # Start-up and build traced in one session: what building the entries frees (what held the
    # jobs until then) is subtracted, which a second session started afterwards would not see.
    built, value = retained_bytes(started_and_built)
    value.close()
    del value
    results.bytes_per_job_built = built / sizes.startup_jobs
    retained, value = retained_bytes(lambda: BenchScheduler(app))
    measured: BenchScheduler = value
    results.bytes_per_job = retained / sizes.startup_jobs
    assert len(list(measured.schedule.values())) == sizes.startup_jobs  # every entry built, as before
    return measured


def ticks_while_writing(
    scheduler: BenchScheduler, *, seconds: float = 60.0, at_least: int = 200
) -> tuple[list[float], list[float]]:
    """Tick durations (ms) after a cold start, and a control's: ``at_least`` ticks, and until every next fire is stored.

    Each tick also polls the store (as the first tick after every sleep does), and beat sleeps
    10 ms between ticks: far more often than it would, so the ticks meet any writes going on.
    Between ticks, at the same cadence, the control spins for 1 ms (about a tick's median) doing
    nothing of ours: its longest turn is what this machine's stalls alone add to a tick.
    """
    durations: list[float] = []
    control: list[float] = []
    deadline = time.monotonic() + seconds
    while (scheduler.unwritten_next_fires or len(durations) < at_least) and time.monotonic() < deadline:
        scheduler.request_refresh()
        start = time.perf_counter()
        scheduler.tick()
        durations.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
        start = time.perf_counter()
        while time.perf_counter() - start < 0.001:
            pass
        control.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
    assert not scheduler.unwritten_next_fires, "the next fire times were not written within a minute"
    return durations, control


def idle_tick(scheduler: BenchScheduler, sizes: Sizes, results: Results) -> None:
    assert scheduler.tick() >= 0
    poll: list[float] = []
    peek: list[float] = []
    before = BenchScheduler.sent
    gc.disable()
    try:
        for _ in range(sizes.our_idle_ticks):
            scheduler.request_refresh()  # this tick reads the change counter, like every tick after a sleep
            start = time.perf_counter()
            scheduler.tick()
            poll.append(time.perf_counter() - start)
            start = time.perf_counter()
            scheduler.tick()  # right after: a peek at the heap, no store access
            peek.append(time.perf_counter() - start)
    finally:
        gc.enable()
    assert BenchScheduler.sent == before, "nothing may be due during the idle-tick measurement"
    results.our_tick_poll_us = statistics.median(poll) * 1e6
    results.our_tick_peek_us = statistics.median(peek) * 1e6


def stock_idle_tick(sizes: Sizes, results: Results) -> None:
    app = make_app("memory://", sizes.idle_jobs)
    results.stock_setup_s, scheduler = timed(lambda: StockScheduler(app))
    retained, _ = retained_bytes(lambda: StockScheduler(app))
    results.stock_bytes_per_entry = retained / sizes.idle_jobs
    try:
        assert len(scheduler.schedule) == sizes.idle_jobs
        assert all(isinstance(e.schedule, interval_schedule) for e in list(scheduler.schedule.values())[:10])
        results.stock_first_tick_s, _ = timed(scheduler.tick)  # builds the heap
        ticks = []
        for _ in range(sizes.stock_idle_ticks):
            start = time.perf_counter()
            scheduler.tick()
            ticks.append(time.perf_counter() - start)
        assert StockScheduler.sent == 0
        results.stock_tick_us = statistics.median(ticks) * 1e6
    finally:
        scheduler.close()


def send_task_baseline(broker: str, count: int, drain: Callable[[], None]) -> float:
    """Seconds for ``count`` plain ``app.send_task`` calls (after one warm-up call)."""
    app = make_app(broker)
    try:
        app.send_task(TASK)
        drain()
        elapsed, _ = timed(lambda: [app.send_task(TASK) for _ in range(count)])
        drain()
        return elapsed
    finally:
        app.close()


def our_burst(folder: Path, broker: str, count: int, drain: Callable[[], None], name: str) -> float:
    """Seconds from the tick at the due instant until ``count`` simultaneously due jobs are published."""
    app = make_app(broker, count, every=timedelta(minutes=1), db_url=f"sqlite:///{folder / f'{name}.db'}")
    Offset.seconds = 0.0
    scheduler = BenchScheduler(app)
    try:
        # Connect and settle first, as a running beat has: the burst measures dispatch, not start-up.
        scheduler.producer  # noqa: B018
        scheduler.tick()
        while scheduler.unwritten_next_fires:  # the start-up's next fire times, written in the background
            time.sleep(0.05)
        scheduler.request_refresh()
        scheduler.tick()
        due = min(entry.next_fire_at for entry in scheduler.schedule.values())
        assert all(entry.next_fire_at == due for entry in scheduler.schedule.values())
        Offset.seconds = due.timestamp() - time.time() + 0.001  # the clocks now read the due instant
        BenchScheduler.sent = 0
        gc.collect()
        start = time.perf_counter()
        while BenchScheduler.sent < count:
            scheduler.tick()
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"only {BenchScheduler.sent} of {count} sent after 600 s")
        elapsed = time.perf_counter() - start
        drain()
        return elapsed
    finally:
        scheduler.close()
        Offset.seconds = 0.0


def stock_burst(broker: str, count: int, drain: Callable[[], None]) -> float:
    """Seconds until stock beat has published ``count`` entries that all became due at the same moment."""
    app = make_app(broker, count, every=timedelta(minutes=1))
    scheduler = StockScheduler(app)
    try:
        scheduler.producer  # noqa: B018
        past = datetime.now(UTC) - timedelta(minutes=1, seconds=1)
        for entry in scheduler.schedule.values():
            entry.last_run_at = past  # all due now, as after a minute of sleep
        StockScheduler.sent = 0
        gc.collect()
        start = time.perf_counter()
        while StockScheduler.sent < count:
            scheduler.tick()
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"stock beat sent only {StockScheduler.sent} of {count} after 600 s")
        elapsed = time.perf_counter() - start
        drain()
        return elapsed
    finally:
        scheduler.close()


# ---- transport ------------------------------------------------------------------------------------


@contextlib.contextmanager
def transport(choice: str) -> Iterator[tuple[str, str, Callable[[], None]]]:
    """(broker URL, description, drain) for redis-server when available (or asked for), else memory://."""
    binary = find_binary("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server")
    if choice == "memory" or (choice == "auto" and binary is None):
        reason = "" if choice == "memory" else " (redis-server not found)"
        yield "memory://", f"memory:// (in-process kombu transport){reason}", lambda: _drain_memory()
        return
    if binary is None:
        raise SystemExit("--transport redis: redis-server not found on PATH")
    server: RedisServer = start_redis(binary)
    try:
        version = _redis_version(server)
        url = server.url()

        def drain() -> None:
            import redis

            client = redis.Redis.from_url(url)
            try:
                client.flushdb()
            finally:
                client.close()

        yield url, f"redis {version}: throwaway redis-server on {url} (tests/servers.py), no persistence", drain
    finally:
        server.stop()


def _drain_memory() -> None:
    from kombu.transport import memory

    memory.Channel.queues.clear()  # keep the in-process broker from growing between runs


def _redis_version(server: RedisServer) -> str:
    import redis

    client = redis.Redis.from_url(server.url())
    try:
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


# ---- reporting ------------------------------------------------------------------------------------


def times(ratio: float) -> str:
    """``stock / ours`` as words: "12x faster", "1.35x faster", "1.10x slower"."""
    if ratio < 1:
        return f"{1 / ratio:.2f}x slower"
    return f"{ratio:,.0f}x faster" if ratio >= 10 else f"{ratio:.2f}x faster"


def verdict(value: float, target: float) -> str:
    return "meets target" if value <= target else "MISSES target"


def report(sizes: Sizes, results: Results, pinning: str, quick: bool) -> None:
    r = results
    print()
    print("celery-orchestra scheduler benchmark" + ("  [--quick: smoke run, figures not meaningful]" if quick else ""))
    for line in machine(pinning, ("celery", "kombu", "sqlalchemy"), f", SQLite {sqlite3.sqlite_version}"):
        print(f"  {line}")
    print(f"  transport for the bursts: {r.transport}")
    print()
    rows: list[tuple[str, str, str, str, str]] = []
    idle = f"{sizes.idle_jobs:,}"
    rows.append(
        (
            f"idle tick, {idle} jobs, nothing due (median)",
            f"{r.our_tick_poll_us:,.0f} us",
            f"{r.stock_tick_us:,.0f} us",
            times(r.stock_tick_us / r.our_tick_poll_us),
            f"<= 1,000 us: {verdict(r.our_tick_poll_us, 1000)}",
        )
    )
    rows.append(("  between polls (heap peek only)", f"{r.our_tick_peek_us:,.1f} us", "", "", ""))
    rows.append(("  stock: first tick (builds its heap)", "", f"{r.stock_first_tick_s:,.2f} s", "", ""))
    burst = f"{sizes.burst:,}"
    ratio = statistics.median(r.burst_ratios)
    rounds = f"median of {len(r.burst_ratios)} rounds" if len(r.burst_ratios) > 1 else "1 round"
    spread = f"ratio per round: {', '.join(f'{x:.2f}x' for x in r.burst_ratios)}"
    rows.append(
        (
            f"burst: {burst} due at once, until all sent ({rounds})",
            f"{r.burst_ours_s:,.2f} s",
            "",
            f"{ratio:.2f}x send_task",
            f"<= 1.30x: {verdict(ratio, 1.3)}",
        )
    )
    rows.append((f"  baseline: {burst} x app.send_task", f"{r.burst_send_task_s:,.2f} s", "", "", spread))
    small = f"{sizes.stock_burst:,}"
    rows.append(
        (
            f"burst: {small} due at once (context)",
            f"{r.stock_burst_ours_s:,.3f} s",
            f"{r.stock_burst_s:,.2f} s",
            times(r.stock_burst_s / r.stock_burst_ours_s),
            f"send_task x {small}: {r.stock_burst_send_task_s:,.3f} s",
        )
    )
    jobs = f"{sizes.startup_jobs:,}"
    cold, warm = statistics.median(r.cold_ratios), statistics.median(r.warm_ratios)
    startup_rounds = f"median of {len(r.cold_ratios)} rounds" if len(r.cold_ratios) > 1 else "1 round"
    rows.append(
        (
            f"start-up, {jobs} jobs, empty SQLite store ({startup_rounds})",
            f"{r.startup_cold_s:,.2f} s",
            f"{r.stock_startup_s:,.2f} s",
            f"{cold:.2f}x stock",
            f"<= 1.5x: {verdict(cold, 1.5)}; per round: {', '.join(f'{x:.2f}x' for x in r.cold_ratios)}",
        )
    )
    rows.append(
        (
            f"restart, {jobs} jobs, unchanged store ({startup_rounds})",
            f"{r.startup_warm_s:,.2f} s",
            f"{r.stock_startup_s:,.2f} s",
            f"{warm:.2f}x stock",
            f"<= 1.0x: {verdict(warm, 1.0)}; per round: {', '.join(f'{x:.2f}x' for x in r.warm_ratios)}",
        )
    )
    # Each round's longest tick; the median round is reported, as for the other start-up figures.
    rounds = sorted(zip(r.ticks_after_start_ms, r.control_turns_ms, strict=True), key=lambda pair: max(pair[0]))
    ticks, control = (sorted(values) for values in rounds[len(rounds) // 2])
    p99 = ticks[min(len(ticks) - 1, int(len(ticks) * 0.99))]
    rows.append(
        (
            f"ticks after the cold start, each polling the store ({len(ticks):,} ticks, {startup_rounds})",
            f"max {ticks[-1]:,.1f} ms",
            "",
            "",
            f"<= 5 ms: {verdict(ticks[-1], 5)}; p99 {p99:,.1f} ms, median {statistics.median(ticks):,.2f} ms; "
            f"max per round: {', '.join(f'{max(values):.1f}' for values in r.ticks_after_start_ms)} ms",
        )
    )
    rows.append(
        (
            "  control: 1 ms of spinning at the same cadence (this machine's stalls)",
            f"max {control[-1]:,.1f} ms",
            "",
            "",
            f"p99 {control[min(len(control) - 1, int(len(control) * 0.99))]:,.1f} ms; max per round: "
            f"{', '.join(f'{max(values):.1f}' for values in r.control_turns_ms)} ms",
        )
    )
    per_job = r.bytes_per_job / 1024
    rows.append(
        (
            "memory retained per job (tracemalloc)",
            f"{per_job:,.2f} KiB",
            f"{r.stock_bytes_per_entry / 1024:,.2f} KiB",
            f"{r.bytes_per_job / r.stock_bytes_per_entry:.2f}x stock",
            f"<= 1.5 KiB: {verdict(per_job, 1.5)}",
        )
    )
    rows.append(
        (
            "  once every job's entry is built",
            f"{r.bytes_per_job_built / 1024:,.2f} KiB",
            "",
            f"{r.bytes_per_job_built / r.stock_bytes_per_entry:.2f}x stock",
            "entries are built when first used",
        )
    )
    header = ("measurement", "celery-orchestra", "stock beat", "ratio", "target / note")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    line = "  " + "  ".join(f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{widths[i]}}}" for i in range(4)) + "  {}"
    print(line.format(*header))
    print("  " + "-" * (sum(widths) + 8))
    for row in rows:
        print(line.format(*row))
    print()
    print(
        f"  stock beat: the same entries as schedule(timedelta) in celery.beat.Scheduler, measured in this run; its "
        f"start-up is Scheduler(app) with {jobs} entries (no store), its memory the same construction"
    )
    print(f"  peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds; figures not meaningful)")
    parser.add_argument(
        "--transport", choices=("auto", "redis", "memory"), default="auto", help="broker for the bursts"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    logging.getLogger("celery_orchestra").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    results = Results()
    # Redis (if any) is started before pinning, so that it does not inherit this process's CPU.
    with transport(args.transport) as (broker, description, drain), one_cpu(last=True) as pinning:
        results.transport = description
        with tempfile.TemporaryDirectory(prefix="orchestra-bench-") as folder:
            work = Path(folder)
            step("start-up", sizes.startup_jobs)
            scheduler = startup(work, sizes, results)
            try:
                step("our idle tick", sizes.idle_jobs)
                if sizes.idle_jobs == sizes.startup_jobs:
                    idle_tick(scheduler, sizes, results)
                else:
                    scheduler.close()
                    scheduler = BenchScheduler(make_app("memory://", sizes.idle_jobs, db_url=f"sqlite:///{work}/i.db"))
                    idle_tick(scheduler, sizes, results)
            finally:
                scheduler.close()
            del scheduler
            gc.collect()
            step("stock idle tick", sizes.idle_jobs)
            stock_idle_tick(sizes, results)
            gc.collect()
            # Baseline and ours alternate, round by round: on a shared machine the cost of a publish
            # drifts over minutes, and a ratio of two figures taken far apart would mostly show that.
            baselines: list[float] = []
            ours: list[float] = []
            for round_number in range(sizes.burst_rounds):
                step(f"send_task baseline, round {round_number + 1}", sizes.burst)
                baselines.append(send_task_baseline(broker, sizes.burst, drain))
                step(f"our burst, round {round_number + 1}", sizes.burst)
                ours.append(our_burst(work, broker, sizes.burst, drain, f"burst-{round_number}"))
            results.burst_ratios = [mine / theirs for mine, theirs in zip(ours, baselines, strict=True)]
            results.burst_send_task_s = statistics.median(baselines)
            results.burst_ours_s = statistics.median(ours)
            step("small bursts", sizes.stock_burst)
            results.stock_burst_send_task_s = send_task_baseline(broker, sizes.stock_burst, drain)
            results.stock_burst_ours_s = our_burst(work, broker, sizes.stock_burst, drain, "small-burst")
            results.stock_burst_s = stock_burst(broker, sizes.stock_burst, drain)
        report(sizes, results, pinning, args.quick)
    return 0


def step(what: str, size: int) -> None:
    print(f"... {what} ({size:,})", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
