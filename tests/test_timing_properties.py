"""Property tests for timings.

A hypothesis strategy generates valid expressions of every form in many spellings (case, commas,
extra white space, optional words, abbreviations), together with what they mean. The expected fire
instants come from small brute-force oracles over :mod:`zoneinfo` that apply the specification
directly (``fold=0`` is PEP 495's reading of RFC 5545: a time in a gap takes the offset from before
the gap, a repeated time its first occurrence); they never call celery_orchestra's evaluator.
"""

from __future__ import annotations

import functools
import itertools
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from celery_orchestra import Timing, timing
from celery_orchestra.timing.schedule import NEVER_SECONDS

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
    "Pacific/Chatham",
    "UTC",
]

# Local times that fall into, or next to, the 2024/2025 DST gaps and folds of the zones above
# (Santiago changes at midnight, Chatham at 02:45/03:45, Lord Howe by half an hour at 02:00).
CRITICAL_TIMES = [
    time(0, 0),
    time(0, 30),
    time(1, 0),
    time(1, 30),
    time(1, 45),
    time(2, 0),
    time(2, 15),
    time(2, 30),
    time(2, 45),
    time(3, 0),
    time(3, 15),
    time(3, 30),
    time(3, 45),
    time(23, 0),
    time(23, 30),
    time(23, 59, 59),
]

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- generating expressions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    """A generated expression and what it must mean."""

    text: str
    kind: str
    delta: timedelta | None = None  # cyclic, once in
    second: int | None = None  # minutely; hourly (with minute)
    minute: int | None = None  # hourly
    at: time | None = None  # daily, weekly, once at a clock time
    step: int = 1  # daily
    days: frozenset[int] | None = None  # weekly; once on a weekday (one day)
    when: datetime | None = None  # once at a date (naive wall time)


SEPARATORS = [" ", "  ", ", ", " ,", ",", "\t", "\n", " , "]
EDGES = ["", "", " ", "  ", ", ", "\n"]
UNIT_SPELLINGS = {
    1: ["second", "seconds", "sec", "secs"],
    60: ["minute", "minutes", "min", "mins"],
    3600: ["hour", "hours", "hr", "hrs"],
    86400: ["day", "days"],
    604800: ["week", "weeks"],
}
DAY_SPELLINGS = [
    ["monday", "mon"],
    ["tuesday", "tues", "tue"],
    ["wednesday", "wed"],
    ["thursday", "thurs", "thur", "thu"],
    ["friday", "fri"],
    ["saturday", "sat"],
    ["sunday", "sun"],
]
AMPM = ["am", "pm", "a.m.", "p.m."]

Draw = st.DrawFn


def cased(draw: Draw, word: str) -> str:
    style = draw(st.sampled_from(["lower", "upper", "title", "as is"]))
    if style == "lower":
        return word.lower()
    if style == "upper":
        return word.upper()
    if style == "title":
        return word.title()
    return word


def spelled(draw: Draw, choices: list[str]) -> str:
    return cased(draw, draw(st.sampled_from(choices)))


def number(draw: Draw, value: int) -> str:
    if value < 10 and draw(st.booleans()):
        return f"0{value}"
    return str(value)


def join(draw: Draw, tokens: list[str]) -> str:
    text = draw(st.sampled_from(EDGES))
    for index, token in enumerate(tokens):
        if index:
            text += draw(st.sampled_from(SEPARATORS))
        text += token
    return text + draw(st.sampled_from(EDGES))


def optional(draw: Draw, choices: list[str]) -> list[str]:
    """Zero or one of ``choices`` as a token list (for optional words like 'and', 'at')."""
    if draw(st.booleans()):
        return [spelled(draw, choices)]
    return []


@st.composite
def durations(draw: Draw) -> tuple[list[str], timedelta]:
    """``01:30:00`` or ``1 hour and 30 minutes`` (units in any order, counts optional or decimal)."""
    if draw(st.booleans()):
        hours = draw(st.integers(0, 150))
        minutes = draw(st.integers(0, 59))
        seconds = draw(st.integers(0, 59))
        assume(hours or minutes or seconds)
        return [f"{number(draw, hours)}:{minutes:02d}:{seconds:02d}"], timedelta(
            hours=hours, minutes=minutes, seconds=seconds
        )
    units = draw(st.lists(st.sampled_from(sorted(UNIT_SPELLINGS)), min_size=1, max_size=5, unique=True))
    tokens: list[str] = []
    total_ms = 0
    for index, unit in enumerate(units):
        if index:
            tokens += optional(draw, ["and"])
        form = draw(st.sampled_from(["implicit one", "integer", "decimal"]))
        limit = 3000 if unit < 86400 else 300
        if form == "implicit one":
            count_ms = 1000
        elif form == "integer":
            whole = draw(st.integers(0, limit))
            tokens.append(number(draw, whole))
            count_ms = whole * 1000
        else:
            whole, thousandths = draw(st.integers(0, limit)), draw(st.integers(0, 999))
            digits = f"{thousandths:03d}"[: draw(st.integers(1, 3))]
            tokens.append(f"{whole}.{digits}")
            count_ms = whole * 1000 + int(digits.ljust(3, "0"))
        tokens.append(spelled(draw, UNIT_SPELLINGS[unit]))
        total_ms += count_ms * unit
    assume(total_ms > 0)
    # count_ms * unit is a whole number of milliseconds: exact in microseconds
    return tokens, timedelta(milliseconds=total_ms)


@st.composite
def clock_times(draw: Draw) -> tuple[list[str], time]:
    """A clock time: 9:15, 09:15:30, 9:15 pm, 9pm, noon, midnight."""
    form = draw(st.sampled_from(["24h", "24h", "ampm clock", "ampm hour", "noon", "midnight"]))
    if form == "24h":
        hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
        if draw(st.booleans()):
            second = draw(st.integers(0, 59))
            return [f"{number(draw, hour)}:{minute:02d}:{second:02d}"], time(hour, minute, second)
        return [f"{number(draw, hour)}:{minute:02d}"], time(hour, minute)
    if form in ("ampm clock", "ampm hour"):
        hour12 = draw(st.integers(1, 12))
        suffix = spelled(draw, AMPM)
        hour = hour12 % 12 + (12 if suffix.lower().startswith("p") else 0)
        if form == "ampm hour":
            glued = draw(st.booleans())
            tokens = [f"{hour12}{suffix}"] if glued else [str(hour12), suffix]
            return tokens, time(hour)
        minute = draw(st.integers(0, 59))
        return [f"{number(draw, hour12)}:{minute:02d}", suffix], time(hour, minute)
    if form == "noon":
        return [cased(draw, "noon")], time(12)
    return [cased(draw, "midnight")], time(0)


@st.composite
def times_of_day(draw: Draw) -> tuple[list[str], time]:
    """A clock time, or ``13 hours [and 30 minutes] [and 15 seconds]``."""
    if draw(st.integers(0, 3)):
        return draw(clock_times())
    hour = draw(st.integers(0, 23))
    tokens = [str(hour), spelled(draw, UNIT_SPELLINGS[3600])]
    minute = second = 0
    if draw(st.booleans()):
        minute = draw(st.integers(0, 59))
        tokens += [*optional(draw, ["and"]), str(minute), spelled(draw, UNIT_SPELLINGS[60])]
    if draw(st.booleans()):
        second = draw(st.integers(0, 59))
        tokens += [*optional(draw, ["and"]), str(second), spelled(draw, UNIT_SPELLINGS[1])]
    return tokens, time(hour, minute, second)


def day_name(draw: Draw, day: int) -> str:
    name = draw(st.sampled_from(DAY_SPELLINGS[day]))
    return cased(draw, name + ("s" if draw(st.integers(0, 4)) == 0 else ""))


@st.composite
def day_sets(draw: Draw) -> tuple[list[str], frozenset[int]]:
    items = draw(st.lists(st.sampled_from(["day", "day", "day", "weekday", "weekend"]), min_size=1, max_size=4))
    tokens: list[str] = []
    days: set[int] = set()
    for index, item in enumerate(items):
        if index:
            tokens += optional(draw, ["and"])
        if item == "day":
            day = draw(st.integers(0, 6))
            days.add(day)
            tokens.append(day_name(draw, day))
        elif item == "weekday":
            days.update(range(5))
            tokens.append(spelled(draw, ["weekday", "weekdays"]))
        else:
            days.update({5, 6})
            tokens.append(spelled(draw, ["weekend", "weekends"]))
    return tokens, frozenset(days)


@st.composite
def every_interval(draw: Draw) -> Generated:
    tokens, delta = draw(durations())
    return Generated(join(draw, [cased(draw, "every"), *tokens]), "cyclic", delta=delta)


@st.composite
def every_minute(draw: Draw) -> Generated:
    second = draw(st.integers(0, 59))
    tokens = [
        cased(draw, "every"),
        spelled(draw, UNIT_SPELLINGS[60]),
        spelled(draw, ["at", "on"]),
        number(draw, second),
        spelled(draw, UNIT_SPELLINGS[1]),
    ]
    return Generated(join(draw, tokens), "minutely", second=second)


@st.composite
def every_hour(draw: Draw) -> Generated:
    minute, second = draw(st.integers(0, 59)), draw(st.integers(0, 59))
    if draw(st.booleans()):
        position = [f"{number(draw, minute)}:{second:02d}"]
    else:
        position = [number(draw, minute), spelled(draw, UNIT_SPELLINGS[60])]
        if second or draw(st.booleans()):
            position += [*optional(draw, ["and"]), number(draw, second), spelled(draw, UNIT_SPELLINGS[1])]
    tokens = [cased(draw, "every"), spelled(draw, UNIT_SPELLINGS[3600]), spelled(draw, ["at", "on"]), *position]
    return Generated(join(draw, tokens), "hourly", minute=minute, second=second)


@st.composite
def every_day(draw: Draw) -> Generated:
    clock, at = draw(times_of_day())
    step = draw(st.sampled_from([None, 1, 2, 3, 7, 10]))
    count = [] if step is None else [number(draw, step)]
    tokens = [cased(draw, "every"), *count, spelled(draw, ["day", "days"]), spelled(draw, ["at", "on"]), *clock]
    return Generated(join(draw, tokens), "daily", at=at, step=step or 1)


@st.composite
def every_week(draw: Draw) -> Generated:
    day_tokens, days = draw(day_sets())
    if draw(st.integers(0, 4)):
        clock, at = draw(times_of_day())
        tail = [spelled(draw, ["at", "on"]), *clock]
    else:
        tail, at = [], time(0)
    text = join(draw, [cased(draw, "every"), *day_tokens, *tail])
    if len(days) == 7:
        return Generated(text, "daily", at=at)
    return Generated(text, "weekly", at=at, days=days)


@st.composite
def once_after(draw: Draw) -> Generated:
    tokens, delta = draw(durations())
    prefix = optional(draw, ["once"])
    return Generated(join(draw, [*prefix, cased(draw, "in"), *tokens]), "once", delta=delta)


ONCE_PREFIXES = [[], ["once"], ["once", "at"], ["once", "on"], ["next"], ["at"], ["on"]]


@st.composite
def once_at_clock(draw: Draw) -> Generated:
    prefix = [cased(draw, word) for word in draw(st.sampled_from(ONCE_PREFIXES))]
    clock, at = draw(clock_times())
    return Generated(join(draw, [*prefix, *clock]), "once", at=at)


@st.composite
def once_on_weekday(draw: Draw) -> Generated:
    prefix = [cased(draw, word) for word in draw(st.sampled_from(ONCE_PREFIXES))]
    day = draw(st.integers(0, 6))
    clock, at = draw(times_of_day())
    tokens = [*prefix, day_name(draw, day), *optional(draw, ["at", "on"]), *clock]
    return Generated(join(draw, tokens), "once", at=at, days=frozenset({day}))


@st.composite
def once_at_date(draw: Draw) -> Generated:
    prefix = [cased(draw, word) for word in draw(st.sampled_from([p for p in ONCE_PREFIXES if p != ["next"]]))]
    day = draw(st.dates(min_value=date(2022, 1, 1), max_value=date(2028, 12, 31)))
    if draw(st.booleans()):
        clock, at = draw(clock_times())
        tokens = [*prefix, day.isoformat(), *optional(draw, ["at", "on"]), *clock]
    else:
        hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
        second = draw(st.one_of(st.none(), st.integers(0, 59)))
        iso = f"{day.isoformat()}{draw(st.sampled_from(['T', 't']))}{number(draw, hour)}:{minute:02d}"
        if second is not None:
            iso += f":{second:02d}"
        tokens, at = [*prefix, iso], time(hour, minute, second or 0)
    return Generated(join(draw, tokens), "once", when=datetime.combine(day, at))


def expressions() -> st.SearchStrategy[Generated]:
    return st.one_of(
        every_interval(),
        every_minute(),
        every_hour(),
        every_day(),
        every_week(),
        once_after(),
        once_at_clock(),
        once_on_weekday(),
        once_at_date(),
    )


@functools.cache
def transitions(zone: str) -> list[datetime]:
    """The UTC instants at which ``zone`` changes its offset in 2024 and 2025 (15-minute scan)."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    instant = datetime(2024, 1, 1, tzinfo=UTC)
    previous = instant.astimezone(tz).utcoffset()
    while instant.year < 2026:
        instant += timedelta(minutes=15)
        offset = instant.astimezone(tz).utcoffset()
        if offset != previous:
            found.append(instant)
            previous = offset
    return found


@st.composite
def zones_and_anchors(draw: Draw) -> tuple[str, datetime]:
    """A zone, and an anchor that is often within a few hours of one of its DST changes."""
    zone = draw(st.sampled_from(ZONES))
    near = transitions(zone)
    if draw(st.booleans()) and near:
        centre = draw(st.sampled_from(near))
        return zone, centre + timedelta(seconds=draw(st.integers(-6 * 3600, 6 * 3600)))
    naive = draw(st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2027, 12, 31)))
    return zone, naive.replace(tzinfo=UTC)


# ---- oracles ------------------------------------------------------------------------------------------


def wall_instant(day: date, at: time, zone: str) -> datetime:
    """When the clock in ``zone`` shows ``day`` ``at``, per RFC 5545 (PEP 495 fold=0)."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def first_on_days(after: datetime, at: time, zone: str, matches: Callable[[date], bool]) -> datetime:
    day = after.astimezone(ZoneInfo(zone)).date() - timedelta(days=1)
    while True:
        if matches(day):
            instant = wall_instant(day, at, zone)
            if instant > after:
                return instant
        day += timedelta(days=1)


def first_wall_position(after: datetime, zone: str, minute: int | None, second: int) -> datetime:
    """First real instant after ``after`` whose local clock shows [minute:]second (whole-second offsets)."""
    tz = ZoneInfo(zone)
    instant = after.replace(microsecond=0) + timedelta(seconds=1)
    while instant.astimezone(tz).second != second:
        instant += timedelta(seconds=1)
    # every zone in ZONES has whole-minute offsets in the years we use, so the seconds stay put
    while minute is not None and instant.astimezone(tz).minute != minute:
        instant += timedelta(minutes=1)
    return instant


def expected_fires(case: Generated, zone: str, anchor: datetime) -> list[datetime]:
    """The first two fire instants (one, or none, for once kinds), straight from the specification."""
    if case.kind == "cyclic":
        assert case.delta is not None
        return [anchor + case.delta, anchor + 2 * case.delta]
    if case.kind == "minutely" or case.kind == "hourly":
        assert case.second is not None
        first = first_wall_position(anchor, zone, case.minute, case.second)
        return [first, first_wall_position(first, zone, case.minute, case.second)]
    if case.kind in ("daily", "weekly"):
        assert case.at is not None
        days = case.days
        first = first_on_days(anchor, case.at, zone, lambda day: days is None or day.weekday() in days)
        if case.step > 1:
            first_date = first.astimezone(ZoneInfo(zone)).date()
            return [first, wall_instant(first_date + timedelta(days=case.step), case.at, zone)]
        return [first, first_on_days(first, case.at, zone, lambda day: days is None or day.weekday() in days)]
    # once
    if case.delta is not None:
        return [anchor + case.delta]
    if case.when is not None:
        instant = wall_instant(case.when.date(), case.when.time(), zone)
        return [instant] if instant > anchor else []
    assert case.at is not None
    days = case.days
    return [first_on_days(anchor, case.at, zone, lambda day: days is None or day.weekday() in days)]


def utc_list(fires: list[datetime]) -> list[datetime]:
    return [fire.astimezone(UTC) for fire in fires]


# ---- properties -----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(case=expressions(), where=zones_and_anchors())
def test_generated_expressions_mean_what_they_say(case: Generated, where: tuple[str, datetime]) -> None:
    zone, anchor = where
    t = timing(case.text, zone, anchor=anchor)
    assert t.kind == case.kind
    assert t.max_runs == (1 if case.kind == "once" else None)
    assert utc_list(t.next_fires(2, after=anchor)) == expected_fires(case, zone, anchor)


@PROPERTY_SETTINGS
@given(case=expressions(), where=zones_and_anchors())
def test_normalised_text_round_trips(case: Generated, where: tuple[str, datetime]) -> None:
    zone, anchor = where
    t = timing(case.text, zone, anchor=anchor)
    again = timing(str(t), zone, anchor=anchor)
    assert again == t
    assert hash(again) == hash(t)
    assert str(again) == str(t)


@PROPERTY_SETTINGS
@given(case=expressions(), where=zones_and_anchors())
def test_pickle_round_trip(case: Generated, where: tuple[str, datetime]) -> None:
    zone, anchor = where
    t = timing(case.text, zone, anchor=anchor)
    restored = pickle.loads(pickle.dumps(t))
    assert isinstance(restored, Timing)
    assert restored == t
    assert utc_list(restored.next_fires(3, after=anchor)) == utc_list(t.next_fires(3, after=anchor))


@PROPERTY_SETTINGS
@given(case=expressions(), where=zones_and_anchors(), offset=st.integers(-3 * 86400, 30 * 86400))
def test_fires_strictly_increase_after_the_anchor(case: Generated, where: tuple[str, datetime], offset: int) -> None:
    zone, anchor = where
    t = timing(case.text, zone, anchor=anchor)
    start = anchor + timedelta(seconds=offset)
    fires = utc_list(t.next_fires(25, after=start))
    assert all(fire > anchor and fire > start for fire in fires)
    assert all(earlier < later for earlier, later in itertools.pairwise(fires))
    if case.kind == "once":
        assert len(fires) <= 1
    else:
        assert len(fires) == 25
    for fire in fires:
        following = t.next_fire_after(fire)
        assert following is None or following > fire


@st.composite
def daily_or_weekly(draw: Draw) -> tuple[str, int, frozenset[int] | None, time]:
    """A daily/weekly timing at a time that is often critical around some zone's DST change."""
    critical = draw(st.booleans())
    at = draw(st.sampled_from(CRITICAL_TIMES)) if critical else draw(st.times()).replace(microsecond=0, fold=0)
    clock = f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}"
    shape = draw(st.sampled_from(["day", "2 days", "3 days", "days"]))
    if shape == "day":
        return f"every day at {clock}", 1, None, at
    if shape in ("2 days", "3 days"):
        return f"every {shape} at {clock}", int(shape[0]), None, at
    days = draw(st.frozensets(st.integers(0, 6), min_size=1, max_size=6))
    names = " and ".join(DAY_SPELLINGS[d][0] for d in sorted(days))
    return f"every {names} at {clock}", 1, days, at


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=daily_or_weekly(),
    zone=st.sampled_from(ZONES),
    naive_anchor=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2024, 12, 31)),
)
def test_daily_and_weekly_never_repeat_or_skip_a_local_date_over_a_year(
    spec: tuple[str, int, frozenset[int] | None, time], zone: str, naive_anchor: datetime
) -> None:
    expression, step, days, at = spec
    anchor = naive_anchor.replace(tzinfo=UTC)
    tz = ZoneInfo(zone)
    t = timing(expression, zone, anchor=anchor)

    fires: list[datetime] = []
    cursor = anchor
    while True:
        fire = t.next_fire_after(cursor)
        assert fire is not None
        if fire > anchor + timedelta(days=366):
            break
        fires.append(fire.astimezone(UTC))
        cursor = fire
    local_dates = [fire.astimezone(tz).date() for fire in fires]

    # never twice on one local date
    assert all(earlier < later for earlier, later in itertools.pairwise(local_dates))
    # the first is the first matching date whose wall instant is after the anchor
    assert fires[0] == first_on_days(anchor, at, zone, lambda day: days is None or day.weekday() in days)
    # and from there on, no matching date is skipped
    wanted = []
    day = local_dates[0]
    while day <= local_dates[-1]:
        if days is None or day.weekday() in days:
            wanted.append(day)
        day += timedelta(days=step)
    assert local_dates == wanted
    # each fire is the spec's instant for its date (the wall time itself unless it is in a gap)
    assert fires == [wall_instant(day, at, zone) for day in local_dates]
    # and a year holds about as many as it should
    per_week = 7 / step if days is None else len(days)
    assert abs(len(fires) - per_week * 366 / 7) <= 2


# ---- Celery's protocol ------------------------------------------------------------------------------


def frozen(now: datetime) -> Callable[[], datetime]:
    return lambda: now


@PROPERTY_SETTINGS
@given(
    case=expressions(),
    where=zones_and_anchors(),
    now_offset=st.integers(0, 10 * 86400),
    last_offset=st.integers(-86400, 10 * 86400),
)
def test_is_due_and_remaining_estimate_agree_with_next_fire_after(
    case: Generated, where: tuple[str, datetime], now_offset: int, last_offset: int
) -> None:
    zone, anchor = where
    now = anchor + timedelta(seconds=now_offset)
    last_run_at = min(anchor + timedelta(seconds=last_offset), now)
    t = timing(case.text, zone, anchor=anchor, nowfun=frozen(now))

    fire = t.next_fire_after(last_run_at)
    state = t.is_due(last_run_at)
    remaining = t.remaining_estimate(last_run_at)

    assert state.next is not None
    assert isinstance(state.next, float)
    assert math.isfinite(state.next)
    assert state.next >= 0

    if fire is None:
        assert tuple(state) == (False, NEVER_SECONDS)
        assert remaining == timedelta(seconds=NEVER_SECONDS)
        return
    assert remaining == fire - now
    assert state.is_due == (fire <= now)
    if state.is_due:
        following = t.next_fire_after(now)
        expected = NEVER_SECONDS if following is None else (following - now).total_seconds()
        assert state.next == expected
    else:
        assert state.next == (fire - now).total_seconds()
    # Celery's convention: a naive last_run_at is UTC
    naive = last_run_at.astimezone(UTC).replace(tzinfo=None)
    assert tuple(t.is_due(naive)) == tuple(state)


@PROPERTY_SETTINGS
@given(case=expressions(), where=zones_and_anchors())
def test_a_beat_that_sleeps_as_told_sends_exactly_at_the_fire_times(
    case: Generated, where: tuple[str, datetime]
) -> None:
    """Simulate stock beat: ask is_due, send if due (last_run_at = now), sleep the returned delay."""
    zone, anchor = where
    clock = [anchor]
    t = timing(case.text, zone, anchor=anchor, nowfun=lambda: clock[0])
    horizon = anchor + timedelta(days=400)

    sends: list[datetime] = []
    last_run_at = anchor
    for _ in range(40):
        state = t.is_due(last_run_at)
        assert math.isfinite(state.next)
        assert state.next >= 0
        if state.is_due:
            sends.append(clock[0])
            last_run_at = clock[0]
            if len(sends) == 6:
                break
        else:
            assert state.next > 0, "not due but asks to be woken immediately: beat would spin"
        clock[0] = clock[0] + timedelta(seconds=state.next)
        if clock[0] > horizon:
            break

    expected = [fire for fire in utc_list(t.next_fires(6, after=anchor)) if fire <= horizon]
    assert len(sends) == len(expected)
    for sent, fire in zip(sends, expected, strict=True):
        assert abs(sent - fire) <= timedelta(microseconds=2)
