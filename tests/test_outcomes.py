"""Each run's outcome from the result backend: history, status and get_job, on Redis and on Celery's
database backend, batched; "sent" without a backend; one line when the backend is down."""

from __future__ import annotations

import importlib
import json
import socket
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import celery
import click
import pytest
from celery import Celery
from celery.backends.base import BaseKeyValueStoreBackend
from sqlalchemy import event
from sqlalchemy.engine import Engine

from celery_orchestra import get_job
from celery_orchestra.ops import api
from celery_orchestra.ops.outcomes import ONE_BY_ONE_LIMIT, RunOutcome, outcomes
from celery_orchestra.store import RunRecord
from tests import ledger
from tests.servers import RedisServer
from tests.test_cli import Project, cli, run, seed_like_beat, write_app

__all__ = ["cli"]  # the fixture, imported from test_cli

BERLIN = ZoneInfo("Europe/Berlin")
FIRST_FIRE = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def project_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str) -> Iterator[Project]:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_app(tmp_path, extra)
    store_path = tmp_path / "celerybeat-schedule.orchestra.db"
    seed_like_beat(module, store_path)
    yield Project(module, tmp_path, store_path)
    sys.modules.pop(module, None)


#: Why the database backend's outcomes cannot be compared on this Celery ("" when they can).
OLD_DATABASE_BACKEND = (
    "Celery 5.4's database backend pickles exceptions (never unpickled here: the traceback's last line is "
    "shown) and stamps date_done once, when its models are imported"
    if celery.VERSION < (5, 5)
    else ""
)


def stamps_finish(app: Celery) -> bool:
    """Whether the backend stamps a result's finish time when it is stored. Celery 5.4's database
    backend does not: its ``date_done`` is the column default, computed once when Celery's
    models were imported (a Celery bug, fixed in 5.5)."""
    from celery.backends.database import DatabaseBackend

    if not str(app.conf.result_backend).startswith("db+"):
        return True
    return "_get_result_meta" in DatabaseBackend._update_result.__code__.co_names


@pytest.fixture(params=["redis", "database"])
def backend_project(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """The test_cli project (timezone Europe/Berlin) with a result backend: a real Redis, or
    Celery's database backend on SQLite."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        url = server.url(3)
    else:
        if OLD_DATABASE_BACKEND:
            pytest.skip(OLD_DATABASE_BACKEND)
        url = f"db+sqlite:///{tmp_path.as_posix()}/results.db"
        create_result_tables(url)
    yield from project_with(tmp_path, monkeypatch, f'result_backend="{url}",')


def create_result_tables(url: str) -> None:
    """Celery's result tables, created here: Celery 5.4 shares one SessionManager between all
    database backends of a process, which creates the tables of the first database only."""
    import sqlalchemy as sa
    from celery.backends.database.models import ResultModelBase

    engine = sa.create_engine(url.removeprefix("db+"))
    ResultModelBase.metadata.create_all(engine)
    engine.dispose()


@pytest.fixture
def down_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project whose Redis result backend is a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = f'result_backend="redis://:secret@127.0.0.1:{port}/0",\nredis_backend_health_check_interval=0,'
    yield from project_with(tmp_path, monkeypatch, extra)


@pytest.fixture
def plain_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project without a result backend."""
    yield from project_with(tmp_path, monkeypatch, "")


def app_of(project: Project) -> Celery:
    app: Celery = importlib.import_module(project.module).app
    return app


def record(project: Project, name: str, count: int) -> list[str]:
    """``count`` daily runs of ``name`` in the ledger, oldest first; their (unique) task ids."""
    prefix = uuid.uuid4().hex[:8]
    runs = [
        RunRecord(
            name, FIRST_FIRE + timedelta(days=day), FIRST_FIRE + timedelta(days=day, seconds=2), f"{prefix}-{day}", None
        )
        for day in range(count)
    ]
    store = project.store()
    try:
        ledger.record_runs(store, runs)
    finally:
        store.close()
    return [run.task_id for run in runs]


def store_success_and_failure(app: Celery, success_id: str, failure_id: str) -> tuple[datetime, datetime]:
    """A SUCCESS and a FAILURE (a two-line message) stored as a worker would; the instants around them."""
    before = datetime.now(UTC).replace(microsecond=0)
    app.backend.store_result(success_id, 42, "SUCCESS")
    try:
        raise ValueError("bad input\nsecond line")
    except ValueError as error:
        app.backend.mark_as_failure(failure_id, error, traceback="Traceback...\nValueError: bad input")
    return before, datetime.now(UTC) + timedelta(seconds=1)


# ---------------------------------------------------------------------------- with a result backend


def test_history_shows_each_runs_state_finish_and_error(cli: click.Group, backend_project: Project) -> None:
    app = app_of(backend_project)
    old, failed, pending = record(backend_project, "nightly-report", 3)
    before, after = store_success_and_failure(app, old, failed)

    runs = api.job_history(backend_project.store(), "nightly-report", app=app)
    assert [run.result for run in runs] == ["PENDING", "FAILURE", "SUCCESS"]
    assert [run.task_id for run in runs] == [pending, failed, old]
    # Celery 5.4's database backend pickles the exception (never unpickled here): the traceback's
    # last line stands in for it.
    assert runs[1].outcome is not None and runs[1].outcome.error in (
        "ValueError: bad input\\nsecond line",
        "ValueError: bad input",
    )
    assert runs[2].outcome is not None and runs[2].outcome.error is None
    finished = runs[2].outcome.finished_at
    assert finished is not None
    if stamps_finish(app):
        assert before <= finished <= after
    assert finished.tzinfo == BERLIN  # in the job's zone, like its other times
    assert runs[0].outcome is not None and runs[0].outcome.finished_at is None

    result = run(cli, backend_project, "history", "nightly-report")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[4].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    assert [cell.strip() for cell in rows[failed].split("│")[5:9]][:1] == ["FAILURE"]
    assert "ValueError: bad input\\nsecond line" in rows[failed]
    assert "SUCCESS" in rows[old] and finished.strftime("%Y-%m-%d %H:%M:%S") in rows[old]
    assert "PENDING" in rows[pending]
    header = next(line for line in result.output.splitlines() if "Fire time" in line)
    assert [part.strip() for part in header.split("│")[5:9]] == ["State", "Finished", "Took", "Error"]

    payload = json.loads(run(cli, backend_project, "history", "nightly-report", "--json").stdout)
    by_id = {item["task_id"]: item["outcome"] for item in payload}
    assert by_id[failed]["state"] == "FAILURE"
    assert by_id[failed]["error"] == "ValueError: bad input\\nsecond line"
    assert datetime.fromisoformat(by_id[old]["finished_at"]) == finished
    took = finished - (FIRST_FIRE + timedelta(seconds=2))
    assert by_id[old]["took_seconds"] == round(took.total_seconds(), 3)
    assert by_id[pending] == {
        "state": "PENDING",
        "finished_at": None,
        "error": None,
        "unavailable": None,
        "took_seconds": None,
    }


def test_status_and_get_job_show_each_jobs_last_result(cli: click.Group, backend_project: Project) -> None:
    app = app_of(backend_project)
    *_, report_last = record(backend_project, "nightly-report", 2)
    (cleanup_last,) = record(backend_project, "cleanup", 1)
    store_success_and_failure(app, report_last, cleanup_last)

    job = get_job(backend_project.store(), "cleanup", app=app)
    assert job.last_run is not None and job.last_run.task_id == cleanup_last
    assert job.last_run.result == "FAILURE"
    assert job.last_run.outcome is not None and job.last_run.outcome.error in (
        "ValueError: bad input\\nsecond line",
        "ValueError: bad input",  # Celery 5.4's database backend: the traceback's last line
    )
    assert get_job(app, "nightly-report").last_run.result == "SUCCESS"  # type: ignore[union-attr]
    assert get_job(app, "heartbeat").last_run is None  # never ran

    result = run(cli, backend_project, "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if "State" in line)
    assert "Last result" in header
    column = [part.strip() for part in header.split("│")].index("Last result")
    rows = {
        name: next(line for line in lines if f" {name} " in line) for name in ("cleanup", "nightly-report", "heartbeat")
    }
    assert rows["cleanup"].split("│")[column].strip().startswith("FAILURE ")
    assert rows["cleanup"].split("│")[column].strip().endswith(": ValueError: bad input\\nsecond line")
    assert rows["nightly-report"].split("│")[column].strip().startswith("SUCCESS ")
    assert rows["heartbeat"].split("│")[column].strip() == "-"

    payload = json.loads(run(cli, backend_project, "status", "--json").stdout)
    jobs = {job["name"]: job for job in payload["jobs"]}
    assert jobs["cleanup"]["last_run"]["task_id"] == cleanup_last
    assert jobs["cleanup"]["last_run"]["outcome"]["state"] == "FAILURE"
    assert jobs["nightly-report"]["last_run"]["outcome"]["state"] == "SUCCESS"
    assert jobs["heartbeat"]["last_run"] is None


def test_the_lookup_is_one_batch_for_fifty_runs(backend_project: Project) -> None:
    app = app_of(backend_project)
    ids = record(backend_project, "heartbeat", 50)
    for task_id in ids[::2]:
        app.backend.store_result(task_id, None, "SUCCESS")
    calls: list[str] = []
    backend: Any = app.backend
    if str(app.conf.result_backend).startswith("redis"):
        real_mget = backend.mget

        def counted_mget(keys: list[bytes]) -> Any:
            calls.append(f"mget {len(keys)}")
            return real_mget(keys)

        backend.mget = counted_mget
    else:

        @event.listens_for(Engine, "before_cursor_execute")
        def counted(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "celery_taskmeta" in statement:
                calls.append("select")

    backend.get = backend.get_task_meta = backend._get_task_meta_for = None  # one by one would fail
    try:
        runs = api.job_history(backend_project.store(), "heartbeat", 50, app=app)
    finally:
        if calls and calls[0] == "select":
            event.remove(Engine, "before_cursor_execute", counted)
    assert calls in (["mget 50"], ["select"]), runs[0]
    assert [run.result for run in runs] == ["SUCCESS" if i % 2 else "PENDING" for i in range(50)]


# ---------------------------------------------------------------------------- without or with a broken backend


def test_without_a_result_backend_runs_say_sent(cli: click.Group, plain_project: Project) -> None:
    (task_id,) = record(plain_project, "cleanup", 1)
    job = get_job(app_of(plain_project), "cleanup")
    assert (
        job.last_run is not None
        and job.last_run.result == "sent"
        and job.last_run.outcome == RunOutcome(task_id, "sent")
    )
    result = run(cli, plain_project, "status")
    header = next(line for line in result.output.splitlines() if "State" in line)
    column = [part.strip() for part in header.split("│")].index("Last result")
    row = next(line for line in result.output.splitlines() if " cleanup " in line)
    assert row.split("│")[column].strip() == "sent"
    assert "unavailable" not in result.output


def test_a_backend_that_is_down_is_one_line_and_the_table_is_still_shown(
    cli: click.Group, down_project: Project
) -> None:
    (task_id,) = record(down_project, "cleanup", 1)
    for command in (["status"], ["history", "cleanup"]):
        result = run(cli, down_project, *command)
        assert result.exit_code == 0, result.output
        notices = [line for line in result.output.splitlines() if "outcomes unavailable" in line]
        assert len(notices) == 1, result.output
        assert notices[0].startswith("outcomes unavailable: redis://:**@127.0.0.1:")
        assert "secret" not in result.output
        assert "Error" in notices[0] or "refused" in notices[0]
        assert task_id in result.output or " cleanup " in result.output  # the table follows
        row = next(line for line in result.output.splitlines() if " cleanup " in line or task_id in line)
        assert "unknown" in row
    job = get_job(app_of(down_project), "cleanup")
    assert job.last_run is not None and job.last_run.outcome is not None
    assert job.last_run.outcome.state == "unknown" and "redis://" in (job.last_run.outcome.unavailable or "")


def test_a_backend_without_batch_reads_is_asked_about_the_first_runs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    app = Celery("onebyone", result_backend="cache+memory://")
    backend: Any = app.backend
    asked: list[str] = []

    def get_task_meta(task_id: str, cache: bool = True) -> dict[str, Any]:
        asked.append(task_id)
        return {"status": "SUCCESS", "result": None, "date_done": "2026-11-20T02:00:05+00:00"}

    monkeypatch.setattr(backend, "get_task_meta", get_task_meta)
    monkeypatch.setattr(type(backend), "mget", BaseKeyValueStoreBackend.mget)  # a key-value backend with no batch read
    ids = [f"t{i}" for i in range(ONE_BY_ONE_LIMIT + 10)]
    found = outcomes(app, ids)
    assert asked == ids[:ONE_BY_ONE_LIMIT]
    assert found["t0"] == RunOutcome("t0", "SUCCESS", datetime(2026, 11, 20, 2, 0, 5, tzinfo=UTC))
    skipped = found[ids[-1]]
    assert skipped.state == "unknown" and f"only the first {ONE_BY_ONE_LIMIT} runs" in (skipped.unavailable or "")


def test_latest_runs_is_each_jobs_newest_run(plain_project: Project) -> None:
    *_, report_newest = record(plain_project, "nightly-report", 3)
    (cleanup_only,) = record(plain_project, "cleanup", 1)
    store = plain_project.store()
    try:
        latest = store.latest_runs()
        assert {name: entry.task_id for name, entry in latest.items()} == {
            "nightly-report": report_newest,
            "cleanup": cleanup_only,
        }
        assert latest["nightly-report"].fire_time == FIRST_FIRE + timedelta(days=2)
        assert list(store.latest_runs(["cleanup", "heartbeat"])) == ["cleanup"]
    finally:
        store.close()


# ---------------------------------------------------------------------------- the fast table


@pytest.mark.parametrize("looked_up", [False, True])
def test_the_fast_tables_are_drawn_exactly_as_rich_draws_them(plain_project: Project, looked_up: bool) -> None:
    import io

    from rich.console import Console

    from celery_orchestra.ops.fast_table import FastTable
    from celery_orchestra.ops.status import history_table, jobs_table

    record(plain_project, "nightly-report", 3)
    app = app_of(plain_project)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    jobs = api.list_jobs(plain_project.store(), app=app, now=now)
    runs = api.job_history(plain_project.store(), "nightly-report", app=app)
    if looked_up:  # outcomes as a backend gives them: the Finished, Took and Error columns, a wide character
        done = FIRST_FIRE + timedelta(minutes=3)
        outcome = RunOutcome(runs[0].task_id, "FAILURE", done, "ValueError: 数据 bad")
        runs = [
            runs[0].__class__(
                *[getattr(runs[0], f) for f in ("job_name", "fire_time", "sent_at", "task_id")], outcome=outcome
            ),
            *runs[1:],
        ]

    def drawn(renderable: Any) -> str:
        console = Console(file=io.StringIO(), width=250, no_color=True, force_terminal=False)
        console.print(renderable)
        return console.file.getvalue()  # type: ignore[attr-defined]

    for build in (
        lambda width: jobs_table(jobs, now=now, caption="4 jobs in sqlite:///x.db", width=width),
        lambda width: history_table(runs, caption="last 3 runs of nightly-report", width=width),
    ):
        fast, rich = build(250), build(None)
        assert isinstance(fast, FastTable) and not isinstance(rich, FastTable)
        assert drawn(fast) == drawn(rich)


def test_the_fast_tables_keep_rich_s_colours(plain_project: Project) -> None:
    """On a colour terminal, every character of the table but the padding is coloured as Rich
    colours it (Rich also styles the spaces around a header, which shows nothing). The caption
    is left out: the fast table draws it dim and italic, Rich's table plain."""
    import dataclasses
    import io

    from rich.console import Console
    from rich.text import Text

    from celery_orchestra.ops.fast_table import FastTable
    from celery_orchestra.ops.status import history_table, jobs_table

    record(plain_project, "nightly-report", 2)
    record(plain_project, "cleanup", 1)
    api.pause_job(plain_project.store(), "cleanup")
    app = app_of(plain_project)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    done = FIRST_FIRE + timedelta(minutes=3)
    jobs = []
    states = iter(["FAILURE", "SUCCESS"])
    for job in api.list_jobs(plain_project.store(), app=app, now=now):
        run = job.last_run
        if run is not None:
            state = next(states)
            run = dataclasses.replace(run, outcome=RunOutcome(run.task_id, state, done, f"{state} 数据" * 2))
        jobs.append(dataclasses.replace(job, last_run=run))
    assert {job.state for job in jobs} >= {"Running", "Paused"} and sum(job.last_run is not None for job in jobs) == 2
    runs = [job.last_run for job in jobs if job.last_run is not None]

    def drawn(renderable: Any) -> str:
        console = Console(file=io.StringIO(), width=250, force_terminal=True, color_system="truecolor")
        console.print(renderable)
        return console.file.getvalue()  # type: ignore[attr-defined]

    def coloured(ansi: str) -> list[tuple[str, str]]:
        text = Text.from_ansi(ansi)
        table = text.plain[: text.plain.index("╯")]
        return [(char, str(text.get_style_at_offset(console, at))) for at, char in enumerate(table) if char != " "]

    console = Console()
    for build in (
        lambda width: jobs_table(jobs, now=now, caption="4 jobs in sqlite:///x.db", width=width),
        lambda width: history_table(runs, caption="2 runs", width=width),
    ):
        fast, rich = build(250), build(None)
        assert isinstance(fast, FastTable) and not isinstance(rich, FastTable)
        assert "\x1b[1;31mFAILURE" in drawn(fast) and "\x1b[32mSUCCESS" in drawn(fast)
        assert coloured(drawn(fast)) == coloured(drawn(rich))
