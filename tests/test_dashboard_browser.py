"""The dashboard in a real headless Chromium, against a real ``celery orchestra serve`` beside a real
beat and worker on a throwaway Redis (broker and result backend).

What a person does is what the test does: open ``/``, give the token when asked, read the table,
press Pause (by keyboard) and open a job's page; what they see is checked in the page, and what
changed is checked in the store through the Python API. The screenshots are kept as artefacts: in
``$ORCHESTRA_ARTEFACTS`` when set, else in the test's temporary folder (their paths are printed).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from browser import chromium, require_chromium
from ledger import record_runs
from servers import RedisServer

from celery_orchestra import get_job
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.store import JobStore, RunRecord

pytestmark = [pytest.mark.slow, pytest.mark.redis]

TOKEN = "dashboard-token-0123456789abcdef"
READ_ONLY_TOKEN = "dashboard-read-only-0123456789ab"
#: A runtime job whose name is markup: the page must show it as text.
MARKUP = '<img src=x onerror="document.title=1">'
START_DEADLINE = 60.0
#: Beat sends "report" and "failing" every 2 s; a solo worker runs them at once.
OUTCOME_DEADLINE = 60_000
#: Redis databases of their own, apart from the other end-to-end tests' (1 to 15 there, cycling).
_DATABASES = itertools.count(11)

APP = """\
from celery import Celery

app = Celery("dashproj", broker="{redis}", backend="{redis}")
app.conf.update(
    broker_connection_retry_on_startup=True,
    timezone="Europe/Berlin",
    orchestra_database_url="sqlite:///{database}",
    beat_schedule={{
        "tick": {{"task": "dashproj.report", "schedule": "every 1 second", "options": {{"queue": "idle"}},
                 "tags": ["fast"]}},
        "report": {{"task": "dashproj.report", "schedule": "every 2 seconds", "tags": ["reports"]}},
        "failing": {{"task": "dashproj.failing", "schedule": "every 2 seconds", "tags": ["reports"]}},
        "nightly-cleanup": {{"task": "dashproj.report", "schedule": "every day at 03:00", "tags": ["maintenance"]}},
        "legacy-export": {{"task": "dashproj.report", "schedule": "every Monday at 06:00", "enabled": False}},
    }},
)


@app.task
def report():
    return 42


@app.task
def failing():
    raise ValueError("the report database is down")
"""


#: An app for the page's warnings: no beat runs, and nothing listens on its result backend's port.
DOWN_APP = """\
from celery import Celery

app = Celery("dashproj", broker="memory://", backend="redis://127.0.0.1:{port}/0")
app.conf.update(orchestra_database_url="sqlite:///{database}", redis_backend_health_check_interval=0)
"""


class Processes:
    """The project's `celery` processes, each logging to its own file, stopped by the pid we started."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, *arguments: str) -> subprocess.Popen[bytes]:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.folder), environment.get("PYTHONPATH")]))
        environment["PYTHONUNBUFFERED"] = "1"
        log = self.folder / f"{name}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "dashproj", *arguments],
                cwd=self.folder,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for _, log in self.started)

    def stop(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_line(log: Path, text: str, processes: Processes) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while text not in log.read_text(errors="replace"):
        for process, _ in processes.started:
            assert process.poll() is None, f"a process exited with {process.returncode}:\n{processes.logs()}"
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in {log.name} within {START_DEADLINE} s:\n{processes.logs()}")
        time.sleep(0.2)


def wait_until_listening(port: int, processes: Processes) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            for process, _ in processes.started:
                assert process.poll() is None, f"a process exited with {process.returncode}:\n{processes.logs()}"
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not listen within {START_DEADLINE} s:\n{processes.logs()}")
            time.sleep(0.2)


def wait_until_healthy(base: str, processes: Processes) -> None:
    """``/api/health`` answers 200: serve listens and the beat holds the lease and ticks."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # not listening yet, or 503 (HTTPError) before beat's first tick
            pass
        for process, _ in processes.started:
            assert process.poll() is None, f"a process exited with {process.returncode}:\n{processes.logs()}"
        time.sleep(0.3)
    pytest.fail(f"no healthy API within {START_DEADLINE} s:\n{processes.logs()}")


def add_job(base: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{base}/api/jobs",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def artefacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ORCHESTRA_ARTEFACTS") or tmp_path / "artefacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def served(tmp_path: Path, redis: RedisServer) -> Iterator[tuple[str, str, Processes]]:
    """A project with beat, a worker and ``orchestra serve`` running: the API's base URL, the store's URL."""
    folder = tmp_path / "project"
    folder.mkdir()
    database = folder / "orchestra.db"
    redis_url = redis.url(next(_DATABASES) % 16)
    (folder / "dashproj.py").write_text(APP.format(redis=redis_url, database=database.as_posix()))
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    read_only_file = folder / "read-only-token"
    read_only_file.write_text(READ_ONLY_TOKEN + "\n")
    port = free_port()
    processes = Processes(folder)
    try:
        processes.start("beat", "beat", "-S", "celery_orchestra.Scheduler", "-s", str(folder / "beat"), "-l", "info")
        processes.start(
            "worker", "worker", "-P", "solo", "-Q", "celery", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-l", "info",
        )  # fmt: skip
        # serve opens the store beat creates (it never creates one itself).
        wait_for_line(folder / "beat.log", "this beat is the active one", processes)
        serve = ["orchestra", "serve", "--bind", f"127.0.0.1:{port}", "--token-file", str(token_file)]
        serve += ["--read-only-token-file", str(read_only_file)]
        processes.start("serve", *serve)
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, processes)
        yield base, f"sqlite:///{database.as_posix()}", processes
    finally:
        processes.stop()


def test_the_dashboard_in_chromium(served: tuple[str, str, Processes], tmp_path: Path) -> None:
    from playwright.sync_api import expect

    base, store_url, processes = served
    # The page refreshes every 2 s; on a loaded machine an answer may take seconds more.
    expect.set_options(timeout=20_000)
    executable = require_chromium()
    kept = artefacts(tmp_path)
    requested: list[tuple[str, str | None]] = []
    with chromium(executable) as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requested.append((request.url, request.headers.get("authorization"))))
        try:
            page.goto(base + "/")
            # The API needs the token: the page asks for it once.
            dialog = page.get_by_role("dialog", name="API token")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text("This API needs a token.")
            page.get_by_role("textbox", name="Token").fill("not-the-token")
            page.keyboard.press("Enter")
            expect(dialog).to_contain_text("The token was refused; enter another.")
            page.get_by_role("textbox", name="Token").fill(TOKEN)
            page.keyboard.press("Enter")
            expect(dialog).to_be_hidden()

            # The table lists the configured jobs, with the CLI's columns, and the beat line is the CLI's.
            table = page.get_by_role("table")
            links = table.get_by_role("link")
            expect(links).to_have_text(["failing", "legacy-export", "nightly-cleanup", "report", "tick"])
            headers = table.get_by_role("columnheader")
            expect(headers).to_have_text(
                ["State", "Schedule", "Job name", "Module and task", "Due at", "Timezone", "Due in", "Attempts",
                 "Tags", "Owner", "Last result", "Actions"]
            )  # fmt: skip
            expect(page.locator("#beat")).to_have_text(re.compile(r"^Active beat: .+ pid \d+ \(epoch 1\), ticked "))
            tick = table.get_by_role("row").filter(has=page.get_by_role("link", name="tick", exact=True))
            expect(tick.get_by_role("cell").first).to_have_text("Running")
            expect(tick).to_contain_text("Europe/Berlin")
            expect(tick).to_contain_text("CYCLIC")

            # Pause, by keyboard: the row says Paused, its button now offers Resume, and the store agrees.
            pause = tick.get_by_role("button", name="Pause tick")
            pause.focus()
            page.keyboard.press("Enter")
            expect(tick.get_by_role("cell").first).to_have_text("Paused")
            expect(tick.get_by_role("button", name="Resume tick")).to_be_focused()
            expect(page.locator("#message")).to_have_text("paused: tick")
            store = JobStore(store_url)
            try:
                job = get_job(store, "tick")
                assert (job.state, job.paused) == ("Paused", True)
                assert get_job(store, "report").state == "Running"
            finally:
                store.close()
            # The page refreshes itself without a reload (a value set in it survives) and keeps the focus.
            page.evaluate("() => { window.notReloaded = true; }")
            with page.expect_response(lambda response: "/api/jobs?" in response.url):
                pass
            assert page.evaluate("() => window.notReloaded") is True
            expect(tick.get_by_role("button", name="Resume tick")).to_be_focused()

            # Each run's outcome reaches the table's Last result; then the table is kept as it looks.
            report = table.get_by_role("row").filter(has=page.get_by_role("link", name="report", exact=True))
            expect(report).to_contain_text(re.compile(r"SUCCESS \d+\.\d{3}s"), timeout=OUTCOME_DEADLINE)
            disabled = table.get_by_role("row").filter(has=page.get_by_role("link", name="legacy-export"))
            expect(disabled.get_by_role("cell").first).to_have_text("Disabled")
            expect(disabled.get_by_role("button", name="Enable legacy-export")).to_be_visible()
            page.set_viewport_size({"width": 1600, "height": 400})
            page.screenshot(path=str(kept / "dashboard-status.png"), full_page=True)
            # From a wide screen to a phone's, nothing is cut off: narrower screens show fewer columns.
            for width in (1600, 1280, 1024, 800, 390):
                page.set_viewport_size({"width": width, "height": 800})
                page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
                overflow = page.evaluate(
                    "() => [document.documentElement.scrollWidth - innerWidth,"
                    " document.querySelector('.scroll').scrollWidth - document.querySelector('.scroll').clientWidth]"
                )
                assert overflow[0] <= 0 and overflow[1] <= 0, f"{overflow} pixels too wide at {width}"
                expect(tick.get_by_role("button", name="Resume tick")).to_be_in_viewport()
            page.screenshot(path=str(kept / "dashboard-phone.png"))
            page.set_viewport_size({"width": 1280, "height": 720})

            # A job named with markup is shown as its text, and nothing in it runs.
            add_job(base, {"name": MARKUP, "task": "dashproj.report", "schedule": "every day at 04:00"})
            expect(links).to_have_text([MARKUP, "failing", "legacy-export", "nightly-cleanup", "report", "tick"])
            assert table.locator("img").count() == 0, "a job's name was taken for markup"

            # Filters: by state, then by tag.
            page.get_by_label("State").select_option("Paused")
            page.get_by_role("button", name="Filter").click()
            expect(links).to_have_text(["tick"])
            page.get_by_label("State").select_option("")
            page.get_by_role("combobox", name="Tag").fill("reports")
            page.get_by_role("button", name="Filter").click()
            expect(links).to_have_text(["failing", "report"])
            expect(page.locator("#range")).to_have_text("1-2 of 2 jobs")

            # Pages: with 50 more jobs and 50 jobs a page, the last 6 are on the second page.
            for number in range(50):
                add_job(base, {"name": f"bulk-{number:02d}", "task": "dashproj.report", "schedule": "every day"})
            page.get_by_role("combobox", name="Tag").fill("")
            page.get_by_label("Per page").select_option("50")
            page.get_by_role("button", name="Filter").click()
            expect(page.locator("#range")).to_have_text("1-50 of 56 jobs")
            expect(links).to_have_count(50)
            expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
            page.get_by_role("button", name="Next page").click()
            expect(page.locator("#range")).to_have_text("51-56 of 56 jobs")
            expect(links).to_have_text(["bulk-49", "failing", "legacy-export", "nightly-cleanup", "report", "tick"])
            expect(page.get_by_role("button", name="Next page")).to_be_disabled()

            # A job's page shows its runs' outcomes, read from the Redis result backend.
            links.filter(has_text="failing").click()
            expect(page).to_have_url(f"{base}/jobs/failing")
            expect(page.get_by_role("heading", level=1)).to_have_text("failing")
            runs = page.locator("#runs tbody")
            expect(runs).to_contain_text("FAILURE", timeout=OUTCOME_DEADLINE)
            expect(runs).to_contain_text("ValueError: the report database is down")
            expect(dialog).to_be_hidden()  # the token was kept for the tab: not asked again
            page.goto(base + "/jobs/report")
            expect(page.locator("#runs tbody")).to_contain_text("SUCCESS", timeout=OUTCOME_DEADLINE)
            expect(page.locator("#details")).to_contain_text(re.compile(r"Last result\s*SUCCESS \d"))
            page.screenshot(path=str(kept / "dashboard-job.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(kept / "dashboard-failure.png"), full_page=True)
            print(processes.logs())
            raise
        assert errors == []
        assert page.title() != "1"

        # Another tab with the read-only token: it reads, and a button answers with the 403's message.
        reader = browser.new_page(viewport={"width": 1600, "height": 800})
        reader.goto(base + "/")
        reader.get_by_role("textbox", name="Token").fill(READ_ONLY_TOKEN)
        reader.keyboard.press("Enter")
        row = reader.get_by_role("row").filter(has=reader.get_by_role("link", name="report", exact=True))
        row.get_by_role("button", name="Pause report").click()
        expect(reader.locator("#message")).to_have_text("the read-only token allows GET requests only, not POST")
        expect(row.get_by_role("cell").first).to_have_text("Running")
    print(f"screenshots kept in {kept}: dashboard-status.png, dashboard-phone.png, dashboard-job.png")

    # The token went in the Authorization header only: in no URL, in no log.
    api_calls = [(url, header) for url, header in requested if "/api/" in url]
    assert api_calls and all(TOKEN not in url for url, _ in requested)
    assert f"Bearer {TOKEN}" in {header for _, header in api_calls}
    assert TOKEN not in processes.logs()
    assert "POST /api/jobs/tick/pause HTTP/1.1" in processes.logs()
    assert " 404 " not in processes.logs()  # every file the pages ask for is there


def test_the_page_says_when_no_beat_runs_and_the_outcomes_cannot_be_read(tmp_path: Path) -> None:
    """An open API (no token: none is asked for), no beat, a result backend nothing listens on."""
    from playwright.sync_api import expect

    executable = require_chromium()
    folder = tmp_path / "project"
    folder.mkdir()
    database = folder / "orchestra.db"
    store = JobStore(f"sqlite:///{database.as_posix()}")
    try:
        store.migrate()
        fired = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
        hourly = {"type": "interval", "seconds": 3600.0, "relative": False}
        store.add_jobs([JobDefinition("cleanup", "dashproj.cleanup", hourly, source="runtime")], now=fired)
        record_runs(store, [RunRecord("cleanup", fired, fired + timedelta(seconds=2), "cleanup-run-1", None)])
    finally:
        store.close()
    (folder / "dashproj.py").write_text(DOWN_APP.format(port=free_port(), database=database.as_posix()))
    port = free_port()
    processes = Processes(folder)
    try:
        processes.start("serve", "orchestra", "serve", "--bind", f"127.0.0.1:{port}")
        wait_until_listening(port, processes)
        with chromium(executable) as browser:
            page = browser.new_page(viewport={"width": 1600, "height": 800})
            page.goto(f"http://127.0.0.1:{port}/")
            expect.set_options(timeout=20_000)
            beat = page.locator("#beat")
            expect(beat).to_have_text("WARNING: no beat is active: nothing is being sent")
            expect(beat).to_have_class(re.compile(r"\bwarning\b"))
            unavailable = re.compile(r"^outcomes unavailable: redis://127\.0\.0\.1:\d+/0: \S")
            expect(page.locator("#notice")).to_have_text(unavailable)
            row = page.get_by_role("row").filter(has=page.get_by_role("link", name="cleanup"))
            expect(row.get_by_role("cell").nth(10)).to_have_text("unknown")  # Last result
            expect(page.get_by_role("dialog")).to_be_hidden()
            page.get_by_role("link", name="cleanup").click()
            expect(page.locator("#runs tbody")).to_contain_text("cleanup-run-1")
            expect(page.locator("#runs tbody")).to_contain_text("unknown")
            expect(page.locator("#notice")).to_have_text(unavailable)
    except Exception:
        print(processes.logs())
        raise
    finally:
        processes.stop()
