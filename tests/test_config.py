"""Configuration loading: celery_orchestra.config."""

from __future__ import annotations

import pickle
import textwrap
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.schedules import crontab, schedule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_orchestra.errors import ConfigError, ConfigProblem
from celery_orchestra.jobs.beat_schedule import definitions_from_beat_schedule
from celery_orchestra.jobs.codec import kind_of_data, schedule_to_data
from celery_orchestra.jobs.config import load_definitions
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.jobs.yaml_files import definitions_from_yaml, definitions_from_yaml_text
from celery_orchestra.timing.schedule import timing
from tests.expressions import PREDECESSOR_EXPRESSIONS

DATA = Path(__file__).parent / "data" / "config"

README_TIMINGS = list(PREDECESSOR_EXPRESSIONS)
# What pyorchestra made of each (its research notes, table 1.2), in our kinds.
README_KINDS = ["cyclic"] * 3 + ["weekly"] + ["once"] * 3 + ["daily", "minutely", "hourly"] + ["daily"] * 3
README_KINDS += ["once"] * 10


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load_text(text: str) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    return definitions_from_yaml_text(yaml_text(text), "schedule.yaml")


def where(problems: list[ConfigProblem]) -> list[tuple[int | None, int | None, str | None]]:
    return [(p.line, p.column, p.job) for p in problems]


def only_problem(text: str) -> ConfigProblem:
    definitions, problems = load_text(text)
    assert definitions == []
    assert len(problems) == 1, [p.format() for p in problems]
    return problems[0]


def app_with(**settings: Any) -> Celery:
    app = Celery("config-test", set_as_current=False)
    app.conf.update(settings)
    return app


# ---------------------------------------------------------------------------- YAML: what loads


def test_pyorchestra_readme_example_loads() -> None:
    path = DATA / "readme_example.yaml"
    definitions, problems = definitions_from_yaml(path)
    assert problems == []
    assert definitions == [
        JobDefinition(
            name="short_task_every_1_second",
            task="tasks.short_task",
            schedule_data={"type": "timing", "expression": "every 1 second"},
            timezone="Europe/Paris",
            options={"queue": "background-jobs"},
            tags=("cpu", "fast"),
            enabled=False,
            source=f"{path}:5",
        )
    ]


def test_every_readme_timing_expression_loads() -> None:
    definitions, problems = definitions_from_yaml(DATA / "readme_timings.yaml")
    assert problems == []
    assert [d.name for d in definitions] == [f"timing-{i:02d}" for i in range(1, 24)]
    for definition, written, kind in zip(definitions, README_TIMINGS, README_KINDS, strict=True):
        assert definition.task == "tasks.long_task"
        assert definition.timezone == "Europe/Berlin"
        assert definition.schedule_data == schedule_to_data(written), written
        assert kind_of_data(definition.schedule_data) == kind, written
    expressions = {d.name: d.schedule_data["expression"] for d in definitions}
    assert expressions["timing-02"] == "every 2 days"
    assert expressions["timing-05"] == "once on Tuesday at 13:11:00"
    assert expressions["timing-16"] == "once at 09:13:00"
    assert expressions["timing-18"] == "once at 2023-04-01 09:13:11"


def test_unquoted_times_are_read_as_written_not_as_yaml_numbers_or_dates() -> None:
    # YAML 1.1 reads 11:23:00 as the base-60 integer 40980 and the last one as a timestamp.
    definitions, problems = load_text(
        """
        - schedules:
            - {name: a, task: t, schedule: {timing: 11:23:00}}
            - {name: b, task: t, schedule: {timing: 9:13}}
            - {name: c, task: t, schedule: {timing: 2023-04-01 09:13:11}}
            - {name: d, task: t, schedule: {timing: every day at 9:15}}
        """
    )
    assert problems == []
    assert [d.schedule_data["expression"] for d in definitions] == [
        "once at 11:23:00",
        "once at 09:13:00",
        "once at 2023-04-01 09:13:11",
        "every day at 09:15:00",
    ]


def test_block_without_module_sends_the_task_name_as_written() -> None:
    definitions, problems = load_text(
        """
        - schedules:
            - name: report
              task: proj.tasks.report
              schedule: {timing: every day at 07:00}
        """
    )
    assert problems == []
    assert definitions[0].task == "proj.tasks.report"
    assert definitions[0].source == "schedule.yaml:2"


def test_defaults() -> None:
    definitions, problems = load_text(
        """
        - module: tasks
          schedules:
            - name: plain
              task: t
              schedule:
                timing: every 5 minutes
              additional_options:
              tags:
        """
    )
    assert problems == []
    (definition,) = definitions
    assert definition.enabled is True
    assert definition.timezone is None
    assert (definition.args, definition.kwargs, definition.options, definition.tags) == ((), {}, {}, ())


def test_args_kwargs_options_tags_and_zone_spellings() -> None:
    definitions, problems = load_text(
        """
        - module: tasks
          schedules:
            - name: full
              task: t
              enabled: true
              schedule:
                timing: every Monday at 03:15:00
                timezone: europe/paris
              args: [1, "two", [3]]
              kwargs: {depth: 2, when: 2024-05-01}
              additional_options: {queue: gpu, priority: 5}
              tags: [gpu, nightly, gpu]
            - name: utc
              task: t
              schedule: {timing: every day at 09:00, timezone: utc}
        """
    )
    assert problems == []
    full, utc = definitions
    assert full.args == (1, "two", [3])
    assert full.kwargs["depth"] == 2
    assert str(full.kwargs["when"]) == "2024-05-01"
    assert full.options == {"queue": "gpu", "priority": 5}
    assert full.tags == ("gpu", "nightly")
    assert full.timezone == "Europe/Paris"
    assert utc.timezone == "UTC"


def test_arguments_in_additional_options_move_to_the_job() -> None:
    # pyorchestra had no args/kwargs keys: its users passed them through additional_options.
    definitions, problems = load_text(
        """
        - module: tasks
          schedules:
            - name: legacy
              task: t
              schedule: {timing: every hour at 05:00}
              additional_options:
                queue: q
                args: [1, 2]
                kwargs: {x: 1}
        """
    )
    assert problems == []
    assert (definitions[0].args, definitions[0].kwargs, definitions[0].options) == ((1, 2), {"x": 1}, {"queue": "q"})


def test_yaml_merge_keys_share_settings_between_jobs() -> None:
    definitions, problems = load_text(
        """
        - module: tasks
          schedules:
            - &base
              name: a
              task: t
              schedule: {timing: every day at 09:00}
              tags: [x]
            - <<: *base
              name: b
        """
    )
    assert problems == []
    a, b = definitions
    assert (b.name, b.task, b.tags, b.schedule_data) == ("b", a.task, a.tags, a.schedule_data)
    assert b.source == "schedule.yaml:8"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "---\n", "[]\n"])
def test_empty_file_has_no_jobs_and_no_problems(text: str) -> None:
    assert definitions_from_yaml_text(text, "empty.yaml") == ([], [])


# ---------------------------------------------------------------------------- YAML: where errors are


def test_several_errors_are_reported_at_once_with_positions() -> None:
    path = DATA / "many_errors.yaml"
    definitions, problems = definitions_from_yaml(path)
    assert definitions == []
    assert {p.source for p in problems} == {str(path)}
    assert where(problems) == [
        (8, 31, "nightly"),
        (9, 19, "nightly"),
        (10, 13, "nightly"),
        (13, 16, "hourly"),
        (15, 27, "hourly"),
        (16, 7, "hourly"),
        (17, 13, "nightly"),
        (21, 7, None),
        (23, 23, None),
    ]
    messages = [p.message for p in problems]
    assert messages[0] == "bad timing: the hour must be below 24 in 25:00"
    assert messages[1].startswith("bad time zone: unknown time zone 'Mars/Olympus_Mons'")
    assert messages[2] == "'tags' must be a list of text, got the text 'reports'"
    assert messages[3] == "'enabled' must be true or false, got the text 'sometimes'"
    assert messages[4] == "'additional_options' must be a mapping, got the text 'background'"
    assert "unknown key 'tgas'" in messages[5] and "'tags'" in messages[5]
    assert messages[6] == f"job name defined twice: here and at {path}:5 (names must be unique)"
    assert messages[7] == "the job has no 'name' (every job needs a unique name)"
    assert messages[8] == "bad timing: an interval must be longer than zero"


def test_problem_format_shows_the_line_and_a_caret_under_the_bad_character() -> None:
    problem = only_problem(
        """
        - module: reports
          schedules:
            - name: nightly
              task: build
              schedule:
                timing: "every day at foo"
        """
    )
    assert problem.format().splitlines() == [
        "schedule.yaml:6:31: job 'nightly': bad timing: " + problem.message.removeprefix("bad timing: "),
        '            timing: "every day at foo"',
        "    " + " " * 30 + "^",  # under the 'f' of 'foo', column 31
    ]
    assert "got 'foo'" in problem.message
    assert str(problem) == problem.format()


@pytest.mark.parametrize(
    ("value", "column"),
    [
        ('"every day at foo"', 31),  # double-quoted: +1 for the quote
        ("'every day at foo'", 31),  # single-quoted
        ("every day at foo", 30),  # plain
        ('"every day at f\\u006Fo"', 17),  # an escape: the text differs from the file, so the scalar start
    ],
)
def test_bad_timing_column_points_inside_the_file(value: str, column: int) -> None:
    problem = only_problem(
        f"""
        - schedules:
            - name: nightly
              task: build
              schedule:
                timing: {value}
        """
    )
    assert (problem.line, problem.column) == (5, column)


def test_bad_timing_in_a_flow_mapping() -> None:
    problem = only_problem(
        """
        - schedules:
            - {name: quick, task: t, schedule: {timing: "every 5 minuts"}}
        """
    )
    # "every 5 minuts": the parser points at column 9 ('minuts'); the quote opens at column 49.
    assert (problem.line, problem.column, problem.job) == (2, 58, "quick")
    assert problem.message.startswith("bad timing: expected ")


def test_bad_timing_in_a_literal_block_points_at_its_line() -> None:
    problem = only_problem(
        """
        - schedules:
            - name: nightly
              task: t
              schedule:
                timing: |
                  every day at foo
        """
    )
    assert (problem.line, problem.column) == (6, 24)


def test_bad_time_zone() -> None:
    problem = only_problem(
        """
        - schedules:
            - name: paris
              task: t
              schedule:
                timing: every day at 09:00
                timezone: Europe/Pariss
        """
    )
    assert (problem.line, problem.column, problem.job) == (6, 19, "paris")
    assert "unknown time zone 'Europe/Pariss'" in problem.message
    assert "'Europe/Paris'" in problem.message  # the suggestion


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("tags: cpu", (5, 13, "'tags' must be a list of text, got the text 'cpu'")),
        ("tags: [cpu, 3]", (5, 19, "each tag must be text, got the number 3")),
        ("enabled: yes please", (5, 16, "'enabled' must be true or false, got the text 'yes please'")),
        ("enabled: 1", (5, 16, "'enabled' must be true or false, got the number 1")),
        ("additional_options: [queue]", (5, 27, "'additional_options' must be a mapping, got a list")),
        ("args: {a: 1}", (5, 13, "'args' must be a list, got a mapping")),
        ("kwargs: [1]", (5, 15, "'kwargs' must be a mapping, got a list")),
        ("kwargs: {1: one}", (5, 16, "keys in 'kwargs' must be text, got the number 1")),
    ],
)
def test_wrong_types_say_what_and_where(line: str, expected: tuple[int, int, str]) -> None:
    problem = only_problem(
        f"""
        - schedules:
            - name: typed
              task: t
              schedule: {{timing: every day at 09:00}}
              {line}
        """
    )
    assert (problem.line, problem.column, problem.message) == expected
    assert problem.job == "typed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """
            - schedules:
                - task: t
                  schedule: {timing: every day at 09:00}
            """,
            (2, 7, None, "the job has no 'name' (every job needs a unique name)"),
        ),
        (
            """
            - schedules:
                - name: ""
                  task: t
                  schedule: {timing: every day at 09:00}
            """,
            (2, 13, None, "'name' must not be empty"),
        ),
        (
            """
            - schedules:
                - name: 2024
                  task: t
                  schedule: {timing: every day at 09:00}
            """,
            (2, 13, None, "'name' must be text, got the number 2024"),
        ),
        (
            """
            - schedules:
                - name: no-task
                  schedule: {timing: every day at 09:00}
            """,
            (2, 7, "no-task", "the job has no 'task' (the task function's name)"),
        ),
        (
            """
            - schedules:
                - name: no-schedule
                  task: t
            """,
            (2, 7, "no-schedule", "the job has no 'schedule' (a mapping with 'timing')"),
        ),
        (
            """
            - schedules:
                - name: no-timing
                  task: t
                  schedule: {timezone: UTC}
            """,
            (4, 17, "no-timing", "'schedule' has no 'timing' (e.g. timing: \"every day at 09:00\")"),
        ),
        (
            """
            - schedules:
                - name: flat
                  task: t
                  schedule: every day at 09:00
            """,
            (4, 17, "flat", "'schedule' must be a mapping, got the text 'every day at 09:00'"),
        ),
    ],
)
def test_missing_or_empty_required_keys(text: str, expected: tuple[Any, ...]) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.column, problem.job, problem.message) == expected


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("tagz: [a]", "did you mean 'tags'?"),
        ("options: {queue: q}", "did you mean 'additional_options'?"),
        ("timezone: UTC", "put it under 'schedule:' next to 'timing'"),
        ("colour: blue", "expected one of: name, task, enabled, schedule, additional_options, tags, args, kwargs"),
    ],
)
def test_unknown_job_keys_are_errors_with_a_hint(key: str, hint: str) -> None:
    problem = only_problem(
        f"""
        - schedules:
            - name: j
              task: t
              schedule: {{timing: every day at 09:00}}
              {key}
        """
    )
    name = key.split(":")[0]
    assert (problem.line, problem.column) == (5, 7)
    assert problem.message == f"unknown key {name!r} in the job; {hint}"


def test_pyorchestra_resume_flag_is_explained() -> None:
    problem = only_problem(
        """
        - schedules:
            - name: j
              task: t
              schedule:
                timing: every 5 minutes
                resume_from_previous: true
        """
    )
    assert (problem.line, problem.column) == (6, 9)
    assert "always resumes" in problem.message


def test_duplicate_keys_are_reported() -> None:
    problem = only_problem(
        """
        - schedules:
            - name: j
              task: first
              schedule: {timing: every day at 09:00}
              task: second
        """
    )
    assert (problem.line, problem.column, problem.job) == (5, 7, "j")
    assert problem.message == "duplicate key 'task' in a job (first given on line 3)"


def test_arguments_given_twice_are_an_error() -> None:
    problem = only_problem(
        """
        - schedules:
            - name: j
              task: t
              schedule: {timing: every day at 09:00}
              args: [1]
              additional_options: {args: [2]}
        """
    )
    assert (problem.line, problem.column) == (6, 28)
    assert problem.message == "'args' is given both in the job and in 'additional_options'"


def test_duplicate_names_in_one_file_name_both_places() -> None:
    definitions, problems = load_text(
        """
        - module: a
          schedules:
            - {name: report, task: t, schedule: {timing: every day at 09:00}}
        - module: b
          schedules:
            - {name: report, task: t, schedule: {timing: every day at 10:00}}
        """
    )
    assert [d.task for d in definitions] == ["a.t"]
    (problem,) = problems
    assert (problem.line, problem.column, problem.job) == (6, 14, "report")
    assert problem.message == "job name defined twice: here and at schedule.yaml:3 (names must be unique)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: just a mapping\n",
            (1, 1, "a schedule file must be a list of blocks (each with 'schedules'), got a mapping"),
        ),
        ("- name: b\n", (1, 3, "schedule block 1 has no 'schedules' list")),
        ("- schedules: {name: j}\n", (1, 14, "'schedules' must be a list of jobs, got a mapping")),
        ("- module: 7\n  schedules: []\n", (1, 11, "the block's 'module' must be text, got the number 7")),
        (
            "- schedule: []\n  schedules: []\n",
            (1, 3, "unknown key 'schedule' in schedule block 1; jobs go in the block's 'schedules' list"),
        ),
        ("- just text\n", (1, 3, "schedule block 1 must be a mapping, got the text 'just text'")),
    ],
)
def test_block_level_errors(text: str, expected: tuple[int, int, str]) -> None:
    _, problems = definitions_from_yaml_text(text, "schedule.yaml")
    assert [(p.line, p.column, p.message) for p in problems] == [expected]


def test_jobs_of_a_block_with_a_bad_module_are_checked_but_not_loaded() -> None:
    definitions, problems = load_text(
        """
        - module: [tasks]
          schedules:
            - {name: good, task: t, schedule: {timing: every day at 09:00}}
            - {name: bad, task: t, schedule: {timing: every day at 29:00}}
        """
    )
    assert definitions == []
    assert [(p.line, p.job) for p in problems] == [(1, None), (4, "bad")]


def test_yaml_syntax_error_is_a_problem_with_position() -> None:
    problem = only_problem(
        """
        - name: block
          schedules:
            - name: a
              task: t
             schedule: {timing: every day}
        """
    )
    assert (problem.line, problem.column, problem.job) == (5, 6, None)
    # libyaml (the C loader, when installed) and PyYAML word it differently; both say what they expected.
    assert problem.message.startswith("invalid YAML: ")
    assert "expected" in problem.message
    assert problem.format().splitlines()[1:] == ["         schedule: {timing: every day}", "         ^"]


def test_several_yaml_documents_are_an_error() -> None:
    _, problems = definitions_from_yaml_text("- schedules: []\n---\n- schedules: []\n", "two.yaml")
    assert [(p.line, p.column) for p in problems] == [(2, 1)]
    assert "expected a single document" in problems[0].message


def test_missing_file_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    definitions, problems = definitions_from_yaml("nowhere.yaml")
    assert definitions == []
    assert [(p.source, p.line, p.column, p.job) for p in problems] == [("nowhere.yaml", None, None, None)]
    assert problems[0].message == f"schedule file not found (looked for {tmp_path.resolve() / 'nowhere.yaml'})"


def test_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("- name: café\n".encode("latin-1"))
    _, problems = definitions_from_yaml(path)
    assert len(problems) == 1
    assert problems[0].message.startswith("schedule file is not UTF-8 text (byte 11")


def test_control_character_is_a_problem_with_position() -> None:
    _, problems = definitions_from_yaml_text("- schedules:\n  - name: a\x1fb\n", "ctl.yaml")
    assert [(p.line, p.column) for p in problems] == [(2, 12)]
    assert problems[0].message == "invalid YAML: the character U+001F is not allowed in a YAML file"
    assert problems[0].excerpt == "  - name: a\x1fb"


MUTATED_BASE = yaml_text(
    """
    - module: tasks
      schedules:
        - &job
          name: a
          task: t
          schedule: {timing: "every day at 09:00", timezone: UTC}
          args: [1, {deep: [2]}]
          additional_options: {queue: q, kwargs: {y: 2}}
          tags: [x]
        - <<: *job
          name: b
    """
)


@settings(max_examples=400, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    position=st.integers(0, len(MUTATED_BASE)),
    cut=st.integers(0, 8),
    insert=st.text(alphabet="-:{}[]&*!<>|'\" \n\tab1?,#%@\x00", max_size=6),
)
def test_any_edit_of_a_valid_file_gives_problems_not_exceptions(position: int, cut: int, insert: str) -> None:
    text = MUTATED_BASE[:position] + insert + MUTATED_BASE[position + cut :]
    definitions, problems = definitions_from_yaml_text(text, "edited.yaml")
    assert all(isinstance(p, ConfigProblem) and p.message for p in problems)
    if not problems:
        assert all(d.schedule_data["type"] == "timing" for d in definitions)


def test_the_unedited_fuzz_base_loads() -> None:
    definitions, problems = definitions_from_yaml_text(MUTATED_BASE, "base.yaml")
    assert problems == []
    assert [(d.name, d.args, d.kwargs, d.options) for d in definitions] == [
        ("a", (1, {"deep": [2]}), {"y": 2}, {"queue": "q"}),
        ("b", (1, {"deep": [2]}), {"y": 2}, {"queue": "q"}),
    ]
    a, b = definitions
    assert a.kwargs is not b.kwargs and a.args[1] is not b.args[1]  # no shared mutable values


# ---------------------------------------------------------------------------- beat_schedule


def test_beat_schedule_accepts_every_kind_of_schedule() -> None:
    definitions, problems = definitions_from_beat_schedule(
        {
            "text": {"task": "t.text", "schedule": "every day at 9:15", "timezone": "Europe/Paris"},
            "timing": {"task": "t.timing", "schedule": timing("every hour at 05:00")},
            "cron": {"task": "t.cron", "schedule": crontab(minute=0, hour="*/2"), "args": [1], "kwargs": {"a": 2}},
            "delta": {"task": "t.delta", "schedule": timedelta(minutes=5), "relative": True},
            "seconds": {"task": "t.seconds", "schedule": 30.0, "options": {"queue": "q"}},
            "interval": {"task": "t.interval", "schedule": schedule(60), "tags": ["a", "b"], "enabled": False},
        }
    )
    assert problems == []
    by_name = {d.name: d for d in definitions}
    assert list(by_name) == ["text", "timing", "cron", "delta", "seconds", "interval"]
    assert by_name["text"].schedule_data == {"type": "timing", "expression": "every day at 09:15:00"}
    assert by_name["text"].timezone == "Europe/Paris"
    assert by_name["timing"].schedule_data == {"type": "timing", "expression": "every hour at 05:00"}
    assert by_name["timing"].timezone is None
    assert by_name["cron"].schedule_data["hour"] == "*/2"
    assert (by_name["cron"].args, by_name["cron"].kwargs) == ((1,), {"a": 2})
    assert by_name["delta"].schedule_data == {"type": "interval", "seconds": 300.0, "relative": True}
    assert by_name["seconds"].options == {"queue": "q"}
    assert by_name["interval"].tags == ("a", "b")
    assert by_name["interval"].enabled is False
    assert all(d.source == "beat_schedule" for d in definitions)


def test_timing_with_its_own_zone_gives_the_job_its_zone() -> None:
    entry = {"task": "t", "schedule": timing("every day at 09:00", "Asia/Tokyo"), "timezone": "asia/tokyo"}
    definitions, problems = definitions_from_beat_schedule({"tokyo": entry, "own": {**entry, "timezone": None}})
    assert problems == []
    assert [d.timezone for d in definitions] == ["Asia/Tokyo", "Asia/Tokyo"]


def test_timing_zone_and_timezone_key_must_agree() -> None:
    _, problems = definitions_from_beat_schedule(
        {"clash": {"task": "t", "schedule": timing("every day at 09:00", "Asia/Tokyo"), "timezone": "UTC"}}
    )
    assert [(p.source, p.line, p.job) for p in problems] == [("beat_schedule", None, "clash")]
    assert problems[0].message.startswith("the schedule's own time zone 'Asia/Tokyo' disagrees with 'timezone' 'UTC'")


def test_bad_timing_in_beat_schedule_shows_the_expression_with_a_caret() -> None:
    _, problems = definitions_from_beat_schedule({"nightly": {"task": "t", "schedule": "every day at foo"}})
    (problem,) = problems
    lines = problem.format().splitlines()
    assert lines[0].startswith("beat_schedule: job 'nightly': bad timing: expected ")
    assert lines[1:] == ["    every day at foo", "                 ^"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"task": "t", "schedule": 5, "queue": "q"}, "unknown key 'queue' in the entry; expected one of: task, "),
        ({"task": "t", "schedule": 5, "tz": "UTC"}, "unknown key 'tz' in the entry; did you mean 'timezone'?"),
        ({"schedule": 5}, "missing 'task'"),
        ({"task": "t"}, "missing 'schedule'"),
        ({"task": "", "schedule": 5}, "'task' must be a task name, got str ('')"),
        ({"task": "t", "schedule": [5]}, "bad schedule: a schedule must be"),
        ({"task": "t", "schedule": 0}, "bad schedule: an interval must be longer than zero"),
        ({"task": "t", "schedule": 5, "timezone": "Nowhere/City"}, "bad time zone: unknown time zone 'Nowhere/City'"),
        ({"task": "t", "schedule": 5, "timezone": 2}, "'timezone' must be an IANA zone name, got int (2)"),
        (
            {"task": "t", "schedule": 5, "timezone": timezone(timedelta(hours=2))},
            "bad time zone: the time zone 'UTC+02:00' has no IANA name",
        ),
        ({"task": "t", "schedule": 5, "tags": "cpu"}, "'tags' must be a list of strings, got str ('cpu')"),
        ({"task": "t", "schedule": 5, "tags": ["cpu", 1]}, "'tags' must be a list of non-empty strings, got int"),
        ({"task": "t", "schedule": 5, "tags": {"cpu", 1}}, "'tags' must be a list of non-empty strings, got int"),
        ({"task": "t", "schedule": 5, "enabled": "yes"}, "'enabled' must be True or False, got str ('yes')"),
        ({"task": "t", "schedule": 5, "relative": 1}, "'relative' must be True or False, got int (1)"),
        ({"task": "t", "schedule": 5, "args": "ab"}, "'args' must be a list or tuple, got str ('ab')"),
        ({"task": "t", "schedule": 5, "kwargs": [1]}, "'kwargs' must be a dict, got list ([1])"),
        ({"task": "t", "schedule": 5, "kwargs": {1: 2}}, "the keys of 'kwargs' must be strings, got int (1)"),
        ({"task": "t", "schedule": 5, "options": {"args": [1]}}, "'options' must not contain 'args'"),
        ({"task": "t", "schedule": "every day at 09:00", "relative": True}, "'relative' applies only to"),
        ({"task": "t", "schedule": crontab(), "relative": True}, "'relative' applies only to"),
    ],
)
def test_beat_schedule_entry_problems(entry: dict[str, Any], message: str) -> None:
    definitions, problems = definitions_from_beat_schedule({"job": entry})
    assert definitions == []
    assert [(p.source, p.job) for p in problems] == [("beat_schedule", "job")]
    assert problems[0].message.startswith(message), problems[0].message


def test_beat_schedule_collects_every_problem_of_every_entry() -> None:
    definitions, problems = definitions_from_beat_schedule(
        {
            "ok": {"task": "t", "schedule": 10},
            "two": {"task": 3, "schedule": "every day at 31:00"},
            "three": "not an entry",
        }
    )
    assert [d.name for d in definitions] == ["ok"]
    assert [(p.job, p.message.split(":")[0]) for p in problems] == [
        ("two", "'task' must be a task name, got int (3)"),
        ("two", "bad timing"),
        ("three", "an entry must be a dict with 'task' and 'schedule', got str ('not an entry')"),
    ]


def test_beat_schedule_must_be_a_mapping() -> None:
    definitions, problems = definitions_from_beat_schedule([("a", {})])  # type: ignore[arg-type]
    assert definitions == []
    assert problems[0].message == "must be a dict of job name to entry, got list ([('a', {})])"


def test_jobs_sharing_a_bad_schedule_each_report_it() -> None:
    # Good schedules are encoded once per distinct value; a bad one must still name every job.
    bad_delta = timedelta(0)
    definitions, problems = definitions_from_beat_schedule(
        {
            "a": {"task": "t", "schedule": bad_delta},
            "b": {"task": "t", "schedule": bad_delta},
            "c": {"task": "t", "schedule": timedelta(0)},
            "d": {"task": "t", "schedule": "every day at foo"},
            "e": {"task": "t", "schedule": "every day at foo"},
            "f": {"task": "t", "schedule": "every day at 09:00", "timezone": "Nowhere/City"},
            "g": {"task": "t", "schedule": "every day at 09:00", "timezone": "Nowhere/City"},
        }
    )
    assert definitions == []
    assert [(p.job, p.message.split(":")[0]) for p in problems] == [
        ("a", "bad schedule"),
        ("b", "bad schedule"),
        ("c", "bad schedule"),
        ("d", "bad timing"),
        ("e", "bad timing"),
        ("f", "bad time zone"),
        ("g", "bad time zone"),
    ]


def test_jobs_sharing_a_schedule_value_get_what_each_wrote() -> None:
    hourly = timedelta(hours=1)
    tokyo = timing("every day at 09:00", "Asia/Tokyo")
    definitions, problems = definitions_from_beat_schedule(
        {
            "shared-1": {"task": "t", "schedule": hourly},
            "shared-2": {"task": "t", "schedule": hourly},
            "own": {"task": "t", "schedule": timedelta(hours=1)},
            "relative": {"task": "t", "schedule": hourly, "relative": True},
            "int": {"task": "t", "schedule": 3600},
            "float": {"task": "t", "schedule": 3600.0},
            # Equal crontabs (Celery compares the expanded fields), each stored as it was spelled.
            "cron-step": {"task": "t", "schedule": crontab(minute="*/15")},
            "cron-list": {"task": "t", "schedule": crontab(minute="0,15,30,45")},
            "tokyo-1": {"task": "t", "schedule": tokyo},
            "tokyo-2": {"task": "t", "schedule": tokyo, "timezone": "asia/tokyo"},
            "zone-1": {"task": "t", "schedule": "every day at 9:00", "timezone": "europe/berlin"},
            "zone-2": {"task": "t", "schedule": "every day at 09:00", "timezone": "europe/berlin"},
        }
    )
    assert problems == []
    data = {d.name: d.schedule_data for d in definitions}
    hourly_data = {"type": "interval", "seconds": 3600.0, "relative": False}
    assert data["shared-1"] == data["shared-2"] == data["own"] == data["int"] == data["float"] == hourly_data
    assert data["relative"] == {**hourly_data, "relative": True}
    assert crontab(minute="*/15") == crontab(minute="0,15,30,45")
    assert (data["cron-step"]["minute"], data["cron-list"]["minute"]) == ("*/15", "0,15,30,45")
    assert data["tokyo-1"] == data["tokyo-2"] == {"type": "timing", "expression": "every day at 09:00:00"}
    assert data["zone-1"] == data["zone-2"] == {"type": "timing", "expression": "every day at 09:00:00"}
    zones = {d.name: d.timezone for d in definitions}
    assert (zones["tokyo-1"], zones["tokyo-2"]) == ("Asia/Tokyo", "Asia/Tokyo")
    assert (zones["zone-1"], zones["zone-2"]) == ("Europe/Berlin", "Europe/Berlin")
    assert (zones["own"], zones["int"]) == (None, None)


# ---------------------------------------------------------------------------- load_definitions


def write(path: Path, text: str) -> Path:
    path.write_text(yaml_text(text), encoding="utf-8")
    return path


def test_load_definitions_merges_beat_schedule_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "jobs.yaml",
        """
        - module: tasks
          schedules:
            - {name: from-yaml, task: t, schedule: {timing: every day at 09:00}}
        """,
    )
    app = app_with(
        beat_schedule={"from-beat": {"task": "tasks.b", "schedule": 60}},
        orchestra_schedule_files="jobs.yaml",
    )
    definitions = load_definitions(app)
    assert [(d.name, d.source) for d in definitions] == [("from-beat", "beat_schedule"), ("from-yaml", "jobs.yaml:3")]


def test_load_definitions_without_any_jobs() -> None:
    assert load_definitions(app_with()) == []


def test_name_in_beat_schedule_and_yaml_names_both_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "jobs.yaml",
        """
        - schedules:
            - name: other
              task: t
              schedule: {timing: every day at 09:00}
            - name: report
              task: t
              schedule: {timing: every day at 09:00}
        """,
    )
    app = app_with(
        beat_schedule={"report": {"task": "t", "schedule": 60}},
        orchestra_schedule_files=["jobs.yaml"],
    )
    with pytest.raises(ConfigError) as caught:
        load_definitions(app)
    (problem,) = caught.value.problems
    assert (problem.source, problem.line, problem.job) == ("jobs.yaml", 5, "report")
    assert problem.message == "job name defined twice: here and at beat_schedule (job names must be unique)"
    assert str(caught.value) == (
        "1 problem in the schedule configuration:\n"
        "jobs.yaml:5: job 'report': job name defined twice: here and at beat_schedule (job names must be unique)"
    )


def test_name_in_two_files_names_both_places(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", "- schedules: [{name: x, task: t, schedule: {timing: every 5 minutes}}]\n")
    second = tmp_path / "b.yaml"
    second.write_text("\n- schedules: [{name: x, task: t, schedule: {timing: every 6 minutes}}]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_definitions(app_with(orchestra_schedule_files=[str(first), second]))
    (problem,) = caught.value.problems
    assert (problem.source, problem.line) == (str(second), 2)
    assert f"here and at {first}:1" in problem.message


def test_problems_from_all_sources_are_raised_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "bad.yaml",
        """
        - schedules:
            - {name: y, task: t, schedule: {timing: every day at 25:00}}
        """,
    )
    app = app_with(
        beat_schedule={"b": {"task": "t", "schedule": "every fortnight"}},
        orchestra_schedule_files=["bad.yaml", "missing.yaml"],
    )
    with pytest.raises(ConfigError) as caught:
        load_definitions(app)
    problems = caught.value.problems
    assert [(p.source, p.line, p.job) for p in problems] == [
        ("beat_schedule", None, "b"),
        ("bad.yaml", 2, "y"),
        ("missing.yaml", None, None),
    ]
    assert str(caught.value).startswith("3 problems in the schedule configuration:\nbeat_schedule: job 'b': bad timing")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (42, "must be a path or a list of paths, got int (42)"),
        ([None], "each entry must be a file path, got NoneType (None)"),
        (["same.yaml", "./same.yaml"], "'./same.yaml' is listed more than once"),
    ],
)
def test_bad_schedule_files_setting(
    setting: object, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "same.yaml").write_text("[]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_definitions(app_with(orchestra_schedule_files=setting))
    assert [(p.source, p.message) for p in caught.value.problems] == [("orchestra_schedule_files", message)]


def test_config_error_survives_pickling() -> None:
    error = ConfigError([ConfigProblem("s.yaml", 3, 7, "job", "broken", "  line", None)])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems
    assert str(copy) == str(error)
    assert isinstance(copy, ValueError)


def test_paths_in_settings_may_be_path_objects(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "- schedules: [{name: x, task: t, schedule: {timing: every 5 minutes}}]\n")
    definitions = load_definitions(app_with(orchestra_schedule_files=[path]))
    assert [(d.name, d.timezone, d.source) for d in definitions] == [("x", None, f"{path}:1")]


def test_zone_of_a_zoneinfo_object_is_stored_by_name() -> None:
    definitions, problems = definitions_from_beat_schedule(
        {"j": {"task": "t", "schedule": 60, "timezone": ZoneInfo("America/Boise")}}
    )
    assert problems == []
    assert definitions[0].timezone == "America/Boise"
