"""`celery orchestra ...` through Celery's own CLI group, with `-A` pointing at a tiny app module."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from celery.bin.celery import celery as celery_group
from click.testing import CliRunner, Result

from celery_orchestra.cli import orchestra
from celery_orchestra.jobs.config import load_definitions
from celery_orchestra.ops import api
from celery_orchestra.store import BeatIdentity, JobRecord, JobStore, RunRecord
from tests import ledger

APP_TEMPLATE = """
from celery import Celery

app = Celery("{name}", broker="sqla+sqlite:///{folder}/broker.db")
app.conf.update(
    timezone="Europe/Berlin",
    beat_schedule_filename="{folder}/celerybeat-schedule",
    beat_schedule={{
        "nightly-report": {{"task": "proj.report", "schedule": "every day at 03:00", "tags": ["reports", "slow"]}},
        "heartbeat": {{"task": "proj.heartbeat", "schedule": "every 10 seconds", "tags": ["fast"]}},
        "cleanup": {{"task": "proj.cleanup", "schedule": "every hour at 05:00", "tags": ["slow", "io"]}},
        "tokyo-lunch": {{"task": "proj.say", "schedule": "every day at 12:00", "timezone": "Asia/Tokyo"}},
    }},
{extra}
)
"""

JOB_NAMES = ["cleanup", "heartbeat", "nightly-report", "tokyo-lunch"]


@dataclass
class Project:
    """An app module on sys.path and the store beat would have created for it."""

    module: str
    folder: Path
    store_path: Path

    def store(self) -> JobStore:
        return JobStore(f"sqlite:///{self.store_path}")

    def paused(self) -> set[str]:
        store = self.store()
        try:
            return {record.name for record in store.all_jobs() if record.paused}
        finally:
            store.close()


def write_app(folder: Path, extra: str = "") -> str:
    name = f"cliproj_{uuid.uuid4().hex[:10]}"
    source = APP_TEMPLATE.format(name=name, folder=folder.as_posix(), extra=textwrap.indent(extra, "    "))
    (folder / f"{name}.py").write_text(source)
    return name


def seed_like_beat(module: str, store_path: Path) -> None:
    """What beat does at start-up: migrate the store and reconcile the configured jobs into it."""
    app = importlib.import_module(module).app
    store = JobStore(f"sqlite:///{store_path}")
    store.migrate()
    store.reconcile(
        load_definitions(app),
        now=datetime.now(UTC),
    )
    store.close()


@pytest.fixture(scope="module")
def cli() -> click.Group:
    """Celery's root `celery` group with the `orchestra` plugin, as the entry point installs it."""
    if "orchestra" not in celery_group.commands:
        celery_group.add_command(orchestra)
    return celery_group


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_app(tmp_path)
    store_path = tmp_path / "celerybeat-schedule.orchestra.db"
    seed_like_beat(module, store_path)
    yield Project(module, tmp_path, store_path)
    sys.modules.pop(module, None)


def run(cli: click.Group, project: Project, *args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})
    return runner.invoke(cli, ["-A", project.module, "orchestra", *args])


def assert_one_line_error(result: Result, exit_code: int, text: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [f"Error: {text}"], result.stderr


# ---------------------------------------------------------------------------- packaging


def test_the_celery_commands_entry_point_names_the_group() -> None:
    points = {point.name: point.value for point in importlib.metadata.entry_points(group="celery.commands")}
    assert points.get("orchestra") == "celery_orchestra.cli:orchestra", (
        'pyproject.toml needs [project.entry-points."celery.commands"] orchestra = "celery_orchestra.cli:orchestra"'
        " (and a reinstall)"
    )


# ---------------------------------------------------------------------------- status


def test_status_table_shows_every_job_with_the_predecessors_columns(cli: click.Group, project: Project) -> None:
    api.pause_job(project.store(), "cleanup")
    result = run(cli, project, "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if "State" in line)
    for column in ("State", "Schedule", "Job name", "Module and task", "Due at", "Timezone", "Due in", "Attempts"):
        assert column in header
    assert "Tags" in header
    rows = {name: next(line for line in lines if f" {name} " in line) for name in JOB_NAMES}
    assert "Paused" in rows["cleanup"] and "HOURLY" in rows["cleanup"]
    assert "Running" in rows["heartbeat"] and "CYCLIC" in rows["heartbeat"]
    assert "proj.heartbeat" in rows["heartbeat"]
    assert rows["heartbeat"].split("│")[8].strip() == "0"  # Attempts: runs, no Python `inf` for "no limit"
    assert "Europe/Berlin" in rows["nightly-report"]
    assert "reports,slow" in rows["nightly-report"]
    assert "Asia/Tokyo" in rows["tokyo-lunch"]
    assert " 12:00:00 " in rows["tokyo-lunch"]
    assert "4 jobs in sqlite:///" in result.output


def test_status_json_is_machine_readable(cli: click.Group, project: Project) -> None:
    api.pause_job(project.store(), "heartbeat")
    result = run(cli, project, "status", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["beat"]["active"] is None  # no beat runs in these tests
    jobs = {job["name"]: job for job in payload["jobs"]}
    assert sorted(jobs) == JOB_NAMES
    assert jobs["heartbeat"]["state"] == "Paused"
    assert jobs["heartbeat"]["due_at"] is None
    assert jobs["heartbeat"]["attempts"] == "0"
    lunch = datetime.fromisoformat(jobs["tokyo-lunch"]["due_at"])
    assert lunch.utcoffset() == timedelta(hours=9)
    assert (lunch.hour, lunch.minute) == (12, 0)
    report = datetime.fromisoformat(jobs["nightly-report"]["due_at"])
    assert report.tzinfo is not None and (report.hour, report.minute) == (3, 0)
    assert jobs["nightly-report"]["tags"] == ["reports", "slow"]
    assert jobs["nightly-report"]["timezone"] == "Europe/Berlin"


def edit_rows_by_hand(project: Project, *statements: str) -> None:
    connection = sqlite3.connect(project.store_path)
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def test_a_row_edited_into_nonsense_is_shown_broken_and_costs_that_job_only(cli: click.Group, project: Project) -> None:
    edit_rows_by_hand(
        project,
        "UPDATE orchestra_jobs SET args = 'not json' WHERE name = 'heartbeat'",
        "UPDATE orchestra_jobs SET anchor = 'yesterday' WHERE name = 'cleanup'",
    )
    heartbeat_reason = "column args holds 'not json', not JSON (Expecting value)"
    cleanup_reason = "column anchor holds 'yesterday', not an ISO 8601 datetime"
    result = run(cli, project, "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {name: next(line for line in lines if f" {name} " in line) for name in JOB_NAMES}
    assert "Broken" in rows["heartbeat"] and "Broken" in rows["cleanup"]
    assert "Running" in rows["nightly-report"] and "Running" in rows["tokyo-lunch"]
    notes = [line.strip() for line in lines if line.startswith("Broken: ")]
    assert notes == [f"Broken: cleanup: {cleanup_reason}", f"Broken: heartbeat: {heartbeat_reason}"]

    payload = json.loads(run(cli, project, "status", "--json").stdout)
    jobs = {job["name"]: job for job in payload["jobs"]}
    assert (jobs["heartbeat"]["state"], jobs["heartbeat"]["broken"]) == ("Broken", heartbeat_reason)
    assert (jobs["cleanup"]["state"], jobs["cleanup"]["broken"]) == ("Broken", cleanup_reason)
    assert jobs["nightly-report"]["state"] == "Running" and jobs["nightly-report"]["broken"] is None
    assert [job["name"] for job in payload["jobs"] if job["state"] == "Broken"] == ["cleanup", "heartbeat"]
    only_broken = json.loads(run(cli, project, "status", "--json", "--state", "broken").stdout)
    assert [job["name"] for job in only_broken["jobs"]] == ["cleanup", "heartbeat"]

    # The operator columns still work on a broken job, and its history can be read.
    paused = run(cli, project, "pause", "heartbeat")
    assert paused.exit_code == 0, paused.output
    assert project.paused() == {"heartbeat"}
    history = run(cli, project, "history", "cleanup")
    assert history.exit_code == 0, history.output
    assert history.output == "no runs of cleanup recorded yet\n"


def test_status_filters_by_tag_and_state(cli: click.Group, project: Project) -> None:
    api.pause_jobs(project.store(), ["cleanup", "heartbeat"])

    def names(*args: str) -> list[str]:
        return [job["name"] for job in json.loads(run(cli, project, "status", "--json", *args).stdout)["jobs"]]

    assert names("--tag", "slow") == ["cleanup", "nightly-report"]
    assert names("--tag", "fast", "--tag", "io") == ["cleanup", "heartbeat"]
    assert names("--tag", "fast,io") == ["cleanup", "heartbeat"]
    assert names("--state", "paused") == ["cleanup", "heartbeat"]
    assert names("--state", "Running", "--tag", "slow") == ["nightly-report"]
    table = run(cli, project, "status", "--state", "paused")
    assert "2 matching jobs" in table.output
    assert "nightly-report" not in table.output


def test_status_with_a_bad_state_is_a_usage_error(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "status", "--state", "sleeping")
    assert_one_line_error(
        result, 2, "unknown state 'sleeping'; expected one of Running, Paused, Disabled, Done, Expired, Removed, Broken"
    )


def test_status_without_a_store_says_where_it_looked(cli: click.Group, project: Project) -> None:
    missing = project.folder / "elsewhere" / "schedule"
    result = run(cli, project, "status", "-s", str(missing))
    assert_one_line_error(
        result,
        1,
        f"no orchestra store at {missing}.orchestra.db: beat creates it on its first start; "
        "check the schedule file (beat's -s) or the orchestra_database_url setting",
    )
    assert not Path(f"{missing}.orchestra.db").exists()


def test_schedule_option_finds_the_store_beside_beats_file(cli: click.Group, project: Project) -> None:
    other = project.folder / "other"
    other.mkdir()
    seed_like_beat(project.module, other / "beat.orchestra.db")
    api.pause_job(JobStore(f"sqlite:///{other / 'beat.orchestra.db'}"), "tokyo-lunch")
    result = run(cli, project, "status", "--json", "--schedule", str(other / "beat"))
    assert {job["name"]: job["state"] for job in json.loads(result.stdout)["jobs"]}["tokyo-lunch"] == "Paused"
    default = run(cli, project, "status", "--json")
    assert {job["name"]: job["state"] for job in json.loads(default.stdout)["jobs"]}["tokyo-lunch"] == "Running"


def test_unreachable_database_is_one_line(cli: click.Group, project: Project) -> None:
    url = "postgresql+psycopg2://orchestra:secret@127.0.0.1:9/orchestra?connect_timeout=2"
    result = run(cli, project, "status", "--database-url", url)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: cannot list the jobs in 'postgresql+psycopg2://orchestra:***@127.0.0.1:9/orchestra")
    assert "secret" not in result.output


def test_bad_database_url_is_one_line(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "pause", "heartbeat", "--database-url", "nosuchdb://x")
    assert_one_line_error(
        result,
        1,
        "unknown database driver 'nosuchdb' in URL 'nosuchdb://x': celery-orchestra supports sqlite, postgresql",
    )


def test_database_url_option_overrides_the_setting(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "pause", "heartbeat", "--database-url", f"sqlite:///{project.store_path}")
    assert result.exit_code == 0, result.output
    assert project.paused() == {"heartbeat"}


def test_watch_redraws_until_interrupted(cli: click.Group, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            api.pause_job(project.store(), "heartbeat")  # a change between two refreshes
            return
        raise KeyboardInterrupt

    monkeypatch.setattr("celery_orchestra.ops.cli.time.sleep", nap)
    result = run(cli, project, "status", "--watch", "--interval", "0.5", "--tag", "fast")
    assert result.exit_code == 0, result.output
    assert naps == [0.5, 0.5]
    # Not a terminal (CliRunner): each refresh is printed after the previous one.
    rows = [line for line in result.output.splitlines() if " heartbeat " in line]
    assert len(rows) == 2
    assert "Running" in rows[0] and "Paused" in rows[1]


def test_watch_and_json_do_not_combine(cli: click.Group, project: Project) -> None:
    assert_one_line_error(run(cli, project, "status", "--watch", "--json"), 2, "--watch and --json cannot be combined")


# ---------------------------------------------------------------------------- pause / resume


def test_pause_and_resume_by_name(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "pause", "heartbeat", "cleanup")
    assert result.exit_code == 0, result.output
    assert result.output == "paused: heartbeat, cleanup\n"
    assert project.paused() == {"heartbeat", "cleanup"}
    assert run(cli, project, "pause", "heartbeat").output == "already paused: heartbeat\n"
    result = run(cli, project, "resume", "heartbeat", "tokyo-lunch")
    assert result.output == "resumed: heartbeat; not paused: tokyo-lunch\n"
    assert project.paused() == {"cleanup"}


def test_resume_stamps_the_resume_instant(cli: click.Group, project: Project) -> None:
    run(cli, project, "pause", "heartbeat")
    before = datetime.now(UTC)
    assert run(cli, project, "resume", "heartbeat").exit_code == 0
    store = project.store()
    record = store.get_job("heartbeat")
    store.close()
    assert record is not None and record.resumed_at is not None and record.resumed_at >= before


def test_pause_unknown_job_is_one_line_and_changes_nothing(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "pause", "heartbeat", "heartbaet")
    assert_one_line_error(result, 1, "no such job: heartbaet (did you mean heartbeat?)")
    assert project.paused() == set()


def test_pause_and_resume_by_tags(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "pause", "--tags", "slow")
    assert result.output == "paused: cleanup, nightly-report (jobs with tag slow)\n"
    result = run(cli, project, "resume", "--tags", "reports,slow", "--all")
    assert result.output == "resumed: nightly-report (jobs with all of the tags reports, slow)\n"
    assert project.paused() == {"cleanup"}
    result = run(cli, project, "resume", "--tags", "io", "--tags", "fast", "--json")
    assert json.loads(result.stdout) == {
        "action": "resume",
        "changed": ["cleanup"],
        "unchanged": ["heartbeat"],
        "ended": {},
        "selector": "jobs with any of the tags io, fast",
    }


def test_tags_matching_nothing_are_one_line(cli: click.Group, project: Project) -> None:
    assert_one_line_error(run(cli, project, "pause", "--tags", "gpu"), 1, "no job has tag gpu")
    assert_one_line_error(
        run(cli, project, "pause", "--tags", "fast,io", "--all"), 1, "no job has all of the tags fast, io"
    )
    assert_one_line_error(
        run(cli, project, "pause", "--tags", ","), 2, "no tags given (expected tags like 'cpu' or 'cpu,nightly')"
    )
    assert project.paused() == set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to pause: give job names, or --tags TAG[,TAG...] (or --tag TAG, repeatable)"),
        (("heartbeat", "--tags", "fast"), "give job names or --tag/--tags, not both"),
        (("heartbeat", "--all"), "--all only applies to --tag/--tags"),
    ],
)
def test_pause_usage_errors(cli: click.Group, project: Project, args: tuple[str, ...], message: str) -> None:
    assert_one_line_error(run(cli, project, "pause", *args), 2, message)


# ---------------------------------------------------------------------------- check


def test_check_ok_summarises_the_sources(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "check")
    assert result.exit_code == 0, result.output
    assert result.stdout == "OK: 4 jobs (4 in beat_schedule)\n"
    extra = project.folder / "more.yaml"
    extra.write_text(
        "- module: proj\n"
        "  schedules:\n"
        "    - {name: weekly, task: report, schedule: {timing: 'every Monday at 03:15'}}\n"
        "    - {name: soon, task: report, schedule: {timing: 'once in 5 minutes'}}\n"
    )
    result = run(cli, project, "check", str(extra))
    assert result.stdout == f"OK: 6 jobs (4 in beat_schedule, 2 in {extra})\n"


def test_check_warns_once_per_job_about_tasks_the_app_does_not_register(
    cli: click.Group, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "cliproj_tasks.py").write_text(
        "from celery import shared_task\n\n\n@shared_task(name='proj.report')\ndef report() -> None:\n    pass\n"
    )
    module = write_app(tmp_path, 'imports=["cliproj_tasks"],\n')
    result = CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["-A", module, "orchestra", "check"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "OK: 4 jobs (4 in beat_schedule)\n"
    # proj.report is registered by the imported module; the other three are not.
    assert result.stderr.splitlines() == [
        f"beat_schedule: job {name!r}: warning: the app registers no task {task!r} "
        "(a worker would refuse it as an unregistered task)"
        for name, task in [("heartbeat", "proj.heartbeat"), ("cleanup", "proj.cleanup"), ("tokyo-lunch", "proj.say")]
    ]
    sys.modules.pop(module, None)
    sys.modules.pop("cliproj_tasks", None)


def test_check_says_when_the_apps_modules_do_not_import(
    cli: click.Group, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_app(tmp_path, 'imports=["cliproj_absent_tasks"],\n')
    result = CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["-A", module, "orchestra", "check"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "OK: 4 jobs (4 in beat_schedule)\n"
    assert result.stderr.startswith("warning: task names not checked: the app's task modules do not import here (")
    assert "cliproj_absent_tasks" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    sys.modules.pop(module, None)


def test_check_reports_every_problem_with_position_and_caret(cli: click.Group, project: Project) -> None:
    broken = project.folder / "broken.yaml"
    broken.write_text(
        "- module: proj\n"
        "  schedules:\n"
        "    - name: bad-hour\n"
        "      task: report\n"
        "      schedule: {timing: 'every day at 25:00'}\n"
        "    - name: heartbeat\n"
        "      task: beat\n"
        "      schedule: {timing: 'every 5 seconds'}\n"
    )
    result = run(cli, project, "check", str(broken))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    at = lines.index(f"{broken}:5:40: job 'bad-hour': bad timing: the hour must be below 24 in 25:00")
    assert lines[at + 1] == "          schedule: {timing: 'every day at 25:00'}"
    assert lines[at + 2] == "    " + " " * 39 + "^"
    assert any(
        line.startswith(f"{broken}:6:") and "job 'heartbeat'" in line and "defined twice" in line for line in lines
    )
    assert result.stderr == "Error: 2 problems in the schedule configuration\n"


def test_check_reads_the_apps_schedule_files_setting(
    cli: click.Group, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    listed = tmp_path / "listed.yaml"
    listed.write_text("- module: proj\n  schedules:\n    - {name: x, task: t, schedule: {timing: 'every 1 secnd'}}\n")
    module = write_app(tmp_path, f'orchestra_schedule_files=["{listed.as_posix()}"],\n')
    runner = CliRunner(env={"COLUMNS": "250"})
    result = runner.invoke(cli, ["-A", module, "orchestra", "check"])
    assert result.exit_code == 1
    assert f"{listed}:3:" in result.stdout
    assert "bad timing" in result.stdout
    # Naming the same file again does not report its problems twice.
    again = runner.invoke(cli, ["-A", module, "orchestra", "check", str(listed)])
    assert again.stdout == result.stdout
    sys.modules.pop(module, None)


def test_check_reports_bad_settings_and_missing_files(
    cli: click.Group, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_app(tmp_path, 'orchestra_catch_up="sometimes",\n')
    result = CliRunner().invoke(cli, ["-A", module, "orchestra", "check", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1
    assert "settings: setting orchestra_catch_up must be one of once, skip, all, got 'sometimes'" in result.stdout
    assert f"{tmp_path / 'absent.yaml'}: schedule file not found" in result.stdout
    assert result.stderr == "Error: 2 problems in the schedule configuration\n"
    sys.modules.pop(module, None)


# ---------------------------------------------------------------------------- next


def test_next_previews_fire_times_across_dst(cli: click.Group, project: Project) -> None:
    result = run(
        cli, project, "next", "every Monday at 03:15", "--tz", "Europe/Berlin", "-n", "3", "--after", "2026-03-20T00:00"
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "every Monday at 03:15:00  (weekly, Europe/Berlin)",
        "  Mon 2026-03-23 03:15:00 CET (+0100)  in 3d 03h",
        "  Mon 2026-03-30 03:15:00 CEST (+0200)  in 10d 02h",  # real time: the clocks went forward
        "  Mon 2026-04-06 03:15:00 CEST (+0200)  in 17d 02h",
    ]


def test_next_counts_real_elapsed_time_across_the_spring_gap(cli: click.Group, project: Project) -> None:
    result = run(
        cli, project, "next", "every 30 minutes", "--tz", "Europe/Berlin", "-n", "3", "--after", "2026-03-29T01:00"
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        "  Sun 2026-03-29 01:30:00 CET (+0100)  in 30m 00s",
        "  Sun 2026-03-29 03:00:00 CEST (+0200)  in 1h 00m",  # not 2h: 02:00-03:00 never happened
        "  Sun 2026-03-29 03:30:00 CEST (+0200)  in 1h 30m",
    ]


def test_next_takes_the_expression_as_several_words_and_the_apps_zone(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "next", "every", "day", "at", "9:15", "-n", "2", "--after", "2026-07-01T10:00")
    assert result.output.splitlines() == [
        "every day at 09:15:00  (daily, Europe/Berlin)",
        "  Thu 2026-07-02 09:15:00 CEST (+0200)  in 23h 15m",
        "  Fri 2026-07-03 09:15:00 CEST (+0200)  in 1d 23h",
    ]


def test_next_of_a_one_off_says_when_it_ends(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "next", "once in 90 minutes", "--tz", "UTC", "--after", "2026-01-01T00:00:00+00:00")
    assert result.output.splitlines() == [
        "once in 1 hour and 30 minutes  (once, UTC)",
        "  Thu 2026-01-01 01:30:00 UTC (+0000)  in 1h 30m",
        "  (no further fire times)",
    ]
    past = run(cli, project, "next", "2023-04-01 09:13", "--tz", "UTC", "--after", "2026-01-01T00:00:00+00:00")
    assert past.exit_code == 0
    assert "never fires after 2026-01-01 00:00:00 UTC" in past.output


def test_next_with_a_bad_expression_shows_the_caret_and_exits_2(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "next", "every Mondy at 3")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: invalid timing expression 'every Mondy at 3': ")
    assert lines[0].endswith("(line 1, column 7)")
    assert lines[1:] == ["    every Mondy at 3", "          ^"]
    assert "Traceback" not in result.output


def test_next_with_a_bad_zone_or_start_is_one_line(cli: click.Group, project: Project) -> None:
    assert_one_line_error(
        run(cli, project, "next", "every day", "--tz", "Mars/Base"),
        2,
        "unknown time zone 'Mars/Base' (expected an IANA name like 'Europe/Berlin')",
    )
    assert_one_line_error(
        run(cli, project, "next", "every day", "--after", "tomorrow"),
        2,
        "--after must be an ISO 8601 date-time such as 2026-03-29T01:30, got 'tomorrow'",
    )


# ---------------------------------------------------------------------------- history


def record_runs(project: Project, name: str, first: datetime, count: int) -> None:
    store = project.store()
    ledger.record_runs(
        store,
        [
            RunRecord(name, first + timedelta(days=day), first + timedelta(days=day, seconds=2), f"{name}-{day}", None)
            for day in range(count)
        ],
    )
    store.close()


def test_history_lists_recent_runs_newest_first(cli: click.Group, project: Project) -> None:
    record_runs(project, "nightly-report", datetime(2026, 11, 20, 2, 0, tzinfo=UTC), 3)
    result = run(cli, project, "history", "nightly-report")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "nightly-report-" in line]
    assert [row.split()[-4:-1] for row in rows] == [
        ["nightly-report-2", "│", "sent"],
        ["nightly-report-1", "│", "sent"],
        ["nightly-report-0", "│", "sent"],
    ]
    assert "2026-11-22 03:00:00" in rows[0] and "2026-11-22 03:00:02" in rows[0] and "2.000s" in rows[0]
    assert "last 3 runs of nightly-report, times in Europe/Berlin" in result.output
    limited = run(cli, project, "history", "nightly-report", "-n", "1", "--json")
    assert json.loads(limited.stdout) == [
        {
            "job": "nightly-report",
            "fire_time": "2026-11-22T03:00:00+01:00",
            "sent_at": "2026-11-22T03:00:02+01:00",
            "task_id": "nightly-report-2",
            "confirmed": True,
            "state": "sent",
            "manual": False,
            # The app has no result backend: all that is known of the run is that it was sent.
            "outcome": {"state": "sent", "finished_at": None, "error": None, "unavailable": None, "took_seconds": None},
        }
    ]


def test_history_of_a_job_that_never_ran(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "history", "heartbeat")
    assert result.exit_code == 0
    assert result.output == "no runs of heartbeat recorded yet\n"


def test_history_of_an_unknown_job_is_one_line(cli: click.Group, project: Project) -> None:
    assert_one_line_error(run(cli, project, "history", "nightly"), 1, "no such job: nightly")


# ---------------------------------------------------------------------------- a real process


def celery_process(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.folder), env.get("PYTHONPATH", "")]))
    env["COLUMNS"] = "250"
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", project.module, "orchestra", *args],
        cwd=project.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_celery_orchestra_runs_as_a_real_celery_subcommand(project: Project) -> None:
    paused = celery_process(project, "pause", "--tags", "io")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == "paused: cleanup (jobs with tag io)\n"
    shown = celery_process(project, "status")
    assert shown.returncode == 0, shown.stderr
    rows = {name: next(line for line in shown.stdout.splitlines() if f" {name} " in line) for name in JOB_NAMES}
    assert "Paused" in rows["cleanup"]
    assert all("Running" in rows[name] for name in JOB_NAMES if name != "cleanup")
    missing = celery_process(project, "history", "no-such-job")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "Error: no such job: no-such-job"


def test_importing_the_cli_registers_the_remote_commands_for_celery_control(project: Project) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project.folder), env.get("PYTHONPATH", "")]))
    listed = subprocess.run(
        [sys.executable, "-m", "celery", "-A", project.module, "control", "--list"],
        cwd=project.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "orchestra_pause NAME [NAME ...]" in listed.stdout
    assert "orchestra_pause_tags TAG[,TAG...] [any|all]" in listed.stdout


def test_group_help_lists_every_subcommand(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "--help")
    assert result.exit_code == 0
    for name in ("status", "pause", "resume", "check", "next", "history"):
        assert f"  {name} " in result.output


# ---------------------------------------------------------------------------- beats, health, prune, forget


def test_health_fails_without_an_active_beat_and_passes_with_one(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "health")
    assert result.exit_code == 1
    assert result.stdout == "WARNING: no beat is active: nothing is being sent\n"

    store = project.store()
    beat = BeatIdentity("b1", "worker-7", 4242, "0.1.0")
    assert store.acquire_lease(beat, timedelta(seconds=30)) is not None
    store.record_beat(BeatIdentity("b2", "worker-8", 99, "0.1.0"), "standby")
    store.close()

    healthy = run(cli, project, "health", "--max-age", "30")
    assert healthy.exit_code == 0, healthy.output
    assert healthy.stdout.startswith("Active beat: worker-7 pid 4242 (epoch 1), ticked ")
    beats = run(cli, project, "beats", "--json")
    payload = json.loads(beats.stdout)
    assert payload["active"]["id"] == "b1"
    assert sorted((b["host"], b["role"]) for b in payload["beats"]) == [("worker-7", "active"), ("worker-8", "standby")]
    table = run(cli, project, "beats")
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if "worker-" in line and line.startswith("│")]
    assert len(rows) == 2 and "active" in rows[0] and "standby" in rows[1]
    status = json.loads(run(cli, project, "status", "--json").stdout)
    assert status["beat"]["active"]["pid"] == 4242
    assert run(cli, project, "status").stdout.startswith("Active beat: worker-7 pid 4242 (epoch 1), ticked ")


def test_health_fails_when_the_active_beat_stopped_ticking(cli: click.Group, project: Project) -> None:
    store = project.store()
    long_ago = datetime.now(UTC) - timedelta(seconds=50)
    assert store.acquire_lease(BeatIdentity("b1", "h", 1, "0"), timedelta(seconds=60), now=long_ago) is not None
    store.close()
    result = run(cli, project, "health", "--max-age", "30")
    assert result.exit_code == 1
    assert "ticked 5" in result.stdout  # 50 s ago


def test_prune_deletes_runs_older_than_asked(cli: click.Group, project: Project) -> None:
    record_runs(project, "nightly-report", datetime.now(UTC) - timedelta(days=10), 8)  # 10 to 3 days ago
    result = run(cli, project, "prune", "--older-than", "5d")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("deleted 6 runs fired before ")
    assert len(api.job_history(project.store(), "nightly-report", 100)) == 2
    assert run(cli, project, "prune").stdout.startswith("deleted 0 runs")  # the 30-day default
    bad = run(cli, project, "prune", "--older-than", "soon")
    assert bad.exit_code == 2
    assert "'soon' is not a duration such as 7d, 12h, 30m, 90s or 3600" in bad.output


def test_forget_deletes_only_a_removed_job(cli: click.Group, project: Project) -> None:
    still = run(cli, project, "forget", "heartbeat")
    assert_one_line_error(
        still,
        2,
        "job 'heartbeat' is still configured: remove it from beat_schedule or its YAML file and restart beat first "
        "(forget deletes only jobs shown as Removed)",
    )
    store = project.store()
    store.reconcile([], now=datetime.now(UTC))  # every job gone from the configuration
    store.close()
    record_runs(project, "heartbeat", datetime(2026, 11, 20, 2, 0, tzinfo=UTC), 2)
    result = run(cli, project, "forget", "heartbeat")
    assert result.exit_code == 0, result.output
    assert result.stdout == "forgot heartbeat and 2 recorded runs\n"
    assert project.store().get_job("heartbeat") is None
    unknown = run(cli, project, "forget", "heartbeet")
    assert unknown.exit_code == 1
    assert "heartbeet" in unknown.output


# ---------------------------------------------------------------------------- text is text

EVIL_NAME = "evil\x1b[2J[link=https://attacker.example]click[/link][/bold]\u202e"


def add_jobs(project: Project, entries: dict[str, dict[str, object]]) -> None:
    """Configure more jobs besides the app's, as beat would store them at its next start."""
    from test_api import definitions

    app = importlib.import_module(project.module).app
    store = project.store()
    store.reconcile([*load_definitions(app), *definitions(entries)], now=datetime.now(UTC))
    store.close()


def test_status_shows_names_tasks_and_tags_literally(cli: click.Group, project: Project) -> None:
    add_jobs(
        project,
        {EVIL_NAME: {"task": "proj.[bold]say\x07", "schedule": "every 10 seconds", "tags": ["[red]x"]}},
    )
    runner = CliRunner(env={"COLUMNS": "250"})  # colours on: markup would show as styles, not text
    result = runner.invoke(cli, ["-A", project.module, "orchestra", "status"], color=True)
    assert result.exit_code == 0, result.output
    assert "\x1b[2J" not in result.output and "\x07" not in result.output and "\u202e" not in result.output
    assert "\x1b]8;" not in result.output  # no hyperlink escape
    row = next(line for line in result.output.splitlines() if "evil" in line)
    assert "evil\\x1b[2J[link=https://attacker.example]click[/link][/bold]\\u202e" in row
    assert "proj.[bold]say\\x07" in row and "[red]x" in row
    # The other rows are intact: nothing in one name broke the table.
    plain = run(cli, project, "status").output.splitlines()
    assert sum("│" in line and " Running " in line for line in plain) == 5


def test_pause_output_shows_names_literally(cli: click.Group, project: Project) -> None:
    add_jobs(project, {"bell\x07\nFAKE": {"task": "proj.say", "schedule": "every 10 seconds", "tags": ["odd"]}})
    result = run(cli, project, "pause", "--tag", "odd")
    assert result.exit_code == 0, result.output
    assert result.output == "paused: bell\\x07\\nFAKE (jobs with tag odd)\n"


def test_status_fits_80_columns_with_names_and_zones_whole(cli: click.Group, project: Project) -> None:
    zones = {"tokyo-lunch": "Asia/Tokyo"}

    def rows_at_80(names: list[str]) -> list[str]:
        result = CliRunner(env={"COLUMNS": "80", "NO_COLOR": "1"}).invoke(
            cli, ["-A", project.module, "orchestra", "status"]
        )
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert all(len(line) <= 80 for line in lines), result.output
        rows = [line for line in lines if any(state in line for state in (" Running ", "Running  "))]
        assert len(rows) == len(names), result.output  # one line per job: nothing wraps
        for name in names:
            [row] = [row for row in rows if f" {name} " in row or row.startswith(f"{name} ")]
            assert f" {zones.get(name, 'Europe/Berlin')} " in row
        return lines

    framed = rows_at_80(JOB_NAMES)
    assert framed[1].startswith("╭") and "Due at" in framed[2]  # the app's short names leave room for more
    longest = "task_once_in_5_hours_2_minutes_and_15_seconds"  # the quickstart's longest name
    add_jobs(project, {longest: {"task": "proj.long_task", "schedule": "every 5 hours"}})
    open_layout = rows_at_80([*JOB_NAMES, longest])
    assert open_layout[1].split() == ["State", "Job", "name", "Timezone", "Due", "in"]


def test_tag_and_tags_are_both_accepted_everywhere(cli: click.Group, project: Project) -> None:
    def names(*args: str) -> list[str]:
        return [job["name"] for job in json.loads(run(cli, project, "status", "--json", *args).stdout)["jobs"]]

    assert names("--tags", "fast,io") == ["cleanup", "heartbeat"]
    assert names("--tags", "fast", "--tag", "io") == ["cleanup", "heartbeat"]
    result = run(cli, project, "pause", "--tag", "fast", "--tag", "io")
    assert result.output == "paused: cleanup, heartbeat (jobs with any of the tags fast, io)\n"
    result = run(cli, project, "resume", "--tag", "reports", "--tag", "slow", "--all")
    assert result.output == "not paused: nightly-report (jobs with all of the tags reports, slow)\n"


def test_pausing_a_done_or_removed_job_says_nothing_changes(cli: click.Group, project: Project) -> None:
    add_jobs(project, {"hello-once": {"task": "proj.say", "schedule": "once in 1 second", "tags": ["odd"]}})
    store = project.store()
    record = store.get_job("hello-once")
    assert record is not None
    store.save_progress({"hello-once": (record.anchor + timedelta(seconds=1), 1, None)})
    store.close()
    result = run(cli, project, "pause", "hello-once", "heartbeat")
    assert result.exit_code == 0, result.output
    assert result.output == "paused: heartbeat; Done, nothing to pause: hello-once\n"
    assert project.paused() == {"heartbeat"}
    assert json.loads(run(cli, project, "pause", "--tag", "odd", "--json").stdout)["ended"] == {"hello-once": "Done"}

    store = project.store()
    store.reconcile(load_definitions(importlib.import_module(project.module).app), now=datetime.now(UTC))
    store.close()  # no longer configured: Removed
    result = run(cli, project, "resume", "hello-once")
    assert result.output == "Removed, nothing to resume: hello-once\n"
    assert project.paused() == {"heartbeat"}


# ---------------------------------------------------------------------------- jobs managed at runtime


def stored_job(project: Project, name: str) -> JobRecord | None:
    store = project.store()
    try:
        return store.get_job(name)
    finally:
        store.close()


def stored(project: Project, name: str) -> JobRecord:
    record = stored_job(project, name)
    assert record is not None, f"job {name!r} is not stored"
    return record


def test_add_update_and_remove_a_runtime_job(cli: click.Group, project: Project) -> None:
    result = run(
        cli,
        project,
        "add",
        "sync-crm",
        "--task",
        "crm.sync",
        "--schedule",
        "every 15 minutes",
        "--tz",
        "Asia/Tokyo",
        "--tag",
        "crm,io",
        "--args",
        '[1, "a"]',
        "--kwargs",
        '{"full": true}',
        "--queue",
        "low",
        "--option",
        "priority=5",
        "--option",
        "routing_key=crm.sync",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "added sync-crm (runtime): crm.sync, every 15 minutes in Asia/Tokyo, Running, next at "
    )
    record = stored(project, "sync-crm")
    assert (record.owner, record.task, record.timezone, record.tags) == (
        "runtime",
        "crm.sync",
        "Asia/Tokyo",
        ("crm", "io"),
    )
    assert (record.args, record.kwargs) == ((1, "a"), {"full": True})
    assert record.options == {"queue": "low", "priority": 5, "routing_key": "crm.sync"}

    result = run(cli, project, "update", "sync-crm", "--schedule", "30", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["schedule"], payload["owner"], payload["tags"]) == ("every 30 seconds", "runtime", ["crm", "io"])
    updated = stored(project, "sync-crm")
    assert updated.anchor >= record.anchor and updated.task == "crm.sync" and updated.args == (1, "a")

    result = run(cli, project, "status", "--json")
    owners = {job["name"]: job["owner"] for job in json.loads(result.stdout)["jobs"]}
    assert owners == {
        "cleanup": "config",
        "heartbeat": "config",
        "nightly-report": "config",
        "sync-crm": "runtime",
        "tokyo-lunch": "config",
    }

    result = run(cli, project, "remove", "sync-crm")
    assert (result.exit_code, result.stdout) == (0, "removed sync-crm; its history stays until pruned\n")
    assert stored(project, "sync-crm").removed


def test_the_status_table_shows_the_owner(cli: click.Group, project: Project) -> None:
    assert run(cli, project, "add", "extra", "--task", "t.extra", "--schedule", "every minute").exit_code == 0
    result = run(cli, project, "status")
    lines = result.output.splitlines()
    assert "Owner" in next(line for line in lines if "State" in line)
    assert next(line for line in lines if " extra " in line).split("│")[10].strip() == "runtime"
    assert next(line for line in lines if " heartbeat " in line).split("│")[10].strip() == "config"


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (
            ("add", "bad", "--task", "t", "--schedule", "every 5 minuts"),
            2,
            "runtime: job 'bad': bad timing: expected 'days', 'hours', 'minutes', 'seconds' or 'weeks', got 'minuts' "
            "(in 'every 5 minuts' at column 9)",
        ),
        (
            ("add", "heartbeat", "--task", "t", "--schedule", "60"),
            1,
            "cannot add job at runtime: 'heartbeat' is taken by a configured job (beat_schedule); configured jobs are "
            "changed in their source",
        ),
        (("add", "bad", "--task", "t", "--schedule", "60", "--args", "{"), 2, None),
        (
            ("add", "bad", "--task", "t", "--schedule", "60", "--option", "priority"),
            2,
            "--option takes KEY=VALUE, got 'priority'",
        ),
        (
            ("update", "heartbeat", "--task", "t"),
            2,
            "job 'heartbeat' is configured (beat_schedule), not added at runtime: change it in its configuration and "
            "restart beat (at runtime it can be paused, resumed, enabled and disabled)",
        ),
        (("update", "hartbeat", "--task", "t"), 1, "no such job: hartbeat (did you mean heartbeat?)"),
        (("remove", "cleanup"), 2, None),
    ],
)
def test_runtime_job_commands_fail_in_one_line(
    cli: click.Group, project: Project, args: tuple[str, ...], exit_code: int, message: str | None
) -> None:
    result = run(cli, project, *args)
    if message is None:
        assert result.exit_code == exit_code, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    else:
        assert_one_line_error(result, exit_code, message)
    assert stored_job(project, "bad") is None


def test_enable_and_disable_by_name_and_tags(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "disable", "heartbeat", "cleanup")
    assert (result.exit_code, result.stdout) == (0, "disabled: heartbeat, cleanup\n")
    assert not stored(project, "heartbeat").enabled
    result = run(cli, project, "enable", "--tags", "slow,fast")
    assert (result.exit_code, result.stdout) == (
        0,
        "enabled: cleanup, heartbeat; already enabled: nightly-report (jobs with any of the tags slow, fast)\n",
    )
    assert stored(project, "heartbeat").enabled and stored(project, "cleanup").enabled


def test_run_prints_the_task_id_of_a_manual_run_that_history_shows(cli: click.Group, project: Project) -> None:
    result = run(cli, project, "run", "heartbeat")
    assert result.exit_code == 0, result.output
    task_id = result.stdout.strip()
    assert str(uuid.UUID(task_id)) == task_id
    store = project.store()
    try:
        manual = [(e.task_id, e.confirmed, e.manual) for e in store.history("heartbeat")]
    finally:
        store.close()
    assert manual == [(task_id, False, True)]  # waiting for the active beat
    history = run(cli, project, "history", "heartbeat")
    assert history.exit_code == 0, history.output
    [row] = [line for line in history.stdout.splitlines() if task_id in line]
    assert " manual " in row and "requested" in row
    assert stored(project, "heartbeat").total_run_count == 0

    as_json = json.loads(run(cli, project, "run", "heartbeat", "--json").stdout)
    assert (as_json["job"], as_json["manual"], as_json["state"]) == ("heartbeat", True, "requested")
    assert_one_line_error(run(cli, project, "run", "heartbaet"), 1, "no such job: heartbaet (did you mean heartbeat?)")


def test_export_prints_a_schedule_file_that_check_accepts(cli: click.Group, project: Project) -> None:
    assert run(cli, project, "add", "sync-crm", "--task", "crm.sync", "--schedule", "every 15 minutes").exit_code == 0
    result = run(cli, project, "export", "--owner", "runtime")
    assert result.exit_code == 0, result.output
    assert "\n  - name: sync-crm\n    task: crm.sync\n    schedule:\n      timing: every 15 minutes\n" in result.stdout
    exported = project.folder / "runtime.yaml"
    exported.write_text(result.stdout)
    checked = run(cli, project, "check", str(exported))
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("OK: 5 jobs (4 in beat_schedule, 1 in ")
    everything = run(cli, project, "export")
    assert everything.stdout.count("  - name: ") == 5
