"""Every orchestra_* number is checked at the door: one line naming the setting and the value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from celery_orchestra import Scheduler
from celery_orchestra.errors import SettingsError
from celery_orchestra.jobs.config import check_configuration
from celery_orchestra.settings import read_settings

NUMBERS = [
    ("orchestra_misfire_grace", 0.0),
    ("orchestra_poll_interval", 0.05),
    ("orchestra_lease_ttl", 1.0),
    ("orchestra_store_wait", 0.0),
]
BAD = [float("nan"), float("inf"), -float("inf"), 10**400, 1e300, -5, "5", True, None, [1]]


@pytest.mark.parametrize(("name", "minimum"), NUMBERS)
@pytest.mark.parametrize("value", BAD, ids=repr)
def test_a_bad_number_is_refused_in_one_line_naming_the_setting(name: str, minimum: float, value: Any) -> None:
    with pytest.raises(SettingsError) as raised:
        read_settings({name: value})
    message = str(raised.value)
    assert message.startswith(f"setting {name} must be a number from {minimum:g} to ")
    assert "\n" not in message and len(message) < 200


def test_good_numbers_are_read_as_floats() -> None:
    settings = read_settings(
        {
            "orchestra_misfire_grace": 30,
            "orchestra_poll_interval": 0.5,
            "orchestra_lease_ttl": 20,
            "orchestra_store_wait": 0,
            "orchestra_run_retention": timedelta(days=7),
        }
    )
    assert (settings.misfire_grace, settings.poll_interval, settings.lease_ttl, settings.store_wait) == (
        30.0,
        0.5,
        20.0,
        0.0,
    )
    assert settings.run_retention == 7 * 86400.0
    defaults = read_settings({})
    assert (defaults.lease_ttl, defaults.store_wait, defaults.run_retention) == (10.0, 60.0, 30 * 86400.0)
    assert read_settings({"orchestra_run_retention": None}).run_retention is None


@pytest.mark.parametrize("value", [5, timedelta(minutes=5), "7d", float("nan"), -1], ids=repr)
def test_a_bad_retention_says_what_it_takes(value: Any) -> None:
    expected = (
        r"^setting orchestra_run_retention must be a number of seconds \(at least 3600\) or a timedelta, "
        r"or None to keep every run, got "
    )
    with pytest.raises(SettingsError, match=expected):
        read_settings({"orchestra_run_retention": value})


@pytest.mark.parametrize("value", ["5", -5, float("nan"), float("inf"), 10**400], ids=repr)
def test_a_bad_max_loop_interval_is_refused_by_check_and_by_beat_in_one_line(value: Any, tmp_path: Path) -> None:
    """Celery's beat_max_loop_interval: a text raised TypeError deep in beat; a negative one made it spin."""
    app = Celery("settings", broker="memory://", set_as_current=False)
    app.conf.update(
        beat_max_loop_interval=value,
        orchestra_database_url=f"sqlite:///{tmp_path / 'o.db'}",
        orchestra_remote_control=False,
        beat_schedule={"job": {"task": "t", "schedule": 60}},
    )
    _, problems = check_configuration(app)
    assert len(problems) == 1
    assert problems[0].message.startswith("setting beat_max_loop_interval must be a number from 0.01 to 86400, got ")
    assert "\n" not in problems[0].message and len(problems[0].message) < 200
    with pytest.raises(SystemExit) as stopped:
        Scheduler(app, schedule_filename=str(tmp_path / "beat"))
    assert stopped.value.code == 1
    assert not (tmp_path / "o.db").exists()


def test_a_bad_max_interval_from_the_command_line_is_refused_naming_both_spellings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celery("settings", broker="memory://", set_as_current=False)
    app.conf.update(orchestra_database_url=f"sqlite:///{tmp_path / 'o.db'}", orchestra_remote_control=False)
    with pytest.raises(SystemExit):
        Scheduler(app, schedule_filename=str(tmp_path / "beat"), max_interval=-5)  # celery beat --max-interval -5
    assert (
        "celery-orchestra: setting beat_max_loop_interval (or --max-interval) must be a number from 0.01 to 86400, "
        "got -5" in caplog.messages
    )
    app.conf.update(beat_max_loop_interval=0)  # Celery's default: "not set"
    assert check_configuration(app)[1] == []


@pytest.mark.parametrize("value", ["300", -1, float("nan"), float("inf"), 10**400, True, [60]], ids=repr)
def test_a_bad_cron_starting_deadline_is_refused_by_check_and_by_beat_in_one_line(value: Any, tmp_path: Path) -> None:
    """Celery's beat_cron_starting_deadline (stock beat >= 5.3) is read like our own numbers."""
    app = Celery("settings", broker="memory://", set_as_current=False)
    app.conf.update(
        beat_cron_starting_deadline=value,
        orchestra_database_url=f"sqlite:///{tmp_path / 'o.db'}",
        orchestra_remote_control=False,
        beat_schedule={"job": {"task": "t", "schedule": 60}},
    )
    _, problems = check_configuration(app)
    assert [problem.message[:70] for problem in problems] == [
        "setting beat_cron_starting_deadline must be a number from 0 to 1e+09, "
    ]
    assert "\n" not in problems[0].message and len(problems[0].message) < 200
    with pytest.raises(SystemExit) as stopped:
        Scheduler(app, schedule_filename=str(tmp_path / "beat"))
    assert stopped.value.code == 1
    assert not (tmp_path / "o.db").exists()


def test_the_cron_starting_deadline_is_celerys_none_unless_set() -> None:
    assert read_settings({}).cron_starting_deadline is None
    assert read_settings({"beat_cron_starting_deadline": None}).cron_starting_deadline is None
    assert read_settings({"beat_cron_starting_deadline": 0}).cron_starting_deadline == 0.0
    assert read_settings({"beat_cron_starting_deadline": 300}).cron_starting_deadline == 300.0
