"""What README.md shows about the timing language is what the code does."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from celery_orchestra import TimeZoneError, TimingError, timing

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_timing_example() -> None:
    registered = datetime(2024, 3, 3, 7, 36, 47, tzinfo=UTC)
    t = timing("every Monday at 03:15:00", tz="Europe/Berlin", anchor=registered)
    assert t.kind == "weekly"
    assert t.max_runs is None
    assert t.next_fire_after(registered) == datetime(2024, 3, 4, 3, 15, tzinfo=ZoneInfo("Europe/Berlin"))
    assert str(t) == "every Monday at 03:15:00"
    assert "t.next_fire_after(registered)   # datetime(2024, 3, 4, 3, 15, tzinfo=ZoneInfo('Europe/Berlin'))" in README


@pytest.mark.parametrize(
    ("expression", "zone"),
    [("every day at 25:00", None), ("every Monday at 3:15 tomorrow", None), ("every day at 9:00", "Europe/Berln")],
)
def test_the_error_examples_are_verbatim(expression: str, zone: str | None) -> None:
    with pytest.raises((TimingError, TimeZoneError)) as info:
        timing(expression, tz=zone)
    shown = f"{type(info.value).__name__}: {info.value}"
    assert shown in README


def test_every_example_in_the_forms_table_parses_to_its_kind() -> None:
    table = README.split("### Forms", 1)[1].split("### Grammar", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| kind")]
    checked = 0
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if set(cells[0]) <= {"-"}:
            continue
        kind = cells[0].split(",")[0]
        for example in re.findall(r"`([^`]+)`", cells[1]):
            assert timing(example).kind == kind, example
            checked += 1
    assert checked >= 35  # every example in every row (39 when this was written)


def test_the_send_run_example_is_a_working_scheduler_subclass() -> None:
    import uuid

    from celery_orchestra import Scheduler, run_task_id

    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "class CountingScheduler" in b)
    namespace: dict[str, object] = {}
    exec(block, namespace)
    counting = namespace["CountingScheduler"]
    assert isinstance(counting, type) and issubclass(counting, Scheduler)
    assert counting.send_run is not Scheduler.send_run
    fire = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
    namespace_id = uuid.UUID("6f1b0c1e-5a0e-4a4f-9c53-0c4e6b1d7a10")
    assert run_task_id("nightly-report", fire) == str(uuid.uuid5(namespace_id, f"nightly-report\0{fire.isoformat()}"))
    assert 'celery_orchestra.run_task_id("nightly-report", fire_time)' in README


def test_the_engine_example_reads_the_jobs_table(tmp_path: Path) -> None:
    from celery_orchestra.jobs.definitions import JobDefinition
    from celery_orchestra.store import JobStore

    url = f"sqlite:///{tmp_path / 'readme.db'}"
    store = JobStore(url)
    store.migrate()
    every_minute = {"type": "interval", "seconds": 60.0, "relative": False}
    store.reconcile([JobDefinition("a", "t", every_minute)], now=datetime.now(UTC))
    store.close()
    example = README.split("**Reading the tables yourself?**", 1)[1].split("\n\n", 2)[1]
    code = "\n".join(line[6:] for line in example.splitlines())
    namespace: dict[str, object] = {"JobStore": JobStore, "url": url}
    exec(code, namespace)
    assert namespace["due"] == [("a", None)]


def test_the_liveness_and_retention_example_runs(tmp_path: Path) -> None:
    from datetime import timedelta

    from celery_orchestra.jobs.definitions import JobDefinition
    from celery_orchestra.store import BeatIdentity, JobStore
    from tests.ledger import record_runs

    store = JobStore(f"sqlite:///{tmp_path / 'readme.db'}")
    store.migrate()
    every_minute = {"type": "interval", "seconds": 60.0, "relative": False}
    now = datetime.now(UTC)
    store.reconcile([JobDefinition("old-report", "t", every_minute), JobDefinition("a", "t", every_minute)], now=now)
    from celery_orchestra.store import RunRecord

    old = now - timedelta(days=10)
    record_runs(store, [RunRecord("a", old, old, "a-old", None), RunRecord("old-report", old, old, "r-old", None)])
    store.reconcile([JobDefinition("a", "t", every_minute)], now=now)  # old-report is removed
    assert store.acquire_lease(BeatIdentity("b", "web-1", 4242, "0.1.0"), timedelta(seconds=30)) is not None

    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "beat_liveness(app)" in b)
    namespace: dict[str, object] = {"app": store}
    exec(block, namespace)
    assert str(namespace["liveness"].summary()).startswith("Active beat: web-1 pid 4242 (epoch 1), ticked ")  # type: ignore[attr-defined]
    assert namespace["pruned"].deleted == 2  # type: ignore[attr-defined]
    assert namespace["runs_deleted"] == 0  # its one run was pruned just before
    assert store.get_job("old-report") is None
    store.close()


def test_solar_names_the_extra_it_needs_where_jobs_are_defined() -> None:
    section = README.split("## Defining jobs", 1)[1].split("\n## ", 1)[0]
    assert "solar(...)" in section
    assert "pip install 'celery-orchestra[solar]'" in section


# ---------------------------------------------------------------------------- jobs managed at runtime


def runtime_section() -> str:
    return README.split("## Jobs managed at runtime", 1)[1].split("\n## ", 1)[0]


def test_the_runtime_jobs_python_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from celery_orchestra.jobs.definitions import JobDefinition
    from celery_orchestra.store import JobStore

    store = JobStore(f"sqlite:///{tmp_path / 'readme.db'}")
    store.migrate()
    every_minute = {"type": "interval", "seconds": 60.0, "relative": False}
    store.reconcile([JobDefinition("crm-export", "crm.export", every_minute, tags=("crm",))], now=datetime.now(UTC))
    block = next(b for b in re.findall(r"```python\n(.*?)```", runtime_section(), re.S) if "add_job(app," in b)

    exec(block, {"app": store})

    assert capsys.readouterr().out == "runtime Running every 15 minutes\nRemoved\n"
    owners = {record.name: (record.owner, record.enabled, record.removed) for record in store.all_jobs()}
    assert owners["crm-export"] == ("config", False, False)  # disabled by tag, still configured
    assert owners["sync-crm"] == ("runtime", True, True)
    assert sorted(name for name in owners if name.startswith("report-")) == [f"report-{h:02d}" for h in range(24)]
    report = store.get_job("report-07")
    assert report is not None and (report.kind, report.args, report.owner) == ("crontab", (7,), "runtime")
    synced = store.get_job("sync-crm")
    assert synced is not None and (synced.tags, synced.options) == (("crm", "fast"), {"queue": "crm"})
    store.close()


def replay_shell_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: str, volatile: re.Pattern[str], placeholder: str
) -> int:
    """Run each ``$ celery -A proj orchestra ...`` line of a README console block against a seeded
    project and compare its output with the lines below it (``volatile`` text as ``placeholder``).
    Returns how many commands ran."""
    import shlex
    import sys

    from celery.bin.celery import celery as celery_group
    from test_cli import Project, run, seed_like_beat, write_app

    from celery_orchestra.cli import orchestra

    if "orchestra" not in celery_group.commands:
        celery_group.add_command(orchestra)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_app(tmp_path)
    store_path = tmp_path / "celerybeat-schedule.orchestra.db"
    seed_like_beat(module, store_path)
    project = Project(module, tmp_path, store_path)
    commands = re.split(r"^\$ ", block, flags=re.M)[1:]
    try:
        for command in commands:
            line, *expected = command.rstrip("\n").split("\n")
            args = shlex.split(line)
            assert args[:4] == ["celery", "-A", "proj", "orchestra"]
            result = run(celery_group, project, *args[4:])
            shown = volatile.sub(placeholder, result.output.rstrip("\n"))
            assert shown == volatile.sub(placeholder, "\n".join(expected)), line
    finally:
        sys.modules.pop(module, None)
    return len(commands)


def test_the_runtime_jobs_shell_example_is_real_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = next(b for b in re.findall(r"```console\n(.*?)```", runtime_section(), re.S) if "orchestra add" in b)
    instant = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
    assert replay_shell_session(tmp_path, monkeypatch, block, instant, "<instant>") == 7


def test_the_ownership_error_is_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from celery_orchestra import ConfigError, add_job
    from celery_orchestra.jobs.definitions import JobDefinition
    from celery_orchestra.store import JobStore

    monkeypatch.chdir(tmp_path)
    store = JobStore("sqlite:///celerybeat-schedule.orchestra.db")
    store.migrate()
    add_job(store, "sync-crm", task="crm.sync", schedule="every 15 minutes")
    every_minute = {"type": "interval", "seconds": 60.0, "relative": False}
    with pytest.raises(ConfigError) as raised:
        store.reconcile(
            [JobDefinition("sync-crm", "t", every_minute, source="proj/schedule.yaml:12")], now=datetime.now(UTC)
        )
    store.close()
    block = runtime_section().split("```text\n", 1)[1].split("```", 1)[0]
    assert str(raised.value) == block.rstrip("\n")


def test_the_runtime_jobs_bad_timing_example_is_verbatim() -> None:
    from celery_orchestra import JobSpecError, add_job
    from celery_orchestra.store import JobStore

    with pytest.raises(JobSpecError) as raised:
        add_job(JobStore("sqlite://"), "sync-crm", task="crm.sync", schedule="every 5 minuts")
    assert f"`{raised.value}`" in runtime_section()


def test_the_export_example_is_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from celery_orchestra import add_job, export_jobs
    from celery_orchestra.store import JobStore

    monkeypatch.chdir(tmp_path)
    store = JobStore("sqlite:///celerybeat-schedule.orchestra.db")
    store.migrate()
    add_job(
        store,
        "sync-crm",
        task="crm.sync",
        schedule="every 15 minutes",
        options={"queue": "low", "priority": 5},
        tags=["crm"],
    )
    text = export_jobs(store, owner="runtime")
    store.close()
    block = runtime_section().split("```yaml\n", 1)[1].split("```", 1)[0]
    assert text == block


def test_the_celery_api_example_stores_its_jobs_as_configuration(tmp_path: Path) -> None:
    from celery import Celery

    from celery_orchestra import JobSpecError, Scheduler
    from celery_orchestra.store import JobStore

    section = README.split("### Celery's `Scheduler.add` and `update_from_dict`", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "class ProjectScheduler" in b)
    namespace: dict[str, object] = {}
    exec(block, namespace)
    project_scheduler = namespace["ProjectScheduler"]
    assert isinstance(project_scheduler, type) and issubclass(project_scheduler, Scheduler)
    app = Celery("readme", broker="memory://", set_as_current=False)
    url = f"sqlite:///{tmp_path / 'readme.db'}"
    app.conf.update(timezone="UTC", result_expires=None, orchestra_database_url=url, orchestra_remote_control=False)
    scheduler = project_scheduler(app, schedule_filename=str(tmp_path / "beat"))
    try:
        assert sorted(scheduler.schedule) == ["crm-sync", "ledger-close"]
        with pytest.raises(JobSpecError) as raised:
            scheduler.add(name="ledger-close", task="ledger.close", schedule="every 5 minuts")
    finally:
        scheduler.close()
    assert f"```\n{raised.value}\n```" in section
    store = JobStore(url)
    jobs = {record.name: record for record in store.all_jobs()}
    store.close()
    assert (jobs["crm-sync"].owner, jobs["crm-sync"].source, jobs["crm-sync"].tags) == (
        "config",
        "Scheduler.update_from_dict",
        ("crm",),
    )
    ledger = jobs["ledger-close"]
    assert (ledger.owner, ledger.source, ledger.kind, ledger.timezone) == (
        "config",
        "Scheduler.add",
        "crontab",
        "America/New_York",
    )


def test_the_run_now_python_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from celery_orchestra import add_job
    from celery_orchestra.store import JobStore

    store = JobStore(f"sqlite:///{tmp_path / 'readme.db'}")
    store.migrate()
    add_job(store, "sync-crm", task="crm.sync", schedule="every 15 minutes")
    block = next(b for b in re.findall(r"```python\n(.*?)```", runtime_section(), re.S) if "run_job_now(app," in b)

    exec(block, {"app": store})

    assert capsys.readouterr().out == "True requested\nTrue True\n"
    assert [(e.manual, e.confirmed) for e in store.history("sync-crm")] == [(True, False)]
    store.close()


def test_the_run_now_shell_example_is_real_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = next(b for b in re.findall(r"```console\n(.*?)```", runtime_section(), re.S) if "orchestra run" in b)
    task_id = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert replay_shell_session(tmp_path, monkeypatch, block, task_id, "<task id>") == 2


def test_the_run_now_refusal_is_verbatim(tmp_path: Path) -> None:
    from celery_orchestra import ControlError, add_job, remove_job, run_job_now
    from celery_orchestra.store import JobStore

    store = JobStore(f"sqlite:///{tmp_path / 'readme.db'}")
    store.migrate()
    add_job(store, "NAME", task="crm.sync", schedule="every 15 minutes")
    remove_job(store, "NAME")
    with pytest.raises(ControlError) as raised:
        run_job_now(store, "NAME")
    store.close()
    assert f"`{raised.value}`" in runtime_section()


def test_the_outcomes_example_is_real_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_outcomes import OLD_DATABASE_BACKEND

    if OLD_DATABASE_BACKEND:
        pytest.skip(OLD_DATABASE_BACKEND)
    import shlex
    import sqlite3
    import sys
    from datetime import timedelta

    from celery.bin.celery import celery as celery_group
    from ledger import record_runs
    from test_cli import Project, run, seed_like_beat, write_app
    from test_outcomes import create_result_tables

    from celery_orchestra.cli import orchestra
    from celery_orchestra.store import RunRecord

    if "orchestra" not in celery_group.commands:
        celery_group.add_command(orchestra)
    monkeypatch.syspath_prepend(str(tmp_path))
    results = tmp_path / "results.db"
    create_result_tables(f"db+sqlite:///{results.as_posix()}")
    module = write_app(tmp_path, f'result_backend="db+sqlite:///{results.as_posix()}",')
    store_path = tmp_path / "celerybeat-schedule.orchestra.db"
    seed_like_beat(module, store_path)
    project = Project(module, tmp_path, store_path)
    first = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    ids = ["5d0e6c1a-report-1120", "a41f7b9e-report-1121", "c7b3d2f0-report-1122"]
    runs = [
        RunRecord("nightly-report", first + timedelta(days=i), first + timedelta(days=i, seconds=0.012), task_id, None)
        for i, task_id in enumerate(ids)
    ]
    store = project.store()
    record_runs(store, runs)
    store.close()
    app = __import__(module).app
    app.backend.store_result(ids[0], {"rows": 1204}, "SUCCESS")
    try:
        raise ConnectionError("crm.example.com:443: timed out")
    except ConnectionError as error:
        # A traceback ending as a worker's does: Celery 5.4's database backend pickles the
        # exception, and its last line is then what is shown.
        app.backend.mark_as_failure(
            ids[1],
            error,
            traceback="Traceback (most recent call last):\n  ...\nConnectionError: crm.example.com:443: timed out",
        )
    with sqlite3.connect(results) as connection:  # finish times as a worker would have stored them (Berlin)
        for task_id, done in ((ids[0], "2026-11-20 03:04:31.512000"), (ids[1], "2026-11-21 03:00:30.020000")):
            connection.execute("UPDATE celery_taskmeta SET date_done = ? WHERE task_id = ?", (done, task_id))
    section = README.split("### Each run's outcome", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in re.findall(r"```console\n(.*?)```", section, re.S) if "orchestra history" in b)
    try:
        for command in re.split(r"^\$ ", block, flags=re.M)[1:]:
            line, *expected = command.rstrip("\n").split("\n")
            args = shlex.split(line)
            assert args[:4] == ["celery", "-A", "proj", "orchestra"]
            result = run(celery_group, project, *args[4:])
            shown = [row.rstrip() for row in result.output.rstrip("\n").split("\n")]
            assert shown == expected, result.output
    finally:
        sys.modules.pop(module, None)


# ---------------------------------------------------------------------------- the status table


def test_the_status_example_is_the_quickstart_s_table(tmp_path: Path) -> None:
    """README's big ``status`` table shows the quickstart's jobs, in order, with the schedule,
    task, zone, tags and owner that ``status`` shows for them today, under today's columns. Due
    times, counts, states that follow runs (Done, Expired) and results depend on when it ran."""
    import os
    import subprocess
    import sys

    quickstart = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
    root = str(quickstart.parent.parent)
    env = {**os.environ, "QUICKSTART_VAR": str(tmp_path), "COLUMNS": "250", "PYTHONPATH": root}
    env.pop("NO_COLOR", None)
    seed = "import sys; from tests.test_cli import seed_like_beat; seed_like_beat('proj', sys.argv[1])"

    def run(*command: str) -> str:
        done = subprocess.run(
            command, cwd=quickstart, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run(sys.executable, "-c", seed, str(tmp_path / "orchestra.db"))
    run(sys.executable, "-m", "celery", "-A", "proj", "orchestra", "pause", "task_every_48_hours")
    real = run(sys.executable, "-m", "celery", "-A", "proj", "orchestra", "status")
    section = README.split("## Job status", 1)[1].split("\n### ", 1)[0]
    shown = next(b for b in re.findall(r"```console\n(.*?)```", section, re.S) if "orchestra status" in b)

    def table(text: str) -> tuple[list[str], list[dict[str, str]], str]:
        lines = text.rstrip("\n").split("\n")
        header = [
            cell.strip()
            for cell in lines[lines.index(next(x for x in lines if x.startswith("╭"))) + 1].split("│")[1:-1]
        ]
        rows = [
            dict(zip(header, (cell.strip() for cell in line.split("│")[1:-1]), strict=True))
            for line in lines
            if line.startswith("│") and not line.startswith("│ State ")
        ]
        return header, rows, lines[-1].rstrip()

    header, rows, caption = table(shown)
    real_header, real_rows, real_caption = table(real)
    assert header == real_header
    assert "Owner" in header and "Last result" in header
    static = ("Schedule", "Job name", "Module and task", "Timezone", "Tags", "Owner")
    # Celery's own celery.backend_cleanup is added by beat itself when it starts (not by the seed).
    configured = [row for row in rows if row["Job name"] != "celery.backend_cleanup"]
    assert len(configured) == len(rows) - 1
    assert [{key: row[key] for key in static} for row in configured] == [
        {key: row[key] for key in static} for row in real_rows
    ]
    assert [row["State"] for row in rows if row["Job name"] == "task_every_48_hours"] == ["Paused"]
    assert re.fullmatch(r"29 jobs in sqlite:///\S+ at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", caption), caption
    assert real_caption.startswith("28 jobs in sqlite:///")


def http_section() -> str:
    return README.split("## HTTP API and dashboard\n", 1)[1].split("\n## ", 1)[0]


def test_the_http_api_curl_examples_are_real_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each `curl` of the HTTP API section, sent to the app `serve` builds over the CLI tests' project."""
    import importlib
    import shlex
    import sys

    from fastapi.testclient import TestClient
    from test_cli import seed_like_beat, write_app

    from celery_orchestra.store import JobStore
    from celery_orchestra.web import Access, ApiConfig, create_app

    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_app(tmp_path)
    store_path = tmp_path / "celerybeat-schedule.orchestra.db"
    seed_like_beat(module, store_path)
    token = "s3cr3t-token-from-the-token-file"
    store = JobStore(f"sqlite:///{store_path}")
    celery_app = importlib.import_module(module).app
    client = TestClient(
        create_app(store, celery_app=celery_app, config=ApiConfig(access=Access(token))), base_url="http://127.0.0.1"
    )
    block = next(b for b in re.findall(r"```console\n(.*?)```", http_section(), re.S) if "$ curl" in b)
    varying = re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    )
    commands = re.split(r"^\$ ", block, flags=re.M)[1:]
    assert len(commands) == 8
    try:
        for command in commands:
            line, expected = command.rstrip("\n").split("\n")
            args = shlex.split(line.replace("$TOKEN", token))
            assert args[:2] == ["curl", "-s"], line
            method, headers, data, url = "GET", {}, None, None
            rest = iter(args[2:])
            for arg in rest:
                if arg == "-X":
                    method = next(rest)
                elif arg == "-H":
                    name, _, value = next(rest).partition(": ")
                    headers[name] = value
                elif arg == "-d":
                    data, method = next(rest), "POST"
                else:
                    url = arg
            assert url is not None and url.startswith("localhost:5000/"), line
            response = client.request(method, url.removeprefix("localhost:5000"), headers=headers, content=data)
            assert varying.sub("<v>", response.text) == varying.sub("<v>", expected), line
    finally:
        store.close()
        sys.modules.pop(module, None)


def test_every_api_setting_is_in_the_settings_table() -> None:
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for name in (
        "orchestra_api_token",
        "orchestra_api_read_only_token",
        "orchestra_api_cors_origins",
        "orchestra_api_max_body",
        "orchestra_api_health_max_age",
        "orchestra_metrics_port",
        "orchestra_metrics_host",
    ):
        assert f"| `{name}` |" in table, name


def test_the_create_app_example_serves_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from fastapi.testclient import TestClient
    from test_cli import seed_like_beat, write_app

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    module = write_app(tmp_path)
    seed_like_beat(module, tmp_path / "celerybeat-schedule.orchestra.db")
    monkeypatch.setitem(sys.modules, "proj", importlib.import_module(module))
    (tmp_path / "api-token").write_text("a-token-of-at-least-16-characters\n")
    block = next(b for b in re.findall(r"```python\n(.*?)```", http_section(), re.S) if "create_app" in b)
    namespace: dict[str, object] = {}
    exec(block, namespace)
    client = TestClient(namespace["api"], base_url="http://127.0.0.1")
    assert client.get("/api/jobs").status_code == 401
    listed = client.get("/api/jobs", headers={"Authorization": "Bearer a-token-of-at-least-16-characters"})
    assert listed.json()["total"] == 4
    namespace["store"].close()  # type: ignore[attr-defined]
    sys.modules.pop(module, None)


def test_the_operator_functions_behind_the_api_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib
    import sys

    from test_cli import seed_like_beat, write_app

    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_app(tmp_path)
    seed_like_beat(module, tmp_path / "celerybeat-schedule.orchestra.db")
    block = next(b for b in re.findall(r"```python\n(.*?)```", http_section(), re.S) if "list_jobs_page" in b)
    namespace: dict[str, object] = {"app": importlib.import_module(module).app}
    exec(block, namespace)
    printed = capsys.readouterr().out.splitlines()
    expected = [line.split("# ", 1)[1] for line in block.splitlines() if "print(" in line and "# " in line]
    assert printed == expected
    assert namespace["older"] == []
    sys.modules.pop(module, None)
