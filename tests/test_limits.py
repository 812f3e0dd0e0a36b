"""Limits at the door (README "Limits"): numbers, zone names, YAML size, nesting and aliases, echoed input,
the shortest interval. Each is refused with a located one-line problem, and the rest of the input is still checked.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery

from celery_orchestra import ConfigError, TimeZoneError, TimingError, timing
from celery_orchestra.errors import ECHO_LIMIT, EXCERPT_LIMIT, ConfigProblem, quoted
from celery_orchestra.jobs import yaml_files
from celery_orchestra.jobs.beat_schedule import definitions_from_beat_schedule
from celery_orchestra.jobs.config import collect_definitions, load_definitions
from celery_orchestra.jobs.yaml_files import MAX_SCHEDULE_FILE_BYTES, definitions_from_yaml, definitions_from_yaml_text
from celery_orchestra.jobs.yaml_loader import MAX_DEPTH, MAX_NODES, PythonScheduleLoader, ScheduleLoader
from celery_orchestra.settings import SettingsError, read_settings
from celery_orchestra.timing.parser import MAX_DIGITS
from celery_orchestra.timing.zones import MAX_ZONE_NAME_LENGTH, app_zone, resolve_zone

GOOD_JOB = """
  - name: good
    task: t
    schedule: {timing: every day at 09:00}
"""


def yaml_jobs(*jobs: str) -> str:
    """A schedule file with one block holding ``jobs`` (each the YAML of one list item, indented by 2)."""
    return "- schedules:\n" + "".join(job.strip("\n") + "\n" for job in jobs)


def job(name: str, body: str) -> str:
    return f"  - name: {name}\n    task: t\n    schedule: {{timing: every day at 09:00}}\n    {body}\n"


@pytest.fixture(params=["C", "Python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each YAML test runs with libyaml's parser (when installed) and with the pure-Python fallback."""
    if request.param == "C":
        if not hasattr(yaml, "CSafeLoader"):
            pytest.skip("PyYAML without libyaml")
        monkeypatch.setattr(yaml_files, "ScheduleLoader", ScheduleLoader)
    else:
        monkeypatch.setattr(yaml_files, "ScheduleLoader", PythonScheduleLoader)
    return str(request.param)


def read(text: str) -> tuple[list[str], list[ConfigProblem]]:
    definitions, problems = definitions_from_yaml_text(text, "schedule.yaml")
    return [definition.name for definition in definitions], problems


# ---------------------------------------------------------------------------- digits in timings


@pytest.mark.parametrize(
    ("template", "what"),
    [
        ("every {n} seconds", "a count"),
        ("every 1.{n} hours", "a fraction"),
        ("every hour at {n} minutes", "a minute"),
        ("every minute at {n} seconds", "a second"),
        ("every day at {n} hours", "an hour"),
        ("every {n} days at 10:00", "a day step"),
        ("every {n}:00:00", "H:MM:SS"),
        ("every day at 10:{n}", "a clock minute"),
        ("every day at {n} am", "N am"),
    ],
)
@pytest.mark.parametrize("digits", [MAX_DIGITS + 1, 5000])
def test_numbers_with_too_many_digits_are_a_located_timing_error(template: str, what: str, digits: int) -> None:
    number = "1" * digits
    text = template.format(n=number)
    with pytest.raises(TimingError) as info:
        timing(text, "UTC")
    assert info.value.reason == f"a number may have at most {MAX_DIGITS} digits, not {digits}", what
    assert (info.value.line, info.value.column) == (1, text.index(number) + 1)


def test_the_longest_number_any_field_needs_still_parses() -> None:
    # 100 years in seconds (the longest duration) has 10 digits.
    assert len(str(100 * 366 * 86400)) <= MAX_DIGITS
    assert timing("every 3000000000 seconds", "UTC").expression == "every 34722 days 5 hours and 20 minutes"


def test_a_yaml_timing_with_too_many_digits_is_located_and_the_other_jobs_are_still_checked(loader: str) -> None:
    text = yaml_jobs(
        job("long", "tags: [a]").replace("every day at 09:00", "every " + "9" * 5000 + " seconds"),
        GOOD_JOB,
        job("bad-task", "enabled: maybe"),
    )
    names, problems = read(text)
    assert names == ["good"]
    assert [(p.line, p.column, p.job) for p in problems] == [(4, 30, "long"), (12, 14, "bad-task")]
    assert problems[0].message == f"bad timing: a number may have at most {MAX_DIGITS} digits, not 5000"


# ---------------------------------------------------------------------------- zone names


LONG_ZONE = "Europe/" * 300 + "Berlin"


def test_a_zone_name_of_hundreds_of_parts_is_a_time_zone_error_not_a_recursion_error() -> None:
    with pytest.raises(TimeZoneError) as info:
        resolve_zone(LONG_ZONE)
    assert f"is {len(LONG_ZONE)} characters long; at most {MAX_ZONE_NAME_LENGTH}" in str(info.value)
    assert len(str(info.value)) < 3 * ECHO_LIMIT


def test_a_zone_name_at_the_length_limit_is_looked_up_as_usual() -> None:
    name = "a/" * ((MAX_ZONE_NAME_LENGTH - 1) // 2) + "x"
    assert len(name) == MAX_ZONE_NAME_LENGTH
    with pytest.raises(TimeZoneError, match="unknown time zone"):
        resolve_zone(name)


def test_every_way_in_refuses_a_long_zone_name(loader: str) -> None:
    with pytest.raises(TimeZoneError):
        timing("every day at 10:00", LONG_ZONE)
    with pytest.raises(TimeZoneError):
        app_zone(Celery("zones", set_as_current=False, config_source={"timezone": LONG_ZONE}))
    _, problems = definitions_from_beat_schedule({"j": {"task": "t", "schedule": 60, "timezone": LONG_ZONE}})
    assert [(p.job, p.message.split(":")[0]) for p in problems] == [("j", "bad time zone")]
    names, problems = read(
        yaml_jobs(job("zoned", "tags: [a]").replace("{timing", f"{{timezone: '{LONG_ZONE}', timing"), GOOD_JOB)
    )
    assert names == ["good"]
    assert [(p.line, p.job) for p in problems] == [(4, "zoned")]
    assert "characters long" in problems[0].message


# ---------------------------------------------------------------------------- YAML nesting


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 40, 300, 900])
def test_args_nested_too_deeply_are_a_located_problem_naming_the_job(loader: str, depth: int) -> None:
    nested = "[" * depth + "1" + "]" * depth
    names, problems = read(yaml_jobs(job("deep", f"args: {nested}"), GOOD_JOB))
    assert names == ["good"]
    assert len(problems) == 1, [p.format() for p in problems]
    problem = problems[0]
    assert problem.job == "deep"
    assert problem.message.startswith(f"'args' is nested too deeply: at most {MAX_DEPTH} levels")
    # At the first bracket past the limit: "    args: " is 10 characters.
    assert (problem.line, problem.column) == (5, 10 + MAX_DEPTH + 1)


def test_args_at_the_depth_limit_load(loader: str) -> None:
    nested = "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH
    definitions, problems = definitions_from_yaml_text(yaml_jobs(job("deep", f"args: {nested}")), "s.yaml")
    assert problems == []
    value: Any = definitions[0].args
    for _ in range(MAX_DEPTH - 1):
        (value,) = value
    assert value == [1]


def test_kwargs_nested_deeply_through_aliases_are_refused(loader: str) -> None:
    chain = "".join(f"      l{i}: &l{i} [*l{i - 1}]\n" for i in range(1, MAX_DEPTH + 2))
    text = yaml_jobs(job("aliased", "kwargs:\n      l0: &l0 [1]\n" + chain.rstrip("\n")))
    names, problems = read(text)
    assert names == []
    assert [(p.job, p.message.split(":")[0]) for p in problems] == [
        ("aliased", f"'kwargs'['l{MAX_DEPTH}'] is nested too deeply")  # l0 is 1 level deep, l32 is 33
    ]


@pytest.mark.parametrize("style", ["flow", "block"])
def test_nesting_thousands_deep_is_refused_quickly_with_its_place(loader: str, style: str) -> None:
    depth = 200_000
    nested = "[" * depth + "]" * depth if style == "flow" else "\n      " + "- " * depth + "1"
    started = time.monotonic()
    names, problems = read(yaml_jobs(job("deep", f"args: {nested}"), GOOD_JOB))
    assert time.monotonic() - started < 10
    assert names == []
    assert len(problems) == 1
    assert problems[0].line is not None and problems[0].line >= 4
    assert problems[0].message == "invalid YAML: lists and mappings nested more than 1000 levels deep"
    assert len(problems[0].format()) < 3 * EXCERPT_LIMIT


# ---------------------------------------------------------------------------- YAML aliases

BOMB = """\
- schedules:
  - name: bomb
    task: t
    schedule: {timing: every day at 10:00}
    kwargs:
      a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
      d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
      f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
      g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
      h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""


def test_an_alias_bomb_is_refused_at_the_job_before_anything_is_built(loader: str) -> None:
    assert len(BOMB) < 700
    started = time.monotonic()
    names, problems = read(BOMB + GOOD_JOB.lstrip("\n"))
    assert time.monotonic() - started < 5
    assert names == ["good"]
    assert [(p.line, p.column, p.job) for p in problems] == [(5, 5, "bomb")]
    assert problems[0].message.startswith(f"'kwargs' expands to more than {MAX_NODES:,} YAML nodes")


def test_an_alias_inside_what_it_names_is_refused(loader: str) -> None:
    names, problems = read(yaml_jobs(job("itself", "args: &s [1, *s]"), GOOD_JOB))
    assert names == ["good"]
    assert [(p.line, p.job) for p in problems] == [(5, "itself")]
    assert "an alias inside what it names never ends" in problems[0].message


def test_aliases_used_within_the_limit_load_as_before(loader: str) -> None:
    text = yaml_jobs(job("shared", "kwargs: {a: &x [1, 2], b: *x}"))
    definitions, problems = definitions_from_yaml_text(text, "s.yaml")
    assert problems == []
    assert definitions[0].kwargs == {"a": [1, 2], "b": [1, 2]}


def test_the_node_limit_counts_every_job_of_the_file(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_files, "MAX_NODES", 40)  # a job here is 11 nodes: the fourth passes 40
    jobs = [job(f"j{i}", "enabled: true") for i in range(6)]
    names, problems = read(yaml_jobs(*jobs))
    assert names == ["j0", "j1", "j2"]
    assert [(p.line, p.job) for p in problems] == [(14, "j3")]
    assert problems[0].message.startswith("the file has more than 40 YAML nodes by this job")


# ---------------------------------------------------------------------------- schedule files: size, type, loader


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(MAX_SCHEDULE_FILE_BYTES + 1)  # sparse: nothing is written
    started = time.monotonic()
    definitions, problems = definitions_from_yaml(path)
    assert time.monotonic() - started < 1
    assert definitions == []
    assert [p.format() for p in problems] == [
        f"{path}: schedule file is too large ({MAX_SCHEDULE_FILE_BYTES + 1:,} bytes): "
        f"at most {MAX_SCHEDULE_FILE_BYTES:,} bytes (10 MiB)"
    ]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_unread() -> None:
    definitions, problems = definitions_from_yaml("/dev/zero")
    assert definitions == []
    assert [p.format() for p in problems] == [
        "/dev/zero: schedule file is not a regular file (a device, pipe or socket is never read)"
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="needs mkfifo")
def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "schedule.yaml"
    os.mkfifo(path)
    _, problems = collect_definitions(None, [str(path)])
    assert [p.message for p in problems] == [
        "schedule file is not a regular file (a device, pipe or socket is never read)"
    ]


def test_libyaml_is_used_when_installed() -> None:
    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML without libyaml")
    assert issubclass(yaml_files.ScheduleLoader, yaml.CSafeLoader)


def test_python_tags_are_refused_by_either_loader(loader: str) -> None:
    names, problems = read(yaml_jobs(job("evil", "args: [!!python/object/apply:os.system ['true']]")))
    assert names == []
    assert [(p.line, p.job) for p in problems] == [(5, "evil")]
    assert "could not determine a constructor" in problems[0].message


# ---------------------------------------------------------------------------- echoed input


def test_a_megabyte_of_input_is_echoed_as_a_few_dozen_characters(loader: str) -> None:
    big = "x" * 1_000_000
    text = yaml_jobs(
        f"""
  - name: "{big}"
    task: t
    ? "{big}"
    : 1
    schedule: {{timing: "every {big}", timezone: "{big}"}}
    tags: ["{big}", 3]
"""
    )
    _, problems = read(text)
    assert len(problems) == 4
    for problem in problems:
        shown = problem.format()
        assert len(shown) < 1000, shown[:300]
        assert "\u2026" in shown
    _, problems = definitions_from_beat_schedule({big: {"task": big, "schedule": f"every {big}", big: 1}})
    assert problems
    assert all(len(problem.format()) < 1000 for problem in problems)
    with pytest.raises(TimingError) as info:
        timing(f"every {big}")
    assert len(str(info.value)) < 1000


def test_quoted_cuts_long_input_and_keeps_short_input_whole() -> None:
    assert quoted("short") == "'short'"
    long = quoted("y" * 1000)
    assert len(long) == ECHO_LIMIT
    assert long.endswith("\u2026")
    assert quoted(10**5000) == "<a number of 16610 bits>"


# ---------------------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    "schedule", ["every 0.000001 seconds", 1e-6, timedelta(microseconds=1), "every 0.05 seconds", 0.09]
)
def test_an_interval_shorter_than_the_minimum_is_refused_with_the_jobs_name(schedule: object) -> None:
    app = Celery("limits", set_as_current=False)
    app.conf.beat_schedule = {"flood": {"task": "t", "schedule": schedule}, "ok": {"task": "t", "schedule": 0.5}}
    with pytest.raises(ConfigError) as info:
        load_definitions(app)
    assert [(p.source, p.job) for p in info.value.problems] == [("beat_schedule", "flood")]
    assert "more often than orchestra_min_interval (0.1 seconds) allows" in info.value.problems[0].message


def test_the_minimum_interval_is_a_setting_and_check_and_beat_agree(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml_jobs(job("fast", "tags: [a]").replace("every day at 09:00", "every 0.5 seconds")))
    _, problems = collect_definitions({"slow": {"task": "t", "schedule": 0.5}}, [str(path)], min_interval=1.0)
    assert [(p.source, p.line, p.job) for p in problems] == [("beat_schedule", None, "slow"), (str(path), 2, "fast")]
    app = Celery("limits", set_as_current=False)
    app.conf.update(orchestra_min_interval=0.5, orchestra_schedule_files=[str(path)])
    assert [d.name for d in load_definitions(app)] == ["fast"]
    assert read_settings(app.conf).min_interval == 0.5


@pytest.mark.parametrize("value", [-1, float("nan"), "fast", 10**400])
def test_a_bad_minimum_interval_setting_is_refused(value: object) -> None:
    with pytest.raises(SettingsError, match="orchestra_min_interval"):
        read_settings({"orchestra_min_interval": value})


@pytest.mark.parametrize("number", [10**400, -(10**400)])
def test_a_huge_beat_schedule_number_is_refused_with_the_jobs_name(number: int) -> None:
    _, problems = definitions_from_beat_schedule({"huge": {"task": "t", "schedule": number}})
    assert [(p.job, p.message) for p in problems] == [
        ("huge", "bad schedule: an interval of more than 8.64e+13 seconds is longer than Python can represent")
    ]
