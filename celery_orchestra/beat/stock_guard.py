"""Stopping stock beat from starting with a configuration only celery-orchestra's scheduler understands.

Forgetting ``-S celery_orchestra.Scheduler`` used to end in ``'str' object has no attribute 'app'``
(stock beat meeting a timing string), logged as a traceback one character per line; under
``celery worker -B`` the worker even kept running with a dead beat. Celery imports every
``celery.commands`` entry point (ours among them) when any ``celery`` command starts, and beat and
the worker both import the app's task modules (the ``import_modules`` signal) before they build a
scheduler: a receiver of that signal looks at the command being run and, when stock beat would run
our configuration, says in one line what to do and exits with status 1.

Only what stock beat cannot run is refused: timing strings, our entry keys, and YAML schedule files
(which stock beat would silently ignore). A :class:`~celery_orchestra.timing.schedule.Timing` object
runs under stock beat, and stays allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from celery import signals

__all__ = ["connect", "stock_beat_problem"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: The spellings of our scheduler that need no import to recognise.
_OUR_NAMES: Final = frozenset(
    {
        "orchestra",
        "celery_orchestra.Scheduler",
        "celery_orchestra:Scheduler",
        "celery_orchestra.beat.scheduler.Scheduler",
        "celery_orchestra.beat.scheduler:Scheduler",
    }
)
#: ``beat_schedule`` entry keys that only celery-orchestra's scheduler accepts.
_OUR_ENTRY_KEYS: Final = ("timezone", "tags", "enabled")
#: For each command that may run beat: what to do, the option people mistake for the scheduler's
#: (its parameter name), and what to say when it holds our scheduler's name.
_COMMANDS: Final = {
    "beat": (
        "start beat with `-S celery_orchestra.Scheduler`",
        "schedule",
        " (`-s` names beat's schedule file; the scheduler is `-S`)",
    ),
    "worker": (
        "start the worker's beat with `--scheduler celery_orchestra.Scheduler`",
        "statedb",
        " (`-S` of `celery worker` names its state file; the scheduler is `--scheduler`)",
    ),
}


def connect() -> None:
    """Watch every ``celery beat`` and ``celery worker -B`` this process runs (idempotent)."""
    signals.import_modules.connect(_refuse_stock_beat, weak=False, dispatch_uid="celery_orchestra.stock_guard")


def stock_beat_problem(conf: Any) -> str | None:
    """What in ``conf`` stock beat cannot run (the first such thing), or ``None``."""
    if conf.get("orchestra_schedule_files"):
        return "orchestra_schedule_files is set, and stock beat would ignore those jobs"
    schedule = conf.get("beat_schedule")
    if not isinstance(schedule, Mapping):
        return None
    for name, entry in schedule.items():
        if not isinstance(entry, Mapping):
            continue
        if isinstance(entry.get("schedule"), str):
            return f"job {name!r} has a timing string as its schedule"
        for key in _OUR_ENTRY_KEYS:
            if key in entry:
                return f"job {name!r} has {key!r}, which stock beat does not take"
    return None


def _refuse_stock_beat(sender: Any = None, **_: Any) -> None:
    import click

    context = click.get_current_context(silent=True)
    if context is None or sender is None:
        return  # beat started from Python, not the command line: nothing to read the choice from
    params = context.params
    command = _COMMANDS.get(context.info_name or "")
    if command is None or (context.info_name == "worker" and not params.get("beat")):
        return
    how, mixed_up, mix_up_hint = command
    scheduler = params.get("scheduler")
    conf = sender.conf
    if _is_ours(scheduler or conf.get("beat_scheduler")):
        return
    problem = stock_beat_problem(conf)
    if problem is None:
        return
    hint = mix_up_hint if str(params.get(mixed_up) or "").startswith("celery_orchestra") else ""
    logger.critical(
        "celery-orchestra: this configuration needs celery-orchestra's scheduler (%s): %s (or set `beat_scheduler`)%s",
        problem,
        how,
        hint,
    )
    raise SystemExit(1)


def _is_ours(scheduler: object) -> bool:
    """Whether ``scheduler`` (a name, alias or class) is celery-orchestra's scheduler or a subclass.

    A name that does not import is left to Celery to report.
    """
    if isinstance(scheduler, str) and scheduler in _OUR_NAMES:
        return True
    try:
        from celery.utils.imports import load_extension_class_names, symbol_by_name

        aliases = dict(load_extension_class_names("celery.beat_schedulers"))
        found = symbol_by_name(scheduler, aliases=aliases)
    except Exception:
        return True
    from .scheduler import Scheduler

    return isinstance(found, type) and issubclass(found, Scheduler)
