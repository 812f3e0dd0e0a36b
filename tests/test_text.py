"""User text shown literally: :func:`celery_orchestra.ops.text.visible` and celery-orchestra's log lines."""

from __future__ import annotations

import logging

import pytest

from celery_orchestra.ops.text import cell, visible, visible_lines


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("heartbeat", "heartbeat"),
        ("[link=https://x]click[/link]", "[link=https://x]click[/link]"),
        ("Europe/Berlin", "Europe/Berlin"),
        ("nächtlich-報告", "nächtlich-報告"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("rtl\u202eevil zero\u200bwidth line\u2028sep", "rtl\\u202eevil zero\\u200bwidth line\\u2028sep"),
        (42, "42"),
    ],
)
def test_visible_escapes_only_what_a_terminal_would_act_on(raw: object, shown: str) -> None:
    assert visible(raw) == shown


def test_visible_shortens_with_an_ellipsis_saying_how_much() -> None:
    assert visible("x" * 100, 10) == "xxxxxxxxxx… (90 more characters)"
    assert visible("x" * 10, 10) == "x" * 10


def test_visible_lines_keeps_line_breaks_only() -> None:
    assert visible_lines("a\x1b\n  ^\t") == "a\\x1b\n  ^\\t"


def test_a_cell_is_never_read_as_markup() -> None:
    text = cell("[bold]x[/bold]\x1b")
    assert text.plain == "[bold]x[/bold]\\x1b"
    assert not text.spans


@pytest.mark.parametrize(
    "logger_name", ["celery_orchestra.scheduler", "celery_orchestra.remote", "celery_orchestra.store.operator"]
)
def test_log_lines_quoting_user_text_cannot_forge_or_clear(logger_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=logger_name)
    logging.getLogger(logger_name).info("job %s sent", "x\x1b[2J\n[2026-01-01 00:00:00,000: WARNING] forged\r")
    [record] = [r for r in caplog.records if r.name == logger_name]
    message = record.getMessage()
    assert "\x1b" not in message and "\r" not in message
    assert message == "job x\\x1b[2J\n    [2026-01-01 00:00:00,000: WARNING] forged\\r sent"
    assert all(line.startswith(" ") for line in message.splitlines()[1:])
