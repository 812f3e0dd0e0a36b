"""Fuzzing the parser: any text either parses or raises TimingError with a position inside the text.

Three sources of input: arbitrary unicode text, "grammar soup" (the language's own words and numbers in
random order), and mutations of the valid expressions (deletions, insertions of tokens, digit changes,
duplications, word swaps, case flips). When a mutant still parses, its normalised text must mean the
same thing and it must be evaluable.

Huge numbers (too long for a duration) and line breaks other than ``\\n`` (positions count lines by
``\\n`` only, like Lark) once broke these rules; deterministic tests at the end pin both down.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from celery_orchestra import TimingError, timing
from celery_orchestra.errors import excerpt_window, quoted
from celery_orchestra.timing.schedule import NEVER_SECONDS
from tests.expressions import EXTENSION_EXAMPLES, PREDECESSOR_EXPRESSIONS

ANCHOR = datetime(2024, 3, 3, 7, 36, 47, tzinfo=UTC)
NOW = ANCHOR + timedelta(days=3, hours=5)

SEEDS = [
    *PREDECESSOR_EXPRESSIONS,
    *EXTENSION_EXAMPLES,
    "every weekend at 9pm",
    "2024-05-01T09:30",
    "every hour at 30 minutes and 15 seconds",
    "once at noon",
    "every 1.5 hours",
]

WORDS = [
    "every",
    "once",
    "next",
    "in",
    "at",
    "on",
    "and",
    "noon",
    "midnight",
    "second",
    "seconds",
    "secs",
    "minute",
    "minutes",
    "min",
    "hour",
    "hours",
    "hrs",
    "day",
    "days",
    "week",
    "weeks",
    "Monday",
    "tue",
    "thurs",
    "sundays",
    "weekday",
    "weekends",
    "am",
    "p.m.",
    "tomorrow",
    "every",
    "T",
]
NUMBERISH = ["0", "1", "7", "12", "24", "59", "60", "99", "1.5", "0.0", "9999", "2024-02-29", "2023-02-29"]
CLOCKISH = ["9:13", "09:15:00", "00:00:00", "25:00", "12:60", "1:2:3", "123:45:67", "2024-05-01T9:30", "2024-13-01"]
PUNCTUATION = [",", ",,", " ", "  ", "\t", "\n", ".", ":", "-", "'", "@", "$", "é", "٣"]
TOKENS = WORDS + NUMBERISH + CLOCKISH + PUNCTUATION


FUZZ_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_outcome(text: str) -> None:
    """``timing(text)`` returns a Timing or raises a TimingError that points inside ``text``."""
    try:
        t = timing(text, "Europe/Berlin", anchor=ANCHOR)
    except TimingError as error:
        check_error(error, text)
        return
    # It parsed: the normalised text means the same.
    assert timing(str(t), "Europe/Berlin", anchor=ANCHOR) == t


def check_error(error: TimingError, text: str) -> None:
    assert isinstance(error, ValueError)
    assert error.expression == text
    assert isinstance(error.reason, str)
    assert error.reason
    assert isinstance(error.expected, list)
    assert all(isinstance(word, str) and word for word in error.expected)
    lines = text.split("\n")
    assert 1 <= error.line <= len(lines)
    assert 1 <= error.column <= len(lines[error.line - 1]) + 1
    # str() shows the expression (cut to a few dozen characters) and a caret under the column of the
    # line it shows (a long line cut to a window around the column)
    rendered = str(error).split("\n")
    assert quoted(text) in rendered[0]
    assert rendered[-1].strip() == "^"
    line = text.split("\n")[error.line - 1]
    assert error.column <= len(line) + 1
    shown, column = excerpt_window(line, error.column)
    assert rendered[-2].endswith(shown)
    indent = len(rendered[-2]) - len(shown)
    assert column is not None
    assert len(rendered[-1]) == indent + column


@FUZZ_SETTINGS
@given(st.text(max_size=60))
@example("")
@example("\n\n")
@example("every\n")
@example("every 5 minutes\nfoo")
@example("٣ seconds")
@example("0000000000\x1f\x1f\x1f\x1f\x08\x0800000\U00012544\U00018d09\U0002ebe1\U0002ebe1")
def test_random_text(text: str) -> None:
    check_outcome(text)


@FUZZ_SETTINGS
@given(
    st.lists(st.sampled_from(TOKENS), max_size=9),
    st.lists(st.sampled_from([" ", "", ", ", "\n", "  "]), min_size=9, max_size=9),
)
def test_grammar_soup(tokens: list[str], separators: list[str]) -> None:
    text = "".join(token + separator for token, separator in zip(tokens, separators, strict=False))
    check_outcome(text)


@st.composite
def mutants(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["delete", "insert", "digit", "duplicate", "swap", "case"]))
        size = len(text)
        i = draw(st.integers(0, size))
        j = draw(st.integers(i, size))
        if operation == "delete":
            text = text[:i] + text[j:]
        elif operation == "insert":
            token = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=3)))
            pad = draw(st.sampled_from(["", " "]))
            text = text[:i] + pad + token + pad + text[i:]
        elif operation == "digit":
            digits = [k for k, char in enumerate(text) if char.isdigit()]
            if digits:
                k = draw(st.sampled_from(digits))
                text = text[:k] + draw(st.sampled_from("0123456789")) + text[k + 1 :]
        elif operation == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif operation == "swap":
            words = text.split(" ")
            a = draw(st.integers(0, len(words) - 1))
            b = draw(st.integers(0, len(words) - 1))
            words[a], words[b] = words[b], words[a]
            text = " ".join(words)
        else:
            text = text[:i] + text[i:j].swapcase() + text[j:]
    return text


@FUZZ_SETTINGS
@given(mutants())
def test_mutated_expressions(text: str) -> None:
    check_outcome(text)


@FUZZ_SETTINGS
@given(mutants())
def test_mutants_that_parse_can_be_evaluated(text: str) -> None:
    try:
        t = timing(text, "UTC", anchor=ANCHOR, nowfun=lambda: NOW)
    except TimingError:
        return
    first = t.next_fire_after(ANCHOR)
    assert first is None or first > ANCHOR
    assert isinstance(t.is_expired, bool)
    state = t.is_due(ANCHOR)
    assert math.isfinite(state.next)
    assert state.next >= 0
    assert t.remaining_estimate(ANCHOR) == (timedelta(seconds=NEVER_SECONDS) if first is None else first - NOW)


@pytest.mark.parametrize("value", [123, None, b"every 5 minutes", 1.5])
def test_non_strings_are_timing_errors(value: object) -> None:
    with pytest.raises(TimingError):
        timing(value)  # type: ignore[arg-type]


def test_very_long_input_is_a_timing_error_at_the_right_column() -> None:
    text = "every " + "5 minutes and " * 2000 + "x"
    with pytest.raises(TimingError) as info:
        timing(text)
    # the syntax error at the final "x" is found before the repeated unit is
    assert (info.value.line, info.value.column) == (1, len(text))


# ---- known bugs, pinned down ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "every 999999999 weeks",
        "every 999999999999 weeks",
        "every " + "9" * 400 + " seconds",
        "every 99999999999:00:00",
        "once in 99999999999:00:00",
    ],
)
def test_huge_numbers_are_timing_errors(text: str) -> None:
    with pytest.raises(TimingError) as info:
        timing(text, "UTC", anchor=ANCHOR)
    assert 1 <= info.value.column <= len(text)


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("every 999999 weeks", "UTC"),
        ("once in 3000000 days", "UTC"),
        ("every 99999999 days at 10:00", "UTC"),
        ("0001-01-01 00:30", "Europe/Berlin"),
        ("9999-12-31 23:59", "America/New_York"),
    ],
)
def test_out_of_range_fire_times_do_not_crash(text: str, zone: str) -> None:
    """Either the expression is refused up front, or every call answers (None meaning 'never')."""
    try:
        t = timing(text, zone, anchor=ANCHOR, nowfun=lambda: NOW)
    except TimingError:
        return
    t.is_expired  # noqa: B018  # the property must not raise
    t.next_fire_after(ANCHOR)
    t.next_fire_after(NOW)
    state = t.is_due(ANCHOR)
    assert math.isfinite(state.next)
    assert state.next >= 0
    t.remaining_estimate(ANCHOR)


@pytest.mark.parametrize("separator", ["\r", "\u2028", "\x85", "\x0b"])
def test_error_position_after_other_line_breaks(separator: str) -> None:
    # Lines are counted by "\n" only (as Lark counts them), both in the position and in str(error).
    text = f"every 5 minutes{separator}foo"
    with pytest.raises(TimingError) as info:
        timing(text)
    shown = text.split("\n")[info.value.line - 1]
    assert shown[info.value.column - 1 :].startswith("foo")
    picture = str(info.value).split("\n")
    assert picture[-1].index("^") - 4 == info.value.column - 1
