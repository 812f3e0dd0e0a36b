"""The config key: the configured text columns of a job as one text, equal only for equal values."""

from __future__ import annotations

from celery_orchestra.store.bulk_rows import CONFIG_KEY_FIELDS, config_key

VALUES: tuple[str | None, ...] = ("tasks.a", '{"type": "x"}', None, "cyclic", "[]", "{}", "{}", "[]", "beat_schedule")


def test_the_key_joins_every_configured_text_column() -> None:
    assert len(VALUES) == len(CONFIG_KEY_FIELDS)
    key = config_key(VALUES)
    assert key is not None
    assert key.split("\x1f") == ["tasks.a", '{"type": "x"}', "-", "cyclic", "[]", "{}", "{}", "[]", "beat_schedule"]


def test_no_zone_and_an_empty_zone_have_different_keys() -> None:
    with_empty_zone = (*VALUES[:2], "", *VALUES[3:])
    assert config_key(VALUES) != config_key(with_empty_zone)
    assert config_key((*VALUES[:2], "UTC", *VALUES[3:])) == config_key(VALUES).replace("\x1f-\x1f", "\x1f+UTC\x1f", 1)  # type: ignore[union-attr]


def test_a_value_holding_the_separator_has_no_key() -> None:
    assert config_key(("tasks.a\x1fb", *VALUES[1:])) is None
    assert config_key((*VALUES[:-1], "source\x1f")) is None
