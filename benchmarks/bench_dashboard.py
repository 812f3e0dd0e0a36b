"""How fast is the dashboard's first page of 10,000 jobs on screen, in the system's headless Chromium?

Run::

    python benchmarks/bench_dashboard.py            # about half a minute on a 2-core VM
    python benchmarks/bench_dashboard.py --quick    # a smoke run (used by tests/test_bench_dashboard_runs.py)

Setup: the store of ``benchmarks/bench_outcomes.py`` (an SQLite file with N runtime jobs, N =
10,000, each with one run in the ledger, and one more job with N runs), a result for every run in
a throwaway ``redis-server`` (when the binary exists) as the result backend, and a real
``celery -A proj orchestra serve`` process on 127.0.0.1 (no token: loopback). The browser is the
distribution's ``chromium`` (``apt-get install chromium``), headless, driven by Playwright.

Measured, the median and the slowest of 5 loads, each in a fresh browser context (empty cache,
no session): from the navigation's start to the frame after the page's first 100 rows were drawn,
as the page itself marks it (``performance.mark("orchestra:first-page")`` in ``status.js``). That
includes loading the page and its files, ``GET /api/beats`` and ``GET /api/jobs`` (one page, with
each job's last run and its outcome from Redis), and building the table. ``GET /api/jobs`` alone is
timed beside it, from this process.

Target: the first page of 10,000 jobs on screen in <= 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from browser import chromium, find_chromium

from benchmarks.bench_outcomes import build_store, fill_redis, redis_url
from benchmarks.machine import machine

TARGET_SECONDS = 1.0
ROUNDS = 5
PAGE = 100
MARK = "orchestra:first-page"

APP = """\
from celery import Celery

app = Celery("benchdash", broker="memory://", backend={backend!r})
app.conf.update(timezone="UTC", orchestra_database_url={store!r})
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``celery -A benchdash orchestra serve`` on a free loopback port; its base URL. Stopped by its pid."""
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])),
    }
    log = folder / "serve.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "benchdash", "orchestra", "serve", "--bind", f"127.0.0.1:{port}"],
            cwd=folder,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"orchestra serve did not start:\n{log.read_text(errors='replace')}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def api_page_seconds(base: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        with urllib.request.urlopen(f"{base}/api/jobs?offset=0&limit={PAGE}", timeout=30) as response:
            response.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Load(NamedTuple):
    """One load of the page, in seconds from the navigation's start (the browser's own clock)."""

    #: The first page's rows drawn (the page's mark): what the target is about.
    on_screen: float
    #: The page and its scripts loaded (DOMContentLoaded ended).
    ready: float
    #: ``GET /api/jobs`` as the browser saw it, from its request to the last byte of the answer.
    api: float
    #: From that last byte to the frame after the rows were drawn.
    drawn: float


#: The navigation's and the jobs request's timings, and the page's mark, as the browser recorded them.
_TIMINGS = f"""() => {{
    const navigation = performance.getEntriesByType("navigation")[0];
    const jobs = performance.getEntriesByType("resource").find((r) => new URL(r.name).pathname === "/api/jobs");
    const mark = performance.getEntriesByName({MARK!r})[0];
    return [mark.startTime, navigation.domContentLoadedEventEnd, jobs.startTime, jobs.responseEnd];
}}"""


def first_page(browser: Any, base: str, jobs: int) -> Load:
    """One load of ``/`` in a fresh context, timed up to the frame after the first page's rows."""
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    try:
        page = context.new_page()
        page.goto(base + "/")
        page.wait_for_function(f"() => performance.getEntriesByName({MARK!r}).length > 0", timeout=60_000)
        shown = page.locator("#jobs tbody tr").count()
        summary = page.locator("#range").inner_text()
        if shown != min(PAGE, jobs) or summary != f"1-{shown} of {jobs} jobs":
            raise SystemExit(f"the page shows {shown} rows, {summary!r}: not the first page of {jobs} jobs")
        mark, ready, asked, answered = (value / 1000 for value in page.evaluate(_TIMINGS))
        return Load(mark, ready, answered - asked, mark - answered)
    finally:
        context.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds; figures not meaningful)")
    args = parser.parse_args(argv)
    jobs = 300 if args.quick else 10_000
    rounds = 2 if args.quick else ROUNDS
    executable = find_chromium()
    if executable is None:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    logging.getLogger("celery_orchestra").setLevel(logging.WARNING)
    with redis_url() as redis, tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        store, single_ids, busy_ids = build_store(folder / "store.db", jobs)
        store.close()
        if redis is not None:
            from celery import Celery

            fill_redis(Celery("bench", result_backend=redis), [*single_ids, *busy_ids])
        store_url = f"sqlite:///{folder / 'store.db'}"
        (folder / "benchdash.py").write_text(APP.format(backend=redis, store=store_url))
        total = jobs + 1  # and the job with N runs
        with serve(folder) as base, chromium(executable) as browser:
            first_page(browser, base, total)  # warm-up: the server's first queries, the browser's start
            api_seconds = api_page_seconds(base, rounds)
            loads = [first_page(browser, base, total) for _ in range(rounds)]
            version = browser.version
    print(
        "celery-orchestra dashboard benchmark"
        + ("  [--quick: smoke run, figures not meaningful]" if args.quick else "")
    )
    pinning = "not pinned (the server and the browser are processes of their own)"
    for line in machine(pinning, ["fastapi", "uvicorn", "playwright", "SQLAlchemy"], f", Chromium {version}"):
        print(line)
    backend = "Redis result backend" if redis is not None else "no result backend (no redis-server found)"
    print(f"store: {total:,} jobs in SQLite, {backend}; pages of {PAGE} jobs\n")
    on_screen = [load.on_screen for load in loads]
    median, slowest = statistics.median(on_screen), max(on_screen)
    verdict = "met" if median <= TARGET_SECONDS else "NOT MET"
    print(f"{'what':<52}{'median':>10}{'slowest':>10}  target")
    print(f"{f'first page of {total:,} jobs on screen ({rounds} loads)':<52}{median:>8.3f} s{slowest:>8.3f} s"
          f"  <= {TARGET_SECONDS:g} s: {verdict}")  # fmt: skip
    for label, values in (
        ("  of which: the page and its scripts loaded", [load.ready for load in loads]),
        ("  of which: GET /api/jobs, as the browser saw it", [load.api for load in loads]),
        ("  of which: the rows drawn after the answer", [load.drawn for load in loads]),
    ):
        print(f"{label:<52}{statistics.median(values):>8.3f} s{max(values):>8.3f} s")
    print(f"{f'GET /api/jobs alone, one page of {PAGE} (from Python)':<52}{api_seconds:>8.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
