"""``celery orchestra``: operate celery-orchestra from the shell.

Exposed through the ``celery.commands`` entry point, so ``celery -A proj orchestra ...`` runs with
the ``-A`` app (``ctx.obj.app``) like Celery's own commands. Celery imports every such entry point
when *any* ``celery`` command starts (worker, beat, control...), so this module keeps its imports
light: the API, the store (SQLAlchemy) and Rich are imported by the subcommand that needs them.
Importing it also imports :mod:`celery_orchestra.ops.control`, which registers the ``orchestra_*``
remote-control commands so that ``celery control`` accepts them in this process.

The commands act on the store, not through the broker, so they work with every broker (even
``sqla+`` ones, which cannot broadcast) and whether beat runs or not; a running beat picks changes
up within its poll interval (a second by default).

Exit status: 0 on success; 1 when the command could not do its job (unknown job, no store,
unreachable database, problems found by ``check``); 2 for bad usage (bad option values, a bad
timing expression or zone).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from celery.bin.base import CeleryCommand, CeleryOption, handle_preload_options

from ..errors import OrchestraError
from . import control  # registers the orchestra_* remote-control commands in this process

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from ..jobs.definitions import JobDefinition
    from ..store import JobStore
    from .api import ChangeResult

__all__ = ["CommandFailed", "app_timezone", "one_line_errors", "opened_store", "orchestra", "preload", "store_options"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: Registered by the import above; named here so that the import is visibly used.
REMOTE_COMMANDS = control.COMMANDS

#: Width of the status table when the output is not a terminal (a pipe, a file): wide enough that
#: rows stay on one line for ``grep``, unless ``COLUMNS`` says otherwise.
_PIPE_WIDTH = 200


class CommandFailed(click.ClickException):
    """A one-line ``Error: ...`` and exit status 1: the command could not do its job."""

    def __init__(self, message: str) -> None:
        from .text import visible

        super().__init__(visible(" ".join(message.split())))


class BadUsage(CommandFailed):
    """A one-line ``Error: ...`` and exit status 2: the command line itself is wrong."""

    exit_code = 2


def _one_line_errors(command: _F) -> _F:
    """Turn every error into a one-line :class:`CommandFailed` or :class:`BadUsage`."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _store_retries_quiet():
                return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OrchestraError as error:
            raise _failure_for(error) from None
        except Exception as error:
            # Last resort (a database driver that is not installed, say): an operator at a shell
            # needs the reason on one line, not a traceback through click and SQLAlchemy.
            raise CommandFailed(f"{type(error).__name__}: {error}") from None

    return cast("_F", wrapper)


@contextlib.contextmanager
def _store_retries_quiet() -> Iterator[None]:
    """Hide the store's "retrying" warnings while a command runs (restored afterwards).

    In beat's log they explain a slow tick; at a shell they would be printed before the one-line
    error, which already says how many attempts were made.
    """
    store_logger = logging.getLogger("celery_orchestra.store")
    level = store_logger.level
    store_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        store_logger.setLevel(level)


def _failure_for(error: OrchestraError) -> CommandFailed:
    from ..errors import ControlError, JobSpecError, NoMatchingJobsError

    if isinstance(error, ControlError | JobSpecError) and not isinstance(error, NoMatchingJobsError):
        return BadUsage(str(error))
    return CommandFailed(str(error))


def _preload(command: _F) -> _F:
    """Celery's ``handle_preload_options`` (apps may add options to every command), typed."""
    return cast("_F", handle_preload_options(command))


def _store_options(command: _F) -> _F:
    command = click.option(
        "--database-url",
        cls=CeleryOption,
        metavar="URL",
        default=None,
        help_group="Store Options",
        help="SQLAlchemy URL of the store (overrides the orchestra_database_url setting).",
    )(command)
    return click.option(
        "-s",
        "--schedule",
        "schedule_filename",
        cls=CeleryOption,
        metavar="FILE",
        default=None,
        help_group="Store Options",
        help="Beat's schedule file, as given to `celery beat -s` (default: the app's "
        "beat_schedule_filename). Without orchestra_database_url the store is an SQLite file beside it.",
    )(command)


@contextlib.contextmanager
def _opened_store(ctx: click.Context, schedule_filename: str | None, database_url: str | None) -> Iterator[JobStore]:
    """The store the command's options name, closed when the command is done with it."""
    from .api import open_store

    store = open_store(ctx.obj.app, schedule_filename, database_url=database_url)
    try:
        yield store
    finally:
        store.close()


def _app_timezone(ctx: click.Context) -> str | None:
    zone = ctx.obj.app.conf.get("timezone")
    return str(zone) if zone else None


def _console(ctx: click.Context) -> Console:
    from rich.console import Console

    console = Console(no_color=bool(ctx.obj.no_color), highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH
    return console


# ---------------------------------------------------------------------------- the group


@click.group(name="orchestra")
@click.pass_context
@_preload
def orchestra(ctx: click.Context, /, **kwargs: Any) -> None:
    """celery-orchestra: job status, pause and resume, schedule checks and previews.

    Pause and resume write the store, so they work with every broker and whether beat runs or
    not; a running beat applies them within about a second.
    """


# ---------------------------------------------------------------------------- status


def _tag_option(help_text: str) -> Callable[[_F], _F]:
    """``--tag TAG`` (repeatable) and ``--tags TAG,TAG``: either spelling, every command that selects by tag."""
    return click.option("--tag", "--tags", "tags", multiple=True, metavar="TAG[,TAG...]", help=help_text)


def _say(text: str, *, lines: bool = False) -> None:
    """Print a line of output that may quote user text (names, tags), shown literally; with
    ``lines``, a message of several lines (each shown so)."""
    from .text import visible, visible_lines

    click.echo(visible_lines(text) if lines else visible(text))


@orchestra.command(cls=CeleryCommand)
@_tag_option("Only jobs with this tag (--tag repeatable, or --tags TAG,TAG: a job with any of them is shown).")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="Only jobs in this state (repeatable): Running, Paused, Disabled, Done, Expired or Removed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (ISO 8601 datetimes).")
@click.option(
    "--watch",
    is_flag=True,
    help="Keep the table on screen, refreshed (Ctrl+C to leave); without a terminal, print each refresh in turn.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def status(
    ctx: click.Context,
    /,
    tags: Sequence[str],
    states: Sequence[str],
    as_json: bool,
    watch: bool,
    interval: float,
    schedule_filename: str | None,
    database_url: str | None,
    **kwargs: Any,
) -> None:
    """Which beat is active, then every job: state, schedule, task, when it is due, runs and tags."""
    if watch and as_json:
        raise BadUsage("--watch and --json cannot be combined")
    from rich.console import Group

    from .api import list_jobs
    from .bulk import collector_paused
    from .liveness import beat_liveness
    from .status import jobs_table, outcomes_notice, status_json
    from .text import cell

    with _opened_store(ctx, schedule_filename, database_url) as store:
        zone = _app_timezone(ctx)

        def jobs_at(now: datetime) -> Any:
            return list_jobs(store, tags=tags, states=states, default_timezone=zone, now=now, app=ctx.obj.app)

        if as_json:
            with collector_paused():
                click.echo(status_json(jobs_at(datetime.now(UTC)), beat_liveness(store)))
            return

        console = _console(ctx)

        def render() -> RenderableType:
            with collector_paused():
                now = datetime.now(UTC)
                jobs = jobs_at(now)
                liveness = beat_liveness(store)
                caption = _status_caption(len(jobs), store, now, filtered=bool(tags or states))
                table = jobs_table(jobs, now=now, caption=caption, width=console.width)
            line = cell(liveness.summary(), "bold red" if liveness.active is None else "green")
            notice = outcomes_notice(job.last_run.outcome for job in jobs if job.last_run is not None)
            return Group(line, table) if notice is None else Group(line, cell(notice, "yellow"), table)

        first = render()  # errors here (no store, bad filter) end the command with a one-line error
        if not watch:
            with collector_paused():
                console.print(first)
            return
        _watch(console, first, render, interval)


def _status_caption(count: int, store: JobStore, now: datetime, *, filtered: bool) -> str:
    noun = "job" if count == 1 else "jobs"
    matching = " matching" if filtered else ""
    local = now.astimezone()
    return f"{count}{matching} {noun} in {store.safe_url} at {local:%Y-%m-%d %H:%M:%S %Z}"


def _watch(console: Console, first: RenderableType, render: Callable[[], RenderableType], interval: float) -> None:
    """Redraw ``render()`` every ``interval`` seconds until Ctrl+C; a failed refresh shows its error.

    On a terminal the table is redrawn in place. Elsewhere (a pipe, a file, a CI log) nothing can
    be redrawn, so each refresh is printed after the previous one, like ``vmstat 2``.
    """
    from rich.live import Live

    from .text import cell

    def refreshed() -> RenderableType:
        time.sleep(interval)
        try:
            return render()
        except OrchestraError as error:
            return cell(f"refresh failed (retrying): {' '.join(str(error).split())}", "red")

    try:
        if not console.is_terminal:
            console.print(first)
            while True:
                view = refreshed()
                console.print()
                console.print(view)
        with Live(first, console=console, auto_refresh=False) as live:
            while True:
                live.update(refreshed(), refresh=True)
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------------------- beats / health


@orchestra.command(cls=CeleryCommand)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (ISO 8601 datetimes).")
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def beats(
    ctx: click.Context, /, as_json: bool, schedule_filename: str | None, database_url: str | None, **kwargs: Any
) -> None:
    """The beats that use this store: which one is active, which are standby, and when each last ticked."""
    import json

    from .liveness import beat_liveness
    from .status import beats_table

    with _opened_store(ctx, schedule_filename, database_url) as store:
        liveness = beat_liveness(store)
    if as_json:
        click.echo(json.dumps(liveness.as_dict(), indent=2, ensure_ascii=False))
        return
    from .text import visible

    console = _console(ctx)
    console.print(visible(liveness.summary()), markup=False, highlight=False)
    if liveness.beats:
        console.print(beats_table(liveness))


@orchestra.command(cls=CeleryCommand)
@click.option(
    "--max-age",
    type=click.FloatRange(min=0.0, max=86400.0),
    default=30.0,
    show_default=True,
    help="Healthy when the active beat ticked at most this many seconds ago.",
)
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def health(
    ctx: click.Context, /, max_age: float, schedule_filename: str | None, database_url: str | None, **kwargs: Any
) -> None:
    """Exit 0 when an active beat ticked within --max-age seconds, else 1 (for container health checks)."""
    from .liveness import beat_liveness

    with _opened_store(ctx, schedule_filename, database_url) as store:
        liveness = beat_liveness(store)
    _say(liveness.summary())
    if not liveness.healthy(max_age):
        ctx.exit(1)


if TYPE_CHECKING:  # click >= 8.2 makes ParamType generic; older clicks (Celery 5.4's) do not
    _DurationBase = click.ParamType[Any]
else:
    _DurationBase = click.ParamType


class Duration(_DurationBase):
    """``7d``, ``12h``, ``30m``, ``90s`` or a number of seconds."""

    name = "duration"
    _UNITS: dict[str, float] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}  # noqa: RUF012

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from datetime import timedelta

        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        unit = self._UNITS.get(text[-1:], None)
        number = text[:-1] if unit is not None else text
        try:
            amount = float(number) if len(number) <= 20 else float("nan")
        except ValueError:
            amount = float("nan")
        if not (amount >= 0 and amount * (unit or 1) < 100 * 365 * 86400):
            self.fail(f"{str(value)[:40]!r} is not a duration such as 7d, 12h, 30m, 90s or 3600", param, ctx)
        return timedelta(seconds=amount * (unit or 1))


@orchestra.command(cls=CeleryCommand)
@click.option(
    "--older-than",
    type=Duration(),
    default=None,
    metavar="DURATION",
    help="Delete runs that fired longer ago than this: 7d, 12h, 30m (default: orchestra_run_retention, 30d).",
)
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def prune(
    ctx: click.Context,
    /,
    older_than: Any,
    schedule_filename: str | None,
    database_url: str | None,
    **kwargs: Any,
) -> None:
    """Delete old runs from the run ledger (the active beat does this by itself every 10 minutes)."""
    from datetime import timedelta

    from ..settings import read_settings
    from .maintenance import prune_history

    if older_than is None:
        seconds = read_settings(ctx.obj.app.conf).run_retention
        if seconds is None:
            raise BadUsage("orchestra_run_retention is None (keep every run): say how old with --older-than")
        older_than = timedelta(seconds=seconds)
    with _opened_store(ctx, schedule_filename, database_url) as store:
        result = prune_history(store, older_than)
    noun = "run" if result.deleted == 1 else "runs"
    click.echo(f"deleted {result.deleted} {noun} fired before {result.before:%Y-%m-%d %H:%M:%S %Z}")


@orchestra.command(cls=CeleryCommand)
@click.argument("name")
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def forget(
    ctx: click.Context, /, name: str, schedule_filename: str | None, database_url: str | None, **kwargs: Any
) -> None:
    """Delete job NAME, no longer configured (state Removed), and its run history."""
    from .maintenance import forget_job

    with _opened_store(ctx, schedule_filename, database_url) as store:
        runs = forget_job(store, name)
    _say(f"forgot {name} and {runs} recorded run{'' if runs == 1 else 's'}")


# ---------------------------------------------------------------------------- pause / resume


def _change_command(action: str) -> Callable[..., None]:
    def change(
        ctx: click.Context,
        /,
        names: Sequence[str],
        tags: Sequence[str],
        match_all: bool,
        as_json: bool,
        schedule_filename: str | None,
        database_url: str | None,
        **kwargs: Any,
    ) -> None:
        if names and tags:
            raise BadUsage("give job names or --tag/--tags, not both")
        if not names and not tags:
            raise BadUsage(f"nothing to {action}: give job names, or --tags TAG[,TAG...] (or --tag TAG, repeatable)")
        if match_all and not tags:
            raise BadUsage("--all only applies to --tag/--tags")
        from . import api

        with _opened_store(ctx, schedule_filename, database_url) as store:
            result: ChangeResult
            if tags:
                by_tags = getattr(api, f"{action}_jobs_with_tags")
                result = by_tags(store, tags, any_tag=not match_all)
            else:
                result = getattr(api, f"{action}_jobs")(store, names)
        if as_json:
            import json

            click.echo(json.dumps(result.as_dict()))
        else:
            _say(result.describe())

    change.__name__ = action
    return change


def _register_change_command(action: str, summary: str) -> None:
    command: Callable[..., Any] = _one_line_errors(_change_command(action))
    command = _preload(command)
    command = click.pass_context(command)
    command = _store_options(command)
    command = click.option("--json", "as_json", is_flag=True, help="Print what changed as JSON.")(command)
    command = click.option(
        "--all", "match_all", is_flag=True, help="With --tag/--tags: only jobs that have all the tags (default: any)."
    )(command)
    command = _tag_option(
        f"{action.capitalize()} the jobs with any of these tags instead of naming them "
        "(--tags TAG,TAG, or --tag TAG repeated)."
    )(command)
    command = click.argument("names", nargs=-1)(command)
    command.__doc__ = summary
    orchestra.command(name=action, cls=CeleryCommand)(command)


_register_change_command(
    "pause",
    "Pause jobs by NAME (or --tags): beat stops sending them, across restarts, until resumed.",
)
_register_change_command(
    "resume",
    "Resume jobs by NAME (or --tags): the next run is the first fire time from now; runs missed "
    "while paused are not replayed.",
)
_register_change_command(
    "enable",
    "Enable jobs by NAME (or --tags), configured or added at runtime: beat sends them again from "
    "their next fire time; kept across restarts until the configuration's own 'enabled' changes.",
)
_register_change_command(
    "disable",
    "Disable jobs by NAME (or --tags), configured or added at runtime: beat stops sending them, "
    "across restarts, until enabled.",
)


# ---------------------------------------------------------------------------- jobs managed at runtime


def _job_store_options(command: _F) -> _F:
    """The store options of ``add`` and ``update``, whose ``--schedule`` is the job's timing:
    beat's schedule file is ``-s``/``--schedule-file`` there."""
    command = click.option(
        "--database-url",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL of the store (overrides the orchestra_database_url setting).",
    )(command)
    return click.option(
        "-s",
        "--schedule-file",
        "schedule_filename",
        metavar="FILE",
        default=None,
        help="Beat's schedule file, as given to `celery beat -s` (default: the app's beat_schedule_filename).",
    )(command)


def _job_field_options(*, adding: bool) -> Callable[[_F], _F]:
    """``--task``, ``--schedule``, ``--tz``, ``--tag``, ``--args``, ``--kwargs``, ``--queue`` and
    ``--option``: what ``add`` gives (``--task`` and ``--schedule`` required) and ``update`` changes."""
    given = "" if adding else " (update: replaces the job's)"

    def decorate(command: _F) -> _F:
        for option in reversed(
            (
                click.option("--task", required=adding, metavar="TASK", help="The registered name of the task."),
                click.option(
                    "--schedule",
                    "schedule_text",
                    required=adding,
                    metavar="TIMING",
                    help="When it runs: a timing ('every 5 minutes', 'every day at 03:00') or a number of seconds.",
                ),
                click.option("--tz", "zone", metavar="ZONE", help="Its time zone (default: the app's timezone)."),
                click.option(
                    "--tag", "tags", multiple=True, metavar="TAG[,TAG...]", help=f"Its tags, repeatable{given}."
                ),
                click.option("--args", "args_json", metavar="JSON", help="Positional arguments, a JSON array."),
                click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments, a JSON object."),
                click.option("--queue", metavar="QUEUE", help=f"The queue to send it to (an option){given}."),
                click.option(
                    "--option",
                    "option_pairs",
                    multiple=True,
                    metavar="KEY=VALUE",
                    help=f"An apply_async option, repeatable; VALUE is read as JSON when it is JSON{given}.",
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


def _job_fields(
    task: str | None,
    schedule_text: str | None,
    zone: str | None,
    tags: Sequence[str],
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    option_pairs: Sequence[str],
) -> dict[str, Any]:
    """The given command-line options as :func:`~.jobs_api.update_job` keywords (only those given)."""
    from .api import parse_tags

    fields: dict[str, Any] = {}
    if task is not None:
        fields["task"] = task
    if schedule_text is not None:
        fields["schedule"] = _schedule_value(schedule_text)
    if zone is not None:
        fields["timezone"] = zone
    if tags:
        fields["tags"] = parse_tags(tags)
    if args_json is not None:
        fields["args"] = _json_option("--args", args_json, list)
    if kwargs_json is not None:
        fields["kwargs"] = _json_option("--kwargs", kwargs_json, dict)
    if queue is not None or option_pairs:
        options = dict(_option_pair(pair) for pair in option_pairs)
        if queue is not None:
            options["queue"] = queue
        fields["options"] = options
    return fields


def _schedule_value(text: str) -> Any:
    """A number of seconds as a number (as beat_schedule takes it), anything else as a timing."""
    try:
        seconds = float(text)
    except ValueError:
        return text
    return int(seconds) if seconds.is_integer() else seconds


def _json_option(flag: str, text: str, kind: type) -> Any:
    import json

    try:
        value = json.loads(text)
    except ValueError as error:
        raise BadUsage(f"{flag} must be JSON: {error} in {text!r}") from None
    if not isinstance(value, kind):
        shape = "an array" if kind is list else "an object"
        raise BadUsage(f"{flag} must be a JSON {shape}, got {text!r}")
    return value


def _option_pair(pair: str) -> tuple[str, Any]:
    import json

    key, sign, text = pair.partition("=")
    if not sign or not key.strip():
        raise BadUsage(f"--option takes KEY=VALUE, got {pair!r}")
    try:
        return key.strip(), json.loads(text)
    except ValueError:
        return key.strip(), text


def _print_job(verb: str, job: Any, as_json: bool) -> None:
    if as_json:
        import json

        click.echo(json.dumps(job.as_dict(), ensure_ascii=False))
        return
    due = "not due" if job.due_at is None else f"next at {job.due_at.isoformat()}"
    _say(f"{verb} {job.name} ({job.owner}): {job.task}, {job.schedule} in {job.timezone}, {job.state}, {due}")


@orchestra.command(cls=CeleryCommand)
@click.argument("name")
@_job_field_options(adding=True)
@click.option("--disabled", is_flag=True, help="Add it disabled (enable it later with `enable`).")
@click.option("--json", "as_json", is_flag=True, help="Print the added job as JSON.")
@_job_store_options
@click.pass_context
@_preload
@_one_line_errors
def add(
    ctx: click.Context,
    /,
    name: str,
    disabled: bool,
    as_json: bool,
    schedule_filename: str | None,
    database_url: str | None,
    **fields: Any,
) -> None:
    """Add job NAME at runtime (owned by the runtime API: a restart of beat keeps it as it is)."""
    from .jobs_api import add_job

    given = _job_fields(**fields)
    with _opened_store(ctx, schedule_filename, database_url) as store:
        job = add_job(store, name, **given, enabled=not disabled, default_timezone=_app_timezone(ctx), app=ctx.obj.app)
    _print_job("added", job, as_json)


@orchestra.command(cls=CeleryCommand)
@click.argument("name")
@_job_field_options(adding=False)
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable it as well.")
@click.option("--json", "as_json", is_flag=True, help="Print the changed job as JSON.")
@_job_store_options
@click.pass_context
@_preload
@_one_line_errors
def update(
    ctx: click.Context,
    /,
    name: str,
    enabled: bool | None,
    as_json: bool,
    schedule_filename: str | None,
    database_url: str | None,
    **fields: Any,
) -> None:
    """Change job NAME, added at runtime: only the options given (a new --schedule or --tz re-anchors it)."""
    from .jobs_api import update_job

    given = _job_fields(**fields)
    if enabled is not None:
        given["enabled"] = enabled
    if not given:
        raise BadUsage(f"nothing to change in {name}: give --task, --schedule, --tz, --tag, --args, --kwargs, ...")
    with _opened_store(ctx, schedule_filename, database_url) as store:
        job = update_job(store, name, **given, default_timezone=_app_timezone(ctx), app=ctx.obj.app)
    _print_job("changed", job, as_json)


@orchestra.command(cls=CeleryCommand)
@click.argument("name")
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def remove(
    ctx: click.Context, /, name: str, schedule_filename: str | None, database_url: str | None, **kwargs: Any
) -> None:
    """Remove job NAME, added at runtime: beat stops sending it; its history stays until pruned (or `forget`)."""
    from .jobs_api import remove_job

    with _opened_store(ctx, schedule_filename, database_url) as store:
        removed = remove_job(store, name)
    _say(f"removed {name}; its history stays until pruned" if removed else f"{name} was removed already")


@orchestra.command(cls=CeleryCommand)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the requested run as JSON.")
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def run(
    ctx: click.Context,
    /,
    name: str,
    as_json: bool,
    schedule_filename: str | None,
    database_url: str | None,
    **kwargs: Any,
) -> None:
    """Run job NAME once now (paused or disabled too): the active beat sends it within about a second.

    Prints the run's task id. The schedule does not move: next fire, last run and run count stay.
    """
    import json

    from .jobs_api import run_job_now

    with _opened_store(ctx, schedule_filename, database_url) as store:
        info = run_job_now(store, name, default_timezone=_app_timezone(ctx))
    click.echo(json.dumps(info.as_dict(), indent=2, ensure_ascii=False) if as_json else info.task_id)


@orchestra.command(cls=CeleryCommand)
@click.option(
    "--owner",
    type=click.Choice(["config", "runtime"]),
    default=None,
    help="Only the jobs of this owner (default: every job that is not removed).",
)
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def export(
    ctx: click.Context, /, owner: str | None, schedule_filename: str | None, database_url: str | None, **kwargs: Any
) -> None:
    """Print the stored jobs as a YAML schedule file that re-creates them (`check` accepts it)."""
    from .jobs_api import export_jobs

    with _opened_store(ctx, schedule_filename, database_url) as store:
        text = export_jobs(store, owner=owner)
    click.echo(text, nl=False)


# ---------------------------------------------------------------------------- check


@orchestra.command(cls=CeleryCommand)
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.pass_context
@_preload
@_one_line_errors
def check(ctx: click.Context, /, files: Sequence[str], **kwargs: Any) -> None:
    """Validate the schedule without starting beat: beat_schedule, the orchestra_schedule_files and FILES.

    Prints every problem with its file, line and column; exits 1 if there is any.
    """
    from ..jobs.config import check_configuration
    from .text import visible

    app = ctx.obj.app
    definitions, problems = check_configuration(app, extra_files=files)
    if problems:
        for problem in problems:
            _say(problem.format(), lines=True)
        count = len(problems)
        raise CommandFailed(f"{count} problem{'s' if count != 1 else ''} in the schedule configuration")
    for warning in _unregistered_task_warnings(app, definitions):
        click.echo(visible(warning), err=True)
    _say(_check_summary([definition.source for definition in definitions]))


def _unregistered_task_warnings(app: Any, definitions: Sequence[JobDefinition]) -> list[str]:
    """One line per job whose task the app does not register once its task modules are imported.

    A warning, not a problem: the task may live in a worker-only package. When the app's modules do
    not import here, one line says the names could not be checked.
    """
    from ..jobs.checks import split_source

    try:
        app.loader.import_default_modules()
        registered = set(app.tasks)
    except Exception as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        return [f"warning: task names not checked: the app's task modules do not import here ({reason})"]
    warnings = []
    for definition in definitions:
        if definition.task not in registered:
            source, line = split_source(definition.source)
            where = source if line is None else f"{source}:{line}"
            warnings.append(
                f"{where}: job {definition.name!r}: warning: the app registers no task {definition.task!r} "
                "(a worker would refuse it as an unregistered task)"
            )
    return warnings


def _check_summary(sources: Sequence[str]) -> str:
    if not sources:
        return "OK: no jobs configured (beat_schedule is empty and no schedule files are set)"
    counts: dict[str, int] = {}
    for source in sources:
        path, _, line = source.rpartition(":")
        origin = path if path and line.isdigit() else source
        counts[origin] = counts.get(origin, 0) + 1
    parts = ", ".join(f"{count} in {origin}" for origin, count in counts.items())
    total = len(sources)
    return f"OK: {total} job{'s' if total != 1 else ''} ({parts})"


# ---------------------------------------------------------------------------- next


@orchestra.command(name="next", cls=CeleryCommand)
@click.argument("expression", nargs=-1, required=True)
@click.option("--tz", "zone_name_given", metavar="ZONE", help="Time zone (default: the app's timezone, else UTC).")
@click.option("-n", "--count", type=click.IntRange(1, 1000), default=5, show_default=True, help="How many fire times.")
@click.option(
    "--after",
    metavar="DATETIME",
    help="Start after this ISO 8601 date-time instead of now (wall time in the zone unless it has an offset).",
)
@click.pass_context
@_preload
@_one_line_errors
def next_fires(
    ctx: click.Context,
    /,
    expression: Sequence[str],
    zone_name_given: str | None,
    count: int,
    after: str | None,
    **kwargs: Any,
) -> None:
    """Preview the next fire times of a timing EXPRESSION, e.g. "every Monday at 03:15"."""
    from ..errors import TimeZoneError, TimingError
    from ..timing.schedule import timing
    from ..timing.zones import resolve_zone, zone_name
    from .status import humanize_delta
    from .text import visible_lines

    text = " ".join(expression)
    try:
        zone = resolve_zone(zone_name_given or _app_timezone(ctx) or "UTC")
    except TimeZoneError as error:
        raise BadUsage(str(error)) from None
    start = _start_time(after, zone)
    try:
        schedule = timing(text, zone, anchor=start)
    except TimingError as error:
        click.echo(f"Error: {visible_lines(str(error))}", err=True)
        ctx.exit(2)
    fires = schedule.next_fires(count, after=start)
    click.echo(f"{schedule.expression}  ({schedule.kind}, {zone_name(zone)})")
    if not fires:
        click.echo(f"  never fires after {start:%Y-%m-%d %H:%M:%S %Z}")
        return
    for fire in fires:
        # Between instants, not wall clocks: aware datetimes sharing a zone subtract by wall time,
        # which is an hour off across a DST change.
        elapsed = fire.astimezone(UTC) - start.astimezone(UTC)
        click.echo(f"  {fire:%a %Y-%m-%d %H:%M:%S %Z (%z)}  in {humanize_delta(elapsed)}")
    if len(fires) < count:
        click.echo("  (no further fire times)")


def _start_time(after: str | None, zone: tzinfo) -> datetime:
    if after is None:
        return datetime.now(UTC).astimezone(zone)
    try:
        moment = datetime.fromisoformat(after)
    except ValueError:
        raise BadUsage(f"--after must be an ISO 8601 date-time such as 2026-03-29T01:30, got {after!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(zone)


# ---------------------------------------------------------------------------- history


@orchestra.command(cls=CeleryCommand)
@click.argument("name")
@click.option(
    "-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs, newest first."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (ISO 8601 datetimes).")
@_store_options
@click.pass_context
@_preload
@_one_line_errors
def history(
    ctx: click.Context,
    /,
    name: str,
    limit: int,
    as_json: bool,
    schedule_filename: str | None,
    database_url: str | None,
    **kwargs: Any,
) -> None:
    """Recent runs of job NAME from the run ledger: when each was due, when it was sent, its task id,
    and (with a result backend) Celery's state, finish time and error of each."""
    from .bulk import collector_paused

    with collector_paused():
        _history(ctx, name, limit, as_json, schedule_filename, database_url)


def _history(
    ctx: click.Context, name: str, limit: int, as_json: bool, schedule_filename: str | None, database_url: str | None
) -> None:
    from ..timing.zones import zone_name
    from .api import job_history
    from .status import history_table, outcomes_notice, runs_json

    with _opened_store(ctx, schedule_filename, database_url) as store:
        runs = job_history(store, name, limit, default_timezone=_app_timezone(ctx), app=ctx.obj.app)
    if as_json:
        click.echo(runs_json(runs))
        return
    if not runs:
        _say(f"no runs of {name} recorded yet")
        return
    zone = runs[0].fire_time.tzinfo
    where = zone_name(zone) if zone is not None else "UTC"
    noun = "run" if len(runs) == 1 else "runs"
    notice = outcomes_notice(run.outcome for run in runs)
    if notice is not None:
        _say(notice)
    console = _console(ctx)
    console.print(
        history_table(runs, caption=f"last {len(runs)} {noun} of {name}, times in {where}", width=console.width)
    )


# ---------------------------------------------------------------------------- shared with other command modules

#: What ``celery orchestra serve`` (:mod:`celery_orchestra.web.command`) builds on, as every command here does.
store_options = _store_options
preload = _preload
one_line_errors = _one_line_errors
opened_store = _opened_store
app_timezone = _app_timezone
