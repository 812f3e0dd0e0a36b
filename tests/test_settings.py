"""Every orchestra_* number is checked at the door: one line naming the setting and the value."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from celery_orchestra.errors import SettingsError
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
