"""One door: ``celery orchestra check`` and beat's start-up run the same checks, so "check OK" means beat starts.

Each test feeds one configuration to both: the problems ``check_configuration`` finds (what
``celery orchestra check`` prints) must be exactly the CRITICAL lines beat logs before it exits,
and a configuration check accepts must start beat. The fuzz test at the end generates YAML
schedules, good and bad, and asserts that the two always agree and never fail with anything but
our own errors.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_orchestra.beat.scheduler import Scheduler
from celery_orchestra.errors import InvalidJobError, quoted
from celery_orchestra.jobs.checks import job_problems
from celery_orchestra.jobs.codec import schedule_to_data
from celery_orchestra.jobs.config import check_configuration
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.store import JobStore

SUMMARY_PREFIX = "celery-orchestra: "


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.CRITICAL)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def make_app(folder: Path, **conf: Any) -> Celery:
    app = Celery("door", broker="memory://", set_as_current=False)
    app.conf.update(
        orchestra_database_url=f"sqlite:///{folder / 'store.db'}",
        orchestra_remote_control=False,
        result_expires=None,
        **conf,
    )
    return app


def check_lines(app: Celery) -> list[str]:
    """What `celery orchestra check` prints for the app's configuration, one entry per problem."""
    _, problems = check_configuration(app)
    return [problem.format() for problem in problems]


def beat_lines(app: Celery, folder: Path) -> list[str] | None:
    """The problems beat's start-up logs before it refuses to start; ``None`` when beat started."""
    collect = _Collect()
    logger = logging.getLogger("celery_orchestra.scheduler")
    logger.addHandler(collect)
    try:
        scheduler = Scheduler(app, schedule_filename=str(folder / "beat"))
    except SystemExit as exit_info:
        assert exit_info.code == 1
        assert collect.lines[-1].startswith(SUMMARY_PREFIX), collect.lines
        return collect.lines[:-1]
    finally:
        logger.removeHandler(collect)
    scheduler.close()
    return None


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="door-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write(folder: Path, text: str) -> Path:
    path = folder / "jobs.yaml"
    path.write_text(text)
    return path


BAD_YAML = """\
- schedules:
  - name: dated
    task: proj.say
    schedule: {timing: "every 5 minutes"}
    args: [2024-01-01]
  - name: binary
    task: proj.say
    schedule: {timing: "every 5 minutes"}
    args: [!!binary aGVsbG8=]
  - name: setty
    task: proj.say
    schedule: {timing: "every 5 minutes"}
    kwargs: {s: !!set {a, b}}
  - name: fine
    task: proj.say
    schedule: {timing: "every 5 minutes"}
    args: ["2024-01-01"]
"""


def test_yaml_dates_binary_and_sets_are_refused_by_check_and_beat_alike_every_job_at_its_line(folder: Path) -> None:
    path = write(folder, BAD_YAML)
    app = make_app(folder, orchestra_schedule_files=[str(path)])
    expected = [
        f"{path}:2: job 'dated': args[0] is date (datetime.date(2024, 1, 1)), which cannot be stored as JSON; "
        "write it in quotes to pass the text (in YAML an unquoted date is a date)",
        f"{path}:6: job 'binary': args[0] is bytes (b'hello'), which cannot be stored as JSON; "
        "pass text, e.g. base64 (YAML's !!binary is bytes)",
        f"{path}:10: job 'setty': kwargs['s'] is set ({{'a', 'b'}}), which cannot be stored as JSON; "
        "use a list (YAML's !!set is a set)",
    ]
    found = check_lines(app)
    # A set's repr has no fixed order.
    assert [line.replace("{'b', 'a'}", "{'a', 'b'}") for line in found] == expected
    assert beat_lines(app, folder) == found
    assert not (folder / "store.db").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task_id": "x"}, "options must not contain 'task_id': beat gives every run its own task id"),
        ({"producer": "p"}, "options must not contain 'producer': beat publishes through its own producer"),
        ({"connection": "amqp://"}, "options must not contain 'connection': beat uses the app's broker connection"),
        ({"compression": "bogus"}, "options['compression'] must be a compression kombu has registered"),
        ({"expires": "soon"}, "options['expires'] must be a number of seconds after each send, or a date-time"),
        ({"expires": float("nan")}, "options['expires'] must be a number of seconds after each send"),
        ({"priority": 300}, "options['priority'] must be a whole number from 0 to 255, got int (300)"),
        ({"colour": "blue"}, "unknown key 'colour' in options; expected one of: queue, exchange"),
        ({"quue": "q"}, "unknown key 'quue' in options; did you mean 'queue'?"),
        ({"serializer": "bogus"}, "options['serializer'] must be a registered serializer"),
        ({"retry_policy": {"max_retries": "many"}}, "options['retry_policy'] ['max_retries'] must be a number"),
    ],
)
def test_options_apply_async_would_refuse_stop_check_and_beat(
    folder: Path, options: dict[str, Any], message: str
) -> None:
    app = make_app(folder, beat_schedule={"job": {"task": "t", "schedule": 60, "options": options}})
    found = check_lines(app)
    assert len(found) == 1
    assert found[0].startswith(f"beat_schedule: job 'job': {message}"), found
    assert beat_lines(app, folder) == found


def test_good_options_pass_and_are_sent(folder: Path) -> None:
    options = {
        "queue": "q",
        "priority": 3,
        "expires": "2030-01-01T00:00:00+00:00",
        "compression": "zlib",
        "serializer": "json",
        "headers": {"x": 1},
        "retry_policy": {"max_retries": 3, "interval_start": 0.5},
        "countdown": 2,
    }
    app = make_app(folder, beat_schedule={"job": {"task": "t", "schedule": 60, "options": options}})
    assert check_lines(app) == []
    assert beat_lines(app, folder) is None


def test_names_and_tasks_over_255_characters_are_refused_before_the_store(folder: Path) -> None:
    long_name, long_task = "n" * 256, "t" * 300
    app = make_app(
        folder,
        beat_schedule={long_name: {"task": "t", "schedule": 60}, "short": {"task": long_task, "schedule": 60}},
    )
    assert check_lines(app) == [
        # The name is echoed shortened (errors.ECHO_LIMIT).
        f"beat_schedule: job {quoted(long_name)}: the name is 256 characters long; at most 255 fit the store",
        "beat_schedule: job 'short': 'task' is 300 characters long; at most 255 fit the store",
    ]
    assert beat_lines(app, folder) == check_lines(app)
    assert not (folder / "store.db").exists()


def test_a_bad_app_timezone_and_bad_settings_are_reported_with_the_jobs(folder: Path) -> None:
    app = make_app(
        folder,
        timezone="Mars/Olympus_Mons",
        orchestra_catch_up="sometimes",
        beat_schedule={"job": {"task": "t", "schedule": 60, "args": [{1, 2}]}},
    )
    found = check_lines(app)
    assert [line.split(":", 2)[:2] for line in found] == [
        ["settings", " setting orchestra_catch_up must be one of once, skip, all, got 'sometimes'"],
        ["settings", " setting timezone"],
        ["beat_schedule", " job 'job'"],
    ]
    assert beat_lines(app, folder) == found


def test_the_store_keeps_its_own_guard_with_the_same_limit(folder: Path) -> None:
    definition = JobDefinition("n" * 256, "t", schedule_to_data(60))
    assert job_problems(definition) == ["the name is 256 characters long; at most 255 fit the store"]
    store = JobStore(f"sqlite:///{folder / 'direct.db'}")
    try:
        store.migrate()
        with pytest.raises(InvalidJobError, match="longer than 255 characters"):
            store.reconcile([definition], now=datetime.now(UTC))
    finally:
        store.close()


# ---------------------------------------------------------------------------- the fuzz

_TIMINGS = ("every 5 minutes", "every day at 09:00", "once in 5 minutes", "every 0 seconds", "every 10 secnds", "")
_ZONES = (None, "Europe/Berlin", "Mars/Base")
_ARGS = (None, "[1, 2]", "['x', null]", "[2024-01-01]", "[!!binary aGVsbG8=]", "[!!set {a, b}]", "[.nan]", "{a: 1}")
_KWARGS = (None, "{a: 1}", "{when: 2024-01-01T10:00:00}", "{s: !!set {a}}", "[1]", "{1: one}")
_OPTIONS = (
    None,
    "{queue: q}",
    "{priority: 5, expires: 60}",
    "{task_id: x}",
    "{producer: p}",
    "{compression: bogus}",
    "{compression: zlib}",
    "{expires: soon}",
    "{priority: 300}",
    "{colour: 1}",
    "{args: [1]}",
)
_NAMES = st.one_of(
    st.sampled_from(["a", "b", "job-1", "x" * 256, "quote'd", "ünï"]),
    st.text(alphabet="abc-_ ", min_size=0, max_size=6),
)


@st.composite
def yaml_job(draw: st.DrawFn) -> str:
    lines = [f"  - name: {_quoted(draw(_NAMES))}", "    task: " + draw(st.sampled_from(["proj.say", "'t' ", "''"]))]
    schedule = f"{{timing: {_quoted(draw(st.sampled_from(_TIMINGS)))}"
    zone = draw(st.sampled_from(_ZONES))
    schedule += f", timezone: {zone}}}" if zone else "}"
    lines.append(f"    schedule: {schedule}")
    for key, vocabulary in (("args", _ARGS), ("kwargs", _KWARGS), ("additional_options", _OPTIONS)):
        value = draw(st.sampled_from(vocabulary))
        if value is not None:
            lines.append(f"    {key}: {value}")
    return "\n".join(lines)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(yaml_job(), min_size=1, max_size=4))
def test_check_and_beat_agree_on_generated_yaml_schedules(jobs: Sequence[str]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="door-fuzz-"))
    try:
        path = write(folder, "- schedules:\n" + "\n".join(jobs) + "\n")
        app = make_app(folder, orchestra_schedule_files=[str(path)])
        # Anything but our own errors escapes these calls and fails the test.
        definitions, problems = check_configuration(app)
        found = [problem.format() for problem in problems]
        refused = beat_lines(app, folder)
        if problems:
            assert refused == found
            assert not (folder / "store.db").exists()
        else:
            assert refused is None, refused
            store = JobStore(f"sqlite:///{folder / 'store.db'}")
            try:
                assert sorted(record.name for record in store.all_jobs()) == sorted(d.name for d in definitions)
            finally:
                store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
