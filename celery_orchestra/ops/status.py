"""How jobs and runs look to a person (a Rich table) and to a script (JSON).

Kept apart from :mod:`celery_orchestra.ops.cli` so that the table can be rendered for ``--watch``
refreshes, tests and other front ends without going through click. The columns are the
predecessor's status table (State, Schedule, Job name, Module and task, Due at, Timezone, Due in,
Attempts, Tags), so its users find their way around; the differences are deliberate: "Due at" is
empty for a job that is not running (it is not due), "Due in" never hides the hours of a long
wait, "Owner" says who defines the job (``config`` or ``runtime``) and "Last result" what became
of its newest run (Celery's state from the result backend, see :mod:`celery_orchestra.ops.outcomes`).
On a narrow terminal the less useful columns are left out rather than every cell wrapped. Every
user string is shown literally (:mod:`celery_orchestra.ops.text`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from rich import box
from rich.table import Table
from rich.text import Text

from .api import JobStatus, RunInfo
from .fast_table import Cell, FastTable, shown
from .liveness import Liveness
from .outcomes import STATE_SENT, STATE_UNKNOWN, RunOutcome
from .text import cell

__all__ = [
    "STATE_STYLES",
    "beats_table",
    "history_table",
    "humanize_delta",
    "jobs_table",
    "outcomes_notice",
    "runs_json",
    "status_json",
]

STATE_STYLES: Final = {
    "Running": "green",
    "Paused": "yellow",
    "Disabled": "bright_black",
    "Done": "blue",
    "Expired": "red",
    "Removed": "bright_black strike",
    "Broken": "bold red",
}

_NONE: Final = "-"
_DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


def humanize_delta(delta: timedelta | None) -> str:
    """``4m 05s``, ``3h 02m``, ``2d 03h``; ``now`` within a second; ``overdue 12s`` when negative.

    Two units at most: enough to act on, short enough for a table column.
    """
    if delta is None:
        return _NONE
    seconds = delta.total_seconds()
    if abs(seconds) < 1:
        return "now"
    text = _two_units(int(abs(seconds)))
    return f"overdue {text}" if seconds < 0 else text


def _two_units(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _when(value: datetime | None) -> str:
    return _NONE if value is None else value.strftime(_DATETIME_FORMAT)


#: The status table's columns, in the predecessor's order: (header, how its cells are laid out).
_JOB_COLUMNS: Final = (
    ("State", {"no_wrap": True}),
    ("Schedule", {"no_wrap": True}),
    ("Job name", {"overflow": "fold"}),
    ("Module and task", {"overflow": "fold"}),
    ("Due at", {"no_wrap": True}),
    ("Timezone", {"no_wrap": True, "overflow": "fold"}),
    ("Due in", {"no_wrap": True, "justify": "right"}),
    ("Attempts", {"no_wrap": True, "justify": "right"}),
    ("Tags", {"overflow": "fold"}),
    ("Owner", {"no_wrap": True}),
    ("Last result", {"overflow": "fold"}),
)

#: Always shown: what a job is called, whether it runs, and when in which zone.
_ESSENTIAL_COLUMNS: Final = ("State", "Job name", "Timezone", "Due in")

#: The other columns, most useful first: on a narrow terminal they are added while they fit.
_OPTIONAL_COLUMNS: Final = ("Due at", "Last result", "Module and task", "Attempts", "Schedule", "Tags", "Owner")

#: How each outcome state is coloured.
RESULT_STYLES: Final = {"SUCCESS": "green", "FAILURE": "bold red", "RETRY": "yellow", "REVOKED": "red"}


def jobs_table(
    jobs: Sequence[JobStatus], *, now: datetime, caption: str | None = None, width: int | None = None
) -> Table | FastTable:
    """The status table: one row per job, in the order given.

    Every column fits within ``width`` (the terminal's) if the essential ones allow: the others
    are left out, least useful first, rather than wrapping every cell, and the frame is dropped
    when even the essential ones would not fit in it. Names and zones are never wrapped (only a
    name longer than the whole terminal is folded). All text is shown literally, see
    :func:`~celery_orchestra.ops.text.visible`. When every cell fits on one line, the same table
    is drawn by :class:`~celery_orchestra.ops.fast_table.FastTable` (10,000 jobs in a fraction of
    a second).
    """
    by_column = _job_columns(jobs, now)
    framed, columns = _layout(by_column, width)
    headers = [header for header, _ in _JOB_COLUMNS if header in columns]
    cells = list(zip(*(by_column[header] for header in headers), strict=True)) if jobs else []
    titled = None if caption is None else cell(caption)
    if framed and not any(job.broken for job in jobs):
        layouts: dict[str, dict[str, Any]] = dict(_JOB_COLUMNS)
        fast = FastTable(headers, [_justify(layouts[header]) for header in headers], cells, titled)
        if fast.fits(width):
            return fast
    table = Table(
        caption=None if caption is None else cell(caption),
        caption_justify="left",
        header_style="bold",
        box=box.ROUNDED if framed else None,
        pad_edge=framed,
    )
    for header, layout in _JOB_COLUMNS:
        if header in columns:
            table.add_column(header, **layout)
    for row_cells in cells:
        table.add_row(*(one.text() for one in row_cells))
    broken = [f"Broken: {job.name}: {job.broken}" for job in jobs if job.broken is not None]
    if broken:  # the reasons under the table, shown literally like every cell
        table.caption = Text("\n").join(cell(line) for line in [*([caption] if caption else []), *broken])
    return table


def _justify(layout: dict[str, Any]) -> Literal["left", "right"]:
    return "right" if layout.get("justify") == "right" else "left"


def _job_columns(jobs: Sequence[JobStatus], now: datetime) -> dict[str, list[Cell]]:
    """Each column's cells, top to bottom."""
    states = [job.state for job in jobs]
    results = [_last_result(job.last_run) for job in jobs]
    return {
        "State": _column(states, [STATE_STYLES.get(state, "") for state in states]),
        "Schedule": _column([job.kind.upper() for job in jobs]),
        "Job name": _column([job.name for job in jobs]),
        "Module and task": _column([job.task for job in jobs]),
        "Due at": _column([_when(job.due_at) for job in jobs]),
        "Timezone": _column([job.timezone for job in jobs]),
        "Due in": _column([humanize_delta(job.due_in(now)) for job in jobs]),
        "Attempts": _column([job.attempts for job in jobs]),
        "Tags": _column([",".join(job.tags) for job in jobs]),
        "Owner": _column([job.owner for job in jobs]),
        "Last result": _column([text for text, _ in results], [style for _, style in results]),
    }


def _column(texts: Sequence[str], styles: Sequence[str] | None = None) -> list[Cell]:
    """The cells of ``texts`` (styled by ``styles``), each distinct one measured once: most
    columns repeat a few values (states, zones, tasks, owners) down thousands of rows."""
    keys: Sequence[tuple[str, str]] = (
        list(zip(texts, styles, strict=True)) if styles is not None else [(text, "") for text in texts]
    )
    distinct = {key: shown(*key) for key in set(keys)}
    return list(map(distinct.__getitem__, keys))


def _last_result(run: RunInfo | None) -> tuple[str, str]:
    """``SUCCESS 4.0s``, ``FAILURE 2.1s: ValueError: boom``, ``sent`` (no result backend), ``-``
    (never ran); and its style."""
    if run is None:
        return _NONE, ""
    state = run.result
    took = run.took
    text = state if took is None else f"{state} {_late_by(took)}"
    if run.outcome is not None and run.outcome.error:
        text = f"{text}: {run.outcome.error}"
    return text, RESULT_STYLES.get(state, "")


def outcomes_notice(outcomes: Iterable[RunOutcome | None]) -> str | None:
    """One line when outcomes could not be read (``outcomes unavailable: <backend>: <why>``), else ``None``."""
    for outcome in outcomes:
        if outcome is not None and outcome.state == STATE_UNKNOWN and outcome.unavailable:
            return f"outcomes unavailable: {outcome.unavailable}"
    return None


def _layout(columns: dict[str, list[Cell]], width: int | None) -> tuple[bool, set[str]]:
    """Framed (a rounded box) or, when even the essential columns would not fit in one, open (no
    lines at all, two spaces between columns); and the columns shown: the essential ones, then
    each optional one while the table stays within ``width``."""
    if width is None:
        return True, {header for header, _ in _JOB_COLUMNS}

    def needs(header: str) -> int:
        return max([len(header), *(one.width for one in columns[header])])

    for framed, per_column, edges in ((True, 3, 1), (False, 2, -2)):
        used = edges + sum(needs(header) + per_column for header in _ESSENTIAL_COLUMNS)
        if used <= width or not framed:
            break
    chosen = set(_ESSENTIAL_COLUMNS)
    for header in _OPTIONAL_COLUMNS:
        extra = needs(header) + per_column
        if used + extra <= width:
            chosen.add(header)
            used += extra
    return framed, chosen


def status_json(jobs: Sequence[JobStatus], liveness: Liveness) -> str:
    """``{"beat": ..., "jobs": [...]}``: the beats' liveness (see :meth:`Liveness.as_dict`) and the
    jobs (see :meth:`JobStatus.as_dict`); datetimes are ISO 8601 with offsets."""
    payload = {"beat": liveness.as_dict(), "jobs": [job.as_dict() for job in jobs]}
    return json.dumps(payload, indent=2, ensure_ascii=False)


def beats_table(liveness: Liveness) -> Table:
    """Every beat that used the store: role, where it runs, since when, and when it last ticked."""
    table = Table(header_style="bold", box=box.ROUNDED, caption="times in UTC", caption_justify="left")
    for column in ("Role", "Host", "Pid", "Version", "Epoch", "Started", "Last tick", "Ago"):
        table.add_column(column, no_wrap=True)
    for beat in liveness.beats:
        active = liveness.active is not None and beat.id == liveness.active.id
        # A row still saying "active" without the lease belongs to a beat that died or stalled.
        role = "active" if active else ("not responding" if beat.role == "active" else beat.role)
        table.add_row(
            cell(role, "green" if active else ""),
            cell(beat.host),
            cell(beat.pid),
            cell(beat.version),
            cell(_NONE if beat.epoch is None else beat.epoch),
            cell(_when(beat.started_at)),
            cell(_when(beat.last_tick_at)),
            cell(_late_by(beat.ticked_ago)),
        )
    return table


def history_table(
    runs: Sequence[RunInfo], *, caption: str | None = None, width: int | None = None
) -> Table | FastTable:
    """Recorded runs, newest first: when each was due, when it was sent, its task id and its state.

    The state is Celery's (``SUCCESS``, ``FAILURE``...) when the app has a result backend, and
    then "Finished", "Took" (from the send to the result) and "Error" (the exception's one-line
    summary) are shown too; without one it is the ledger's (``sent``). Drawn by
    :class:`~celery_orchestra.ops.fast_table.FastTable` when it fits in ``width``.
    """
    looked_up = any(run.outcome is not None and run.outcome.state != STATE_SENT for run in runs)
    columns = _HISTORY_COLUMNS + (_OUTCOME_COLUMNS if looked_up else ())
    rows = [_run_cells(run, looked_up) for run in runs]
    titled = None if caption is None else cell(caption)
    headers = [header for header, _ in columns]
    fast = FastTable(headers, [_justify(layout) for _, layout in columns], rows, titled)
    if fast.fits(width):
        return fast
    table = Table(caption=titled, caption_justify="left", header_style="bold", box=box.ROUNDED)
    for header, layout in columns:
        table.add_column(header, **layout)
    for row in rows:
        table.add_row(*(one.text() for one in row))
    return table


_HISTORY_COLUMNS: Final[tuple[tuple[str, dict[str, Any]], ...]] = (
    ("Fire time", {"no_wrap": True}),
    ("Sent at", {"no_wrap": True}),
    ("Late by", {"no_wrap": True, "justify": "right"}),
    ("Task id", {"no_wrap": True}),
    ("State", {}),
)
#: Shown when the runs' outcomes were looked up in a result backend.
_OUTCOME_COLUMNS: Final[tuple[tuple[str, dict[str, Any]], ...]] = (
    ("Finished", {"no_wrap": True}),
    ("Took", {"no_wrap": True, "justify": "right"}),
    ("Error", {"overflow": "fold"}),
)


def _run_cells(run: RunInfo, looked_up: bool) -> list[Cell]:
    fired = f"{_when(run.fire_time)} manual" if run.manual else _when(run.fire_time)
    cells = [shown(text) for text in (fired, _when(run.sent_at), _late_by(run.delay), run.task_id)]
    cells.append(shown(run.result, RESULT_STYLES.get(run.result, "")))
    if looked_up:
        outcome = run.outcome
        took = run.took
        cells.append(shown(_when(None if outcome is None else outcome.finished_at)))
        cells.append(shown(_NONE if took is None else _late_by(took)))
        cells.append(shown((outcome.error if outcome is not None else None) or _NONE))
    return cells


def _late_by(delay: timedelta) -> str:
    seconds = delay.total_seconds()
    return f"{seconds:.3f}s" if seconds < 60 else _two_units(int(seconds))


def runs_json(runs: Sequence[RunInfo]) -> str:
    """A JSON array of runs (see :meth:`RunInfo.as_dict`)."""
    payload: list[dict[str, Any]] = [run.as_dict() for run in runs]
    return json.dumps(payload, indent=2, ensure_ascii=False)
