"""The ``orchestra_*`` remote-control commands: their registration in Celery's ``Panel`` and their one
implementation.

``celery control`` only accepts commands registered in ``Panel`` *in its own process*, so this
module registers them when imported, and the ``celery.commands`` entry point (``celery
orchestra``) imports it in every ``celery`` process. That import must stay cheap and must not need
an app: everything heavy (the API, the store, SQLAlchemy) is imported when a command runs.

Commands (arguments as ``celery control`` maps them):

``orchestra_pause NAME...`` / ``orchestra_resume NAME...``
    purely variadic (``names``);
``orchestra_pause_tags TAG[,TAG...] [any|all]`` / ``orchestra_resume_tags ...``
    purely positional (``tags``, ``match``): Celery's CLI duplicates the last positional argument
    into the variadic list when a command has both;
``orchestra_enable NAME...`` / ``orchestra_disable NAME...``
    like pause and resume;
``orchestra_enable_tags TAG[,TAG...] [any|all]`` / ``orchestra_disable_tags ...``
    like the pause and resume tag commands;
``orchestra_run NAME``
    one positional (``name``): a manual run of the job now (``run_job_now``). Not idempotent, so
    only the *active* beat's node carries it out; standbys and workers reply that they did not;
``orchestra_jobs`` (an inspect command)
    every job with its state, next fire time, runs and tags.

Who answers: the beat process's node ``orchestra@<host>`` (:mod:`celery_orchestra.ops.remote`) applies
the commands to its store. Registering them here also makes every *worker* of a ``celery`` process
that imported this module answer them: a worker whose app has an explicit
``orchestra_database_url`` applies the command to that store too (the same store beat uses, so the
answer is the same), and any other worker says, in an ``ok`` reply, that beat applies it. Either way
the caller never gets a ``KeyError`` back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from celery.worker.control import control_command, inspect_command

from ..errors import CommandError, ControlError, OrchestraError
from ..settings import read_settings
from .text import visible

if TYPE_CHECKING:
    from ..store import JobStore

__all__ = [
    "CHANGE_COMMANDS",
    "COMMANDS",
    "DISABLE",
    "DISABLE_TAGS",
    "ECHO_LIMIT",
    "ENABLE",
    "ENABLE_TAGS",
    "JOBS",
    "PAUSE",
    "PAUSE_TAGS",
    "RESUME",
    "RESUME_TAGS",
    "RUN",
    "Command",
    "answer_in_worker",
    "execute",
    "not_carried_out",
    "parse_command",
    "run_command",
]

logger = logging.getLogger("celery_orchestra.control")

PAUSE: Final = "orchestra_pause"
RESUME: Final = "orchestra_resume"
PAUSE_TAGS: Final = "orchestra_pause_tags"
RESUME_TAGS: Final = "orchestra_resume_tags"
ENABLE: Final = "orchestra_enable"
DISABLE: Final = "orchestra_disable"
ENABLE_TAGS: Final = "orchestra_enable_tags"
DISABLE_TAGS: Final = "orchestra_disable_tags"
RUN: Final = "orchestra_run"
JOBS: Final = "orchestra_jobs"

_BY_NAMES: Final = (PAUSE, RESUME, ENABLE, DISABLE)
_BY_TAGS: Final = (PAUSE_TAGS, RESUME_TAGS, ENABLE_TAGS, DISABLE_TAGS)
#: Commands that change the store (the beat node refreshes its schedule after them).
CHANGE_COMMANDS: Final = frozenset({*_BY_NAMES, *_BY_TAGS, RUN})
COMMANDS: Final = (*_BY_NAMES, *_BY_TAGS, RUN, JOBS)

_SIGNATURES: Final = {
    **dict.fromkeys(_BY_NAMES, "NAME [NAME ...]"),
    **dict.fromkeys(_BY_TAGS, "TAG[,TAG...] [any|all]"),
    RUN: "NAME",
    JOBS: "",
}
_MATCHES: Final = ("any", "all")

Reply = dict[str, Any]

#: Characters of a caller's argument quoted back (in the error reply and so in beat's log) at most.
ECHO_LIMIT: Final = 80


def _quoted(value: object) -> str:
    """An argument as an error message quotes it: its repr, invisible characters escaped, shortened."""
    return visible(repr(value), ECHO_LIMIT)


@dataclass(frozen=True, slots=True)
class Command:
    """A checked command: what to do, and to which jobs."""

    method: str
    names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    any_tag: bool = True


# ---------------------------------------------------------------------------- arguments


def parse_command(method: str, arguments: Mapping[str, Any] | None) -> Command:
    """Check the arguments of ``method`` as a broadcast carries them; :class:`CommandError` if bad."""
    given = dict(arguments or {})
    if method in _BY_NAMES:
        _only(method, given, ("names",))
        names = given.get("names")
        if isinstance(names, str):
            names = [names]
        if not names:
            raise CommandError(f"{method} needs at least one job name ({method} {_SIGNATURES[method]})")
        if not isinstance(names, list | tuple) or not all(isinstance(name, str) and name.strip() for name in names):
            raise CommandError(f"{method}: job names must be non-empty strings, got {_quoted(names)}")
        return Command(method, names=tuple(dict.fromkeys(names)))
    if method == RUN:
        _only(method, given, ("name",))
        name = given.get("name")
        if not isinstance(name, str) or not name.strip():
            raise CommandError(f"{method} needs one job name ({method} {_SIGNATURES[method]}), got {_quoted(name)}")
        return Command(method, names=(name,))
    if method in _BY_TAGS:
        _only(method, given, ("tags", "match"))
        tags = _tags(method, given.get("tags"))
        match = given.get("match", "any")
        if not isinstance(match, str) or match.strip().lower() not in _MATCHES:
            raise CommandError(f"{method}: the match must be 'any' or 'all', got {_quoted(match)}")
        return Command(method, tags=tags, any_tag=match.strip().lower() == "any")
    if method == JOBS:
        _only(method, given, ())
        return Command(method)
    raise CommandError(f"unknown orchestra command {_quoted(method)}; expected one of {', '.join(COMMANDS)}")


def _only(method: str, given: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unexpected = sorted(set(given) - set(allowed))
    if unexpected:
        takes = f"takes {', '.join(map(repr, allowed))}" if allowed else "takes no arguments"
        raise CommandError(f"{method} {takes}; unexpected argument(s): {_listed(unexpected)}")


def _listed(keys: Sequence[object]) -> str:
    shown = ", ".join(map(_quoted, keys[:10]))
    return shown if len(keys) <= 10 else f"{shown} and {len(keys) - 10} more"


def _tags(method: str, value: object) -> tuple[str, ...]:
    from .api import parse_tags

    if not isinstance(value, str | list | tuple):
        raise CommandError(f"{method} needs tags ({method} {_SIGNATURES[method]}), got {_quoted(value)}")
    try:
        return parse_tags(value)
    except ControlError as error:
        raise CommandError(f"{method}: {error}") from None


# ---------------------------------------------------------------------------- carrying out


def run_command(store: JobStore, command: Command, *, default_timezone: str | None = None) -> Reply:
    """Apply a checked command to ``store`` through :mod:`celery_orchestra.ops.api`; raises its errors."""
    from . import api
    from .jobs_api import run_job_now

    by_names = {PAUSE: api.pause_jobs, RESUME: api.resume_jobs, ENABLE: api.enable_jobs, DISABLE: api.disable_jobs}
    by_tags = {
        PAUSE_TAGS: api.pause_jobs_with_tags,
        RESUME_TAGS: api.resume_jobs_with_tags,
        ENABLE_TAGS: api.enable_jobs_with_tags,
        DISABLE_TAGS: api.disable_jobs_with_tags,
    }
    if command.method in by_names:
        return {"ok": by_names[command.method](store, command.names).describe()}
    if command.method in by_tags:
        return {"ok": by_tags[command.method](store, command.tags, any_tag=command.any_tag).describe()}
    if command.method == RUN:
        run = run_job_now(store, command.names[0], default_timezone=default_timezone)
        return {"ok": f"requested a run of {run.job_name} now, task id {run.task_id}", "task_id": run.task_id}
    jobs = api.list_jobs(store, default_timezone=default_timezone)
    return {"jobs": {job.name: _job_summary(job) for job in jobs}}


def _job_summary(job: Any) -> dict[str, Any]:
    data: dict[str, Any] = job.as_dict()
    keep = ("state", "kind", "schedule", "task", "due_at", "timezone", "runs", "max_runs", "tags", "last_run_at")
    return {key: data[key] for key in keep}


def execute(
    store: JobStore,
    method: str,
    arguments: Mapping[str, Any] | None,
    *,
    default_timezone: str | None = None,
) -> Reply:
    """Check and run one command on ``store``: ``{"ok": ...}``, ``{"jobs": ...}`` or ``{"error": ...}``.

    Never raises: a remote caller gets a reason, not a traceback (kombu would otherwise reply
    ``repr(exc)`` and log a traceback in the answering process).
    """
    try:
        return run_command(store, parse_command(method, arguments), default_timezone=default_timezone)
    except OrchestraError as error:
        return {"error": _one_line(str(error))}
    except Exception as error:
        logger.exception("celery-orchestra: remote command %s failed", method)
        return {"error": _one_line(f"{method} failed: {error!r}")}


def _one_line(text: str) -> str:
    return visible(" ".join(text.split()))


def not_carried_out(method: str, arguments: Mapping[str, Any] | None, why: str) -> Reply:
    """The reply of a node that leaves a well-formed command to another one: ``{"ok": why}``, or
    ``{"error": ...}`` for bad arguments (the same error whichever node answers)."""
    try:
        parse_command(method, arguments)
    except OrchestraError as error:
        return {"error": _one_line(str(error))}
    return {"ok": why}


# ---------------------------------------------------------------------------- in workers


def answer_in_worker(state: Any, method: str, arguments: Mapping[str, Any]) -> Reply:
    """A worker's answer: apply the command if its app names the store explicitly, else say who does.

    With ``orchestra_remote_control = False`` the worker applies nothing and replies with an error
    saying so (beat's node does not run then either, so nothing applies the command).

    A worker cannot know beat's ``-s`` file, so only an explicit ``orchestra_database_url`` is
    trusted to be the store beat uses. Bad arguments get the same error as from beat.
    """
    if method == RUN:  # not idempotent: run by the active beat's node alone, or each node would run it
        why = f"not run by this worker: the active beat's node (orchestra@<its host>) runs {method}, once"
        return not_carried_out(method, arguments, why)
    try:
        parse_command(method, arguments)
        app = getattr(state, "app", None)
        if app is None:
            return {"error": f"{method}: this node has no Celery app to read orchestra settings from"}
        settings = read_settings(app.conf)
    except OrchestraError as error:
        return {"error": _one_line(str(error))}
    if not settings.remote_control:
        return {"error": f"{method}: remote control of celery-orchestra is off (orchestra_remote_control = False)"}
    url = settings.database_url
    if not url:
        doing = "not listed" if method == JOBS else "not applied"
        return {
            "ok": f"{doing} by this worker: the beat process (node orchestra@<its host>) answers {method}; "
            "set orchestra_database_url to let workers apply orchestra commands too"
        }
    from ..store import JobStore

    store = JobStore(url)
    try:
        return execute(store, method, arguments, default_timezone=app.conf.get("timezone"))
    finally:
        store.close()


def _worker_handler(method: str) -> Callable[..., Reply]:
    def handler(state: Any, **arguments: Any) -> Reply:
        return answer_in_worker(state, method, arguments)

    handler.__name__ = method
    handler.__qualname__ = method
    return handler


orchestra_pause = control_command(
    variadic="names",
    signature=_SIGNATURES[PAUSE],
    help="Pause celery-orchestra jobs by name (beat stops sending them; kept across restarts).",
)(_worker_handler(PAUSE))

orchestra_resume = control_command(
    variadic="names",
    signature=_SIGNATURES[RESUME],
    help="Resume paused celery-orchestra jobs by name (next run: the first fire time from now).",
)(_worker_handler(RESUME))

orchestra_pause_tags = control_command(
    args=[("tags", str), ("match", str)],
    signature=_SIGNATURES[PAUSE_TAGS],
    help="Pause the celery-orchestra jobs with any (default) or all of the comma-separated tags.",
)(_worker_handler(PAUSE_TAGS))

orchestra_resume_tags = control_command(
    args=[("tags", str), ("match", str)],
    signature=_SIGNATURES[RESUME_TAGS],
    help="Resume the celery-orchestra jobs with any (default) or all of the comma-separated tags.",
)(_worker_handler(RESUME_TAGS))

orchestra_enable = control_command(
    variadic="names",
    signature=_SIGNATURES[ENABLE],
    help="Enable celery-orchestra jobs by name (an operator's enable survives restarts).",
)(_worker_handler(ENABLE))

orchestra_disable = control_command(
    variadic="names",
    signature=_SIGNATURES[DISABLE],
    help="Disable celery-orchestra jobs by name (beat stops sending them; kept across restarts).",
)(_worker_handler(DISABLE))

orchestra_enable_tags = control_command(
    args=[("tags", str), ("match", str)],
    signature=_SIGNATURES[ENABLE_TAGS],
    help="Enable the celery-orchestra jobs with any (default) or all of the comma-separated tags.",
)(_worker_handler(ENABLE_TAGS))

orchestra_disable_tags = control_command(
    args=[("tags", str), ("match", str)],
    signature=_SIGNATURES[DISABLE_TAGS],
    help="Disable the celery-orchestra jobs with any (default) or all of the comma-separated tags.",
)(_worker_handler(DISABLE_TAGS))

orchestra_run = control_command(
    args=[("name", str)],
    signature=_SIGNATURES[RUN],
    help="Run a celery-orchestra job once now (the active beat sends it; its schedule does not move).",
)(_worker_handler(RUN))

orchestra_jobs = inspect_command(
    help="List celery-orchestra jobs: state, next fire time, runs, tags.",
)(_worker_handler(JOBS))
