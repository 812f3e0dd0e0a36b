"""How fast are timings? Parsing and evaluation, against stock Celery's crontab in the same run.

Run::

    python benchmarks/bench_timing.py            # about 30-40 s
    python benchmarks/bench_timing.py --quick    # a smoke run (used by tests/test_benchmarks_run.py)

Everything runs in this one process, pinned to one CPU where the OS allows it. Each figure is the
median of several rounds (``time.perf_counter``, garbage collector off while timing, like
:mod:`timeit`); a round repeats the operation until it has taken at least ``--min-time`` seconds.

* Parsing: ``parse_expression_uncached`` over the predecessor's 23 expressions plus the extensions,
  and cached ``timing()`` calls (parse cache hit plus building the ``Timing``), against constructing
  ``celery.schedules.crontab(minute=..., hour=..., day_of_week=...)`` for comparable schedules and
  ``crontab.from_string``.
* Evaluation: ``Timing.next_fire_after`` (and ``Timing.remaining_estimate``) per kind, against
  ``crontab(...).remaining_estimate(last_run_at)`` for the closest crontab, with a fixed ``nowfun`` and
  the same 1,024 ``last_run_at`` instants spread over a year.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from celery import Celery
from celery.schedules import crontab

from celery_orchestra import timing
from celery_orchestra.timing.parser import parse_expression_uncached

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.machine import machine, one_cpu
from tests.expressions import EXTENSION_EXAMPLES, PREDECESSOR_EXPRESSIONS

ZONE = "Europe/Berlin"
ANCHOR = datetime(2024, 3, 3, 7, 36, 47, tzinfo=UTC)

EXPRESSIONS = [*PREDECESSOR_EXPRESSIONS, *EXTENSION_EXAMPLES]

# Roughly the crontab a Celery user would write for each of the expressions above (crontab has no
# seconds and no "once"; the point is constructing comparable schedule objects).
CRONTAB_FIELDS = [
    ("*", "*", "*"),
    ("36", "7", "*"),
    ("*/31", "*", "*"),
    ("15", "3", "mon"),
    ("11", "13", "tue"),
    ("15", "1", "wed"),
    ("31", "0", "thu"),
    ("15", "9", "*"),
    ("*", "*", "*"),
    ("5", "*", "*"),
    ("3", "9", "*"),
    ("15", "9", "*"),
    ("0", "13", "*"),
    ("48", "20", "*"),
    ("23", "11", "*"),
    ("13", "9", "*"),
    ("13", "9", "*"),
    ("13", "9", "*"),
    ("0", "23", "*"),
    ("39", "12", "*"),
    ("46", "8", "*"),
    ("38", "7", "*"),
    ("37", "7", "*"),
    ("*/15", "*", "*"),
    ("0", "10", "*/2"),
    ("0", "8", "mon-fri"),
    ("0", "9", "mon,thu"),
]
CRONTAB_STRINGS = [f"{minute} {hour} * * {dow}" for minute, hour, dow in CRONTAB_FIELDS]

# kind -> (our expression, the closest crontab)
PER_KIND: list[tuple[str, str, dict[str, str]]] = [
    ("cyclic", "every 15 minutes", {"minute": "*/15"}),
    ("minutely", "every minute at 15 seconds", {}),
    ("hourly", "every hour at 05:00", {"minute": "5"}),
    ("daily", "every day at 9:15", {"minute": "15", "hour": "9"}),
    ("weekly", "every Monday and Thursday at 9:00", {"minute": "0", "hour": "9", "day_of_week": "mon,thu"}),
    ("once", "next 23:00:00", {"minute": "0", "hour": "23"}),
]

Runner = Callable[[int], None]


@dataclass(frozen=True)
class Settings:
    rounds: int
    min_time: float


def measure(run: Runner, settings: Settings) -> float:
    """Median operations per second of ``run(n)`` (which performs ``n`` operations)."""
    n = 1
    while True:  # calibrate: find an n that takes at least min_time
        elapsed = _timed(run, n)
        if elapsed >= settings.min_time:
            break
        n = max(n * 2, int(n * settings.min_time / max(elapsed, 1e-9) * 1.2))
    rates = [n / max(_timed(run, n), 1e-9) for _ in range(settings.rounds)]
    return statistics.median(rates)


def _timed(run: Runner, n: int) -> float:
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        run(n)
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


# ---- the operations ----------------------------------------------------------------------------------


def parse_uncached(n: int) -> None:
    expressions, count = EXPRESSIONS, len(EXPRESSIONS)
    for i in range(n):
        parse_expression_uncached(expressions[i % count])


def timing_cached(n: int) -> None:
    expressions, count = EXPRESSIONS, len(EXPRESSIONS)
    for i in range(n):
        timing(expressions[i % count], ZONE, anchor=ANCHOR)


def crontab_construct(n: int) -> None:
    fields, count = CRONTAB_FIELDS, len(CRONTAB_FIELDS)
    for i in range(n):
        minute, hour, day_of_week = fields[i % count]
        crontab(minute=minute, hour=hour, day_of_week=day_of_week)


def _crontab_from_string(text: str) -> crontab:
    # crontab.from_string arrived in Celery 5.5; the same parse by hand for 5.4.
    minute, hour, day_of_month, month_of_year, day_of_week = text.split()
    return crontab(minute, hour, day_of_week, day_of_month, month_of_year)


def crontab_from_string(n: int) -> None:
    strings, count = CRONTAB_STRINGS, len(CRONTAB_STRINGS)
    parse = getattr(crontab, "from_string", _crontab_from_string)
    for i in range(n):
        parse(strings[i % count])


def instants() -> list[datetime]:
    """1,024 instants spread over a year after the anchor (an odd step, so every time of day occurs)."""
    step = timedelta(seconds=30_817)
    return [ANCHOR + k * step for k in range(1024)]


def next_fire_after_runner(expression: str) -> Runner:
    t = timing(expression, ZONE, anchor=ANCHOR)
    points = instants()

    def run(n: int) -> None:
        nfa = t.next_fire_after
        for i in range(n):
            nfa(points[i & 1023])

    return run


def remaining_estimate_runner(expression: str, now: datetime) -> Runner:
    t = timing(expression, ZONE, anchor=ANCHOR, nowfun=lambda: now)
    points = instants()

    def run(n: int) -> None:
        estimate = t.remaining_estimate
        for i in range(n):
            estimate(points[i & 1023])

    return run


def crontab_estimate_runner(fields: dict[str, str], app: Celery, now: datetime) -> Runner:
    schedule = crontab(**fields, nowfun=lambda: now, app=app)
    points = instants()

    def run(n: int) -> None:
        estimate = schedule.remaining_estimate
        for i in range(n):
            estimate(points[i & 1023])

    return run


# ---- reporting -------------------------------------------------------------------------------------


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds, not figures)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per figure (default 7; 2 with --quick)")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per round (default 0.15)")
    args = parser.parse_args(argv)
    settings = Settings(
        rounds=args.rounds or (2 if args.quick else 7),
        min_time=args.min_time or (0.002 if args.quick else 0.15),
    )

    with one_cpu() as pinning:
        run_all(settings, pinning, quick=args.quick)
    return 0


def run_all(settings: Settings, pinning: str, *, quick: bool) -> None:
    print("celery-orchestra timing benchmark")
    for line in machine(pinning, ("celery", "kombu", "lark")):
        print(f"  {line}")
    print(
        f"  median of {settings.rounds} rounds, each >= {settings.min_time:g} s (time.perf_counter, gc off)"
        + ("  [--quick: smoke run, figures not meaningful]" if quick else "")
    )
    print()

    crontab_rate = measure(crontab_construct, settings)
    from_string_rate = measure(crontab_from_string, settings)
    parse_rate = measure(parse_uncached, settings)
    cached_rate = measure(timing_cached, settings)

    print(f"Parsing ({len(EXPRESSIONS)} expressions, round robin)")
    header = f"  {'operation':<44}{'per second':>14}{'crontab(...) per second':>26}{'ratio':>9}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, rate in (
        ("parse_expression_uncached (no cache)", parse_rate),
        ("timing() (parse cache hit + Timing)", cached_rate),
        ("crontab.from_string (stock Celery)", from_string_rate),
    ):
        print(f"  {label:<44}{fmt_rate(rate):>14}{fmt_rate(crontab_rate):>26}{rate / crontab_rate:>8.2f}x")
    print("  baseline: crontab(minute=, hour=, day_of_week=) construction for comparable schedules")
    print()

    app = Celery("bench", set_as_current=False)
    app.conf.timezone = ZONE
    now = instants()[-1] + timedelta(days=1)
    print("Evaluation (1,024 different instants, round robin)")
    header = (
        f"  {'kind':<10}{'expression':<36}{'next_fire_after/s':>19}{'remaining_estimate/s':>22}"
        f"{'crontab remaining_estimate/s':>30}{'ratio':>9}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for kind, expression, fields in PER_KIND:
        ours = measure(next_fire_after_runner(expression), settings)
        ours_estimate = measure(remaining_estimate_runner(expression, now), settings)
        theirs = measure(crontab_estimate_runner(fields, app, now), settings)
        cron = "crontab(" + ", ".join(f"{key}={value!r}" for key, value in fields.items()) + ")"
        print(
            f"  {kind:<10}{expression:<36}{fmt_rate(ours):>19}{fmt_rate(ours_estimate):>22}"
            f"{fmt_rate(theirs):>30}{ours / theirs:>8.2f}x   vs {cron}"
        )
    print("  ratio: next_fire_after per second / crontab(...).remaining_estimate(last_run_at) per second")


if __name__ == "__main__":
    sys.exit(main())
