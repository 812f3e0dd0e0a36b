"""Text to timing model: the Lark grammar in ``timing.lark`` plus a Transformer.

The parser is LALR(1) with Lark's contextual lexer and the transformer applied while parsing (no
parse tree is built), which keeps an uncached parse in the tens of microseconds. Results are
cached: the model objects are immutable, so sharing them is safe.

Every failure is a :class:`~celery_orchestra.errors.TimingError` with a position; Lark's own
exceptions never escape.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, time, timedelta
from importlib import resources
from typing import Any, NoReturn

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import TimingError, quoted
from .model import (
    WEEKEND,
    WORKDAYS,
    EveryDay,
    EveryHour,
    EveryMinute,
    EveryWeek,
    Interval,
    OnceAfter,
    OnceAtClock,
    OnceAtDate,
    TimingSpec,
)

__all__ = ["MAX_DIGITS", "parse_expression", "parse_expression_uncached"]

# What each terminal is called in an error message.
_TERMINAL_WORDS = {
    "EVERY": "'every'",
    "ONCE": "'once'",
    "NEXT": "'next'",
    "IN": "'in'",
    "_AT": "'at'",
    "_AND": "'and'",
    "NOON": "'noon'",
    "MIDNIGHT": "'midnight'",
    "SECOND_UNIT": "'seconds'",
    "MINUTE_UNIT": "'minutes'",
    "HOUR_UNIT": "'hours'",
    "DAY_UNIT": "'days'",
    "WEEK_UNIT": "'weeks'",
    "DAYNAME": "a weekday like 'Monday'",
    "WEEKDAYS": "'weekday'",
    "WEEKENDS": "'weekend'",
    "AMPM": "'am'/'pm'",
    "ISO_DATETIME": "a date and time like 2024-05-01T09:30",
    "DATE": "a date like 2024-05-01",
    "CLOCK": "a time like 09:15 or 09:15:00",
    "NUMBER": "a number",
    "$END": "the end of the expression",
}

_DAY_PREFIXES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_UNIT_SECONDS = {
    "SECOND_UNIT": 1,
    "MINUTE_UNIT": 60,
    "HOUR_UNIT": 3600,
    "DAY_UNIT": 86400,
    "WEEK_UNIT": 604800,
}


# Longer intervals and delays are certainly typos, and would overflow datetime arithmetic.
_LONGEST_DURATION_YEARS = 100
_LONGEST_DURATION_SECONDS = _LONGEST_DURATION_YEARS * 366 * 86400


#: Digits in one run of a number or clock time: enough for 100 years in seconds (10 digits), and far
#: below the 4,300 digits past which Python's int() refuses a number with an unlocated ValueError.
MAX_DIGITS = 10
_DIGIT_RUN = re.compile(r"\d+")


class _Invalid(Exception):
    """Raised inside the transformer; turned into a TimingError that knows the whole text."""

    def __init__(self, reason: str, token: Token | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token


def _fail(reason: str, token: Token | None) -> NoReturn:
    raise _Invalid(reason, token)


def _int(token: Token, what: str, upper: int) -> int:
    text = str(token)
    if not text.isdigit():
        _fail(f"{what} must be a whole number, not {text}", token)
    value = int(text)
    if value >= upper:
        _fail(f"{what} must be below {upper}, not {value}", token)
    return value


def _refuse_long_digit_runs(token: Token) -> Token:
    """Lexer callback for tokens made of digits: every run of digits has at most MAX_DIGITS."""
    for run in _DIGIT_RUN.finditer(token):
        if run.end() - run.start() > MAX_DIGITS:
            where = Token(token.type, run.group(), (token.start_pos or 0) + run.start())
            _fail(f"a number may have at most {MAX_DIGITS} digits, not {run.end() - run.start()}", where)
    return token


def _number(token: Token) -> float:
    return float(str(token))


def _clock_fields(token: Token) -> list[str]:
    fields = str(token).split(":")
    for field in fields[1:]:
        if len(field) != 2:
            _fail(f"minutes and seconds need two digits in {token!s}", token)
    return fields


def _clock_time(token: Token, ampm: Token | None = None) -> time:
    fields = _clock_fields(token)
    if len(fields[0]) > 2:
        _fail(f"{token!s} is not a time of day", token)
    hour = int(fields[0])
    minute = _int(Token("CLOCK", fields[1], token.start_pos), "the minute", 60)
    second = int(fields[2]) if len(fields) == 3 else 0
    if second >= 60:
        _fail(f"the second must be below 60 in {token!s}", token)
    if ampm is not None:
        hour = _apply_ampm(hour, ampm, token)
    elif hour >= 24:
        _fail(f"the hour must be below 24 in {token!s}", token)
    return time(hour, minute, second)


def _apply_ampm(hour: int, ampm: Token, where: Token) -> int:
    if not 1 <= hour <= 12:
        _fail(f"with am/pm the hour must be 1 to 12, not {hour}", where)
    pm = str(ampm).lower().startswith("p")
    return (hour % 12) + (12 if pm else 0)


def _weekday(token: Token) -> int:
    return _DAY_PREFIXES.index(str(token)[:3].lower())


class _ToModel(Transformer[Token, Any]):
    """Builds model objects bottom-up as the LALR parser reduces each rule."""

    # -- pieces

    def unit(self, children: list[Token]) -> Token:
        return children[0]

    def duration_part(self, children: list[Any]) -> tuple[timedelta, Token, Token]:
        count, unit = children
        amount = 1.0 if count is None else _number(count)
        seconds = amount * _UNIT_SECONDS[unit.type]
        if seconds > _LONGEST_DURATION_SECONDS:
            _fail(f"{count!s} {unit!s} is too long (at most {_LONGEST_DURATION_YEARS} years)", count or unit)
        return timedelta(seconds=seconds), unit, count or unit

    def unit_duration(self, parts: list[tuple[timedelta, Token, Token]]) -> tuple[timedelta, Token]:
        seen: set[str] = set()
        total = timedelta(0)
        start = parts[0][2]
        for amount, unit, _ in parts:
            if unit.type in seen:
                _fail(f"{str(unit)!r} is given twice", unit)
            seen.add(unit.type)
            total += amount
        if total.total_seconds() > _LONGEST_DURATION_SECONDS:
            _fail(f"that is too long (at most {_LONGEST_DURATION_YEARS} years in all)", start)
        return total, start

    def clock_duration(self, children: list[Token]) -> tuple[timedelta, Token]:
        (token,) = children
        fields = _clock_fields(token)
        if len(fields) != 3:
            _fail(f"a duration needs hours, minutes and seconds (like 01:30:00), not {token!s}", token)
        hours, minutes, seconds = (int(f) for f in fields)
        if minutes >= 60 or seconds >= 60:
            _fail(f"minutes and seconds must be below 60 in {token!s}", token)
        if hours * 3600 > _LONGEST_DURATION_SECONDS:
            _fail(f"{token!s} is too long (at most {_LONGEST_DURATION_YEARS} years)", token)
        return timedelta(hours=hours, minutes=minutes, seconds=seconds), token

    def clock_time(self, children: list[Token | None]) -> time:
        token, ampm = children
        assert token is not None
        return _clock_time(token, ampm)

    def hour_ampm(self, children: list[Token]) -> time:
        hour, ampm = children
        return time(_apply_ampm(_int(hour, "the hour", 13), ampm, hour))

    def noon(self, _: list[Token]) -> time:
        return time(12)

    def midnight(self, _: list[Token]) -> time:
        return time(0)

    def time_of_day(self, children: list[time]) -> time:
        return children[0]

    def unit_time(self, children: list[Token | None]) -> time:
        hours, _h, minutes, _m, seconds, _s = children
        assert hours is not None
        return time(
            _int(hours, "the hour", 24),
            0 if minutes is None else _int(minutes, "the minute", 60),
            0 if seconds is None else _int(seconds, "the second", 60),
        )

    def clock_minute_of_hour(self, children: list[Token]) -> tuple[int, int]:
        (token,) = children
        fields = _clock_fields(token)
        if len(fields) != 2:
            _fail(f"give minutes and seconds past the hour (like 05:00), not {token!s}", token)
        minute, second = (int(f) for f in fields)
        if minute >= 60 or second >= 60:
            _fail(f"minutes and seconds must be below 60 in {token!s}", token)
        return minute, second

    def unit_minute_of_hour(self, children: list[Token | None]) -> tuple[int, int]:
        minutes, _m, seconds, _s = children
        assert minutes is not None
        return (
            _int(minutes, "the minute", 60),
            0 if seconds is None else _int(seconds, "the second", 60),
        )

    def second_of_minute(self, children: list[Token]) -> int:
        return _int(children[0], "the second", 60)

    def day_item(self, children: list[Token]) -> frozenset[int]:
        (token,) = children
        if token.type == "WEEKDAYS":
            return WORKDAYS
        if token.type == "WEEKENDS":
            return WEEKEND
        return frozenset({_weekday(token)})

    def day_set(self, items: list[frozenset[int]]) -> frozenset[int]:
        return frozenset().union(*items)

    # -- whole expressions

    def every_interval(self, children: list[Any]) -> Interval:
        duration, where = children[-1]
        if duration <= timedelta(0):
            _fail("an interval must be longer than zero", where)
        return Interval(duration)

    def every_minute(self, children: list[Any]) -> EveryMinute:
        return EveryMinute(children[-1])

    def every_hour(self, children: list[Any]) -> EveryHour:
        minute, second = children[-1]
        return EveryHour(minute, second)

    def every_day(self, children: list[Any]) -> EveryDay:
        _every, step_token, _unit, at = children
        step = 1
        if step_token is not None:
            if not str(step_token).isdigit() or int(step_token) < 1:
                _fail(f"the number of days must be a whole number of at least 1, not {step_token!s}", step_token)
            step = int(step_token)
            if step * 86400 > _LONGEST_DURATION_SECONDS:
                _fail(f"every {step} days is too long (at most {_LONGEST_DURATION_YEARS} years)", step_token)
        return EveryDay(at, step)

    def every_week(self, children: list[Any]) -> EveryDay | EveryWeek:
        days, at = children[1], children[2]
        at = time(0) if at is None else at
        if len(days) == 7:
            return EveryDay(at)
        return EveryWeek(days, at)

    def once_after(self, children: list[Any]) -> OnceAfter:
        delay, where = children[-1]
        if delay <= timedelta(0):
            _fail("the delay must be longer than zero", where)
        return OnceAfter(delay)

    def once_at_clock(self, children: list[Any]) -> OnceAtClock:
        return OnceAtClock(children[-1])

    def once_on_weekday(self, children: list[Any]) -> OnceAtClock:
        day = next(c for c in children if isinstance(c, Token) and c.type == "DAYNAME")
        return OnceAtClock(children[-1], _weekday(day))

    def once_at_date(self, children: list[Any]) -> OnceAtDate:
        tokens = [c for c in children if isinstance(c, Token) and c.type in ("DATE", "ISO_DATETIME")]
        token = tokens[0]
        if token.type == "ISO_DATETIME":
            day_text, clock_text = str(token).upper().split("T")
            at = _clock_time(Token("CLOCK", clock_text, token.start_pos, token.line, token.column))
        else:
            day_text, at = str(token), children[-1]
        try:
            day = datetime.strptime(day_text, "%Y-%m-%d").date()
        except ValueError:
            _fail(f"{day_text} is not a calendar date", token)
        return OnceAtDate(datetime.combine(day, at))

    def start(self, children: list[TimingSpec]) -> TimingSpec:
        return children[0]


@functools.cache
def _parser() -> Lark:
    grammar = resources.files(__package__).joinpath("timing.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        transformer=_ToModel(),
        lexer_callbacks={name: _refuse_long_digit_runs for name in ("NUMBER", "CLOCK")},
        maybe_placeholders=True,
        propagate_positions=False,
        cache=False,
    )


def _expected_words(names: set[str] | frozenset[str]) -> list[str]:
    # Lark spells the end "$END" in parse tables and "<END-OF-FILE>" in some errors.
    names = {"$END" if name == "<END-OF-FILE>" else name for name in names}
    words = {_TERMINAL_WORDS.get(name, name) for name in names if not name.startswith("__")}
    return sorted(words)


def _acceptable_terminals(error: UnexpectedInput) -> set[str]:
    # The contextual lexer reports what it could lex, which leaves out "the end"; the parser state
    # knows every terminal that would have been accepted.
    state = getattr(error, "state", None)
    try:
        names = state.parse_conf.parse_table.states[state.position]  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError):
        return set()
    # The action table also holds rules (lower case, for "goto"); only terminals are words a user can type.
    return {name for name in names if name == "$END" or name.isupper()}


def _describe_found(error: UnexpectedInput, text: str) -> str:
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        return quoted(str(error.token))
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        return "the end of the expression"
    rest: list[str] = text[error.pos_in_stream :].split(maxsplit=1) if error.pos_in_stream is not None else []
    return quoted(rest[0]) if rest else "the end of the expression"


def _syntax_error(error: UnexpectedInput, text: str) -> TimingError:
    if isinstance(error, UnexpectedCharacters):
        expected = _expected_words(_acceptable_terminals(error) or error.allowed or set())
        line, column = error.line, error.column
    elif isinstance(error, UnexpectedToken):
        expected = _expected_words(_acceptable_terminals(error) or error.expected)
        if error.token.type == "$END":
            line, column = _end_position(text)
        else:
            line, column = error.line, error.column
    else:  # UnexpectedEOF
        expected = _expected_words(set(getattr(error, "expected", ()) or ()))
        line, column = _end_position(text)
    found = _describe_found(error, text)
    reason = f"expected {_or_list(expected)}, got {found}" if expected else f"unexpected {found}"
    return TimingError(reason, expression=text, line=line, column=column, expected=expected)


def _end_position(text: str) -> tuple[int, int]:
    stripped = text.rstrip()
    # Lark counts lines by "\n" only; so do we, everywhere positions are computed or shown.
    lines = stripped.split("\n")
    return len(lines), len(lines[-1]) + 1


def _or_list(words: list[str]) -> str:
    if len(words) <= 2:
        return " or ".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return line, column


def parse_expression_uncached(text: str) -> TimingSpec:
    """Parse ``text`` into a timing model object, without the cache (benchmarks use this)."""
    if not isinstance(text, str):
        raise TimingError(f"a timing expression must be a string, not {type(text).__name__}", expression=str(text))
    if not text.strip():
        raise TimingError("the expression is empty", expression=text, expected=["'every'", "'once'"])
    try:
        spec: TimingSpec = _parser().parse(text)  # type: ignore[assignment]  # the transformer's result
    except _Invalid as invalid:
        offset = invalid.token.start_pos if invalid.token is not None else 0
        line, column = _position(text, offset or 0)
        raise TimingError(invalid.reason, expression=text, line=line, column=column) from None
    except UnexpectedInput as error:
        raise _syntax_error(error, text) from None
    return spec


@functools.lru_cache(maxsize=4096)
def parse_expression(text: str) -> TimingSpec:
    """Parse ``text`` into a timing model object; raises :class:`TimingError`."""
    return parse_expression_uncached(text)
