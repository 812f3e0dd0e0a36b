"""The operator API: pause, resume, enable, disable, list and inspect jobs.

One implementation behind three faces: Python (these functions), remote control
(:mod:`celery_orchestra.ops.control`, answered by the beat process and by workers) and the
``celery orchestra`` CLI (:mod:`celery_orchestra.ops.cli`). All three act on the store, never on a
running scheduler: the store is the truth, so a pause works with every broker (even one without
fanout), survives restarts, and reaches every beat process reading that database within its poll
interval.

Every function takes a ``target``: a Celery app (its store is opened from its settings, used and
closed again) or an open :class:`~celery_orchestra.store.JobStore` (used as is, left open).

Changes are idempotent and say what they did: pausing a paused job is not an error, it is reported
as unchanged. Unknown job names and tags that match nothing are errors that name what was not found,
and they change nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..errors import (
    ControlError,
    NoMatchingJobsError,
    NoSuchJobError,
    NoSuchRunError,
    OrchestraError,
    StoreNotFoundError,
)
from ..jobs.codec import data_key, describe_data, schedule_from_data
from ..jobs.fields import is_tag, unique_tags
from ..jobs.states import (
    STATE_BROKEN,
    STATE_DISABLED,
    STATE_DONE,
    STATE_EXPIRED,
    STATE_PAUSED,
    STATE_REMOVED,
    STATE_RUNNING,
    has_finished,
    job_state,
)
from ..settings import read_settings
from ..store import OWNER_CONFIG, OWNER_RUNTIME, JobNotFound, JobRecord, JobStore, LedgerEntry
from ..timing.firing import next_fire
from ..timing.zones import app_zone, resolve_zone, zone_name
from .outcomes import STATE_SENT, RunOutcome, outcomes
from .snapshot import JobsSnapshot
from .text import visible

if TYPE_CHECKING:
    from celery.schedules import BaseSchedule

__all__ = [
    "STATES",
    "ChangeResult",
    "JobPage",
    "JobStatus",
    "RunInfo",
    "Target",
    "default_zone",
    "disable_job",
    "disable_jobs",
    "disable_jobs_with_tags",
    "enable_job",
    "enable_jobs",
    "enable_jobs_with_tags",
    "find_run",
    "job_history",
    "job_status",
    "list_jobs",
    "list_jobs_page",
    "open_store",
    "parse_tags",
    "pause_job",
    "pause_jobs",
    "pause_jobs_with_tags",
    "record_zone",
    "resume_job",
    "resume_jobs",
    "resume_jobs_with_tags",
    "tag_counts",
    "with_last_runs",
]

#: What the API acts on: a Celery app (its store is opened from its settings) or an open store.
Target = Any

#: Every state a job can be in, in the order the status table explains them.
STATES: tuple[str, ...] = (
    STATE_RUNNING,
    STATE_PAUSED,
    STATE_DISABLED,
    STATE_DONE,
    STATE_EXPIRED,
    STATE_REMOVED,
    STATE_BROKEN,
)

Action = Literal["pause", "resume", "enable", "disable"]
#: What each action's description says of the jobs it switched, and of those already so.
_ACTION_WORDS: dict[str, tuple[str, str]] = {
    "pause": ("paused", "already paused"),
    "resume": ("resumed", "not paused"),
    "enable": ("enabled", "already enabled"),
    "disable": ("disabled", "already disabled"),
}


# ---------------------------------------------------------------------------- errors


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What a pause, resume, enable or disable did: ``changed`` names were switched, ``unchanged`` already were.

    ``selector`` says how the names were chosen when they came from tags (``None`` for names).
    ``ended`` pairs the names of jobs that no longer run (Done, Expired or Removed) with their
    state: a pause, resume, enable or disable means nothing for them, so their flag is left as it was.
    """

    action: Action
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    selector: str | None = None
    ended: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """One line for replies and the CLI, e.g. ``paused: a, b; already paused: c; Done, nothing to pause: d``."""
        done, kept = _ACTION_WORDS[self.action]
        parts = []
        if self.changed:
            parts.append(f"{done}: {', '.join(self.changed)}")
        if self.unchanged:
            parts.append(f"{kept}: {', '.join(self.unchanged)}")
        by_state: dict[str, list[str]] = {}
        for name, state in self.ended:
            by_state.setdefault(state, []).append(name)
        parts.extend(f"{state}, nothing to {self.action}: {', '.join(names)}" for state, names in by_state.items())
        text = "; ".join(parts) if parts else "no jobs"
        return f"{text} ({self.selector})" if self.selector else text

    def __str__(self) -> str:
        return self.describe()

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "changed": list(self.changed),
            "unchanged": list(self.unchanged),
            "ended": dict(self.ended),
            "selector": self.selector,
        }


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job as the status table, ``--json`` and ``inspect orchestra_jobs`` show it.

    ``due_at`` is aware, in the job's zone (``timezone``), and ``None`` unless the job is
    ``Running``: a paused, disabled or finished job is not due. Datetimes in :meth:`as_dict` are
    ISO 8601 with their offset.
    """

    name: str
    state: str
    #: ``cyclic``, ``minutely`` ... ``once`` for timings; ``crontab`` or ``solar`` for Celery's own.
    kind: str
    #: A short description of the schedule, e.g. ``every Monday at 03:15:00``.
    schedule: str
    task: str
    due_at: datetime | None
    timezone: str
    runs: int
    max_runs: int | None
    tags: tuple[str, ...]
    last_run_at: datetime | None
    enabled: bool
    paused: bool
    source: str
    #: Why the job's stored row cannot be read (state ``Broken``), or ``None``.
    broken: str | None = None
    #: Who defines the job: ``config`` (its configuration) or ``runtime`` (added through the API).
    owner: str = OWNER_CONFIG
    #: The job's newest recorded run with its outcome, when looked up (see :func:`with_last_runs`).
    last_run: RunInfo | None = None

    @property
    def attempts(self) -> str:
        """``runs/max_runs`` (``0/1`` for a one-off), or just ``runs`` without a limit (the
        predecessor's "Attempts" column)."""
        return str(self.runs) if self.max_runs is None else f"{self.runs}/{self.max_runs}"

    def due_in(self, now: datetime) -> timedelta | None:
        """Time left until ``due_at`` (negative when overdue), ``None`` when not due."""
        return None if self.due_at is None else self.due_at - now

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "kind": self.kind,
            "schedule": self.schedule,
            "task": self.task,
            "due_at": _iso(self.due_at),
            "timezone": self.timezone,
            "runs": self.runs,
            "max_runs": self.max_runs,
            "attempts": self.attempts,
            "tags": list(self.tags),
            "last_run_at": _iso(self.last_run_at),
            "enabled": self.enabled,
            "paused": self.paused,
            "source": self.source,
            "owner": self.owner,
            "broken": self.broken,
            "last_run": None if self.last_run is None else self.last_run.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One recorded run: the instant it was scheduled for, when it was sent, and its task id.

    Both datetimes are aware, in the job's zone.
    """

    job_name: str
    fire_time: datetime
    sent_at: datetime
    task_id: str
    #: False: claimed, not (yet) confirmed as published.
    confirmed: bool = True
    #: A one-off claimed by a beat that stopped while sending it: maybe sent, never sent again.
    abandoned: bool = False
    #: A "run now" request (:func:`~celery_orchestra.run_job_now`): ``fire_time`` is when it was
    #: requested, and it is sent outside the job's schedule.
    manual: bool = False
    #: What the result backend knows of the run (``None``: not looked up, no app given);
    #: ``finished_at`` in the job's zone.
    outcome: RunOutcome | None = None

    @property
    def state(self) -> str:
        """``sent``, ``sending`` (claimed, not confirmed yet) or ``unconfirmed: the beat stopped while sending``;
        for a manual run not sent yet, ``requested`` (or ``not sent: the job was removed``)."""
        if self.confirmed:
            return "sent"
        if self.manual:
            return "not sent: the job was removed" if self.abandoned else "requested"
        return "unconfirmed: the beat stopped while sending" if self.abandoned else "sending"

    @property
    def delay(self) -> timedelta:
        """How late the send was, compared with the scheduled instant."""
        return self.sent_at - self.fire_time

    @property
    def result(self) -> str:
        """Celery's state of the run (``SUCCESS``, ``FAILURE``...) when a result backend knows it,
        else :attr:`state` (``sent`` without a result backend)."""
        outcome = self.outcome
        if outcome is None or outcome.state == STATE_SENT or (outcome.state == "PENDING" and not self.confirmed):
            return self.state
        return outcome.state

    @property
    def took(self) -> timedelta | None:
        """From the send to the result (queue wait included), when the backend says when it
        finished: Celery's backends store no start time, so this is the whole turnaround."""
        if self.outcome is None or self.outcome.finished_at is None:
            return None
        return self.outcome.finished_at - self.sent_at

    def as_dict(self) -> dict[str, Any]:
        took = self.took
        outcome = None if self.outcome is None else self.outcome.as_dict()
        if outcome is not None:
            outcome["took_seconds"] = None if took is None else round(took.total_seconds(), 3)
        return {
            "job": self.job_name,
            "fire_time": self.fire_time.isoformat(),
            "sent_at": self.sent_at.isoformat(),
            "task_id": self.task_id,
            "confirmed": self.confirmed,
            "state": self.state,
            "manual": self.manual,
            "outcome": outcome,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# ---------------------------------------------------------------------------- the store


def open_store(app: Any, schedule_filename: str | None = None, *, database_url: str | None = None) -> JobStore:
    """The store beat uses for ``app``; the caller closes it.

    The URL is ``database_url`` if given, else the ``orchestra_database_url`` setting, else the
    SQLite file beside beat's schedule file: ``schedule_filename`` (what ``celery beat -s`` was
    given), defaulting to the app's ``beat_schedule_filename``. A SQLite store that does not exist
    yet raises :class:`StoreNotFoundError` instead of being created empty. Nothing connects here.
    """
    if database_url is not None and not database_url.strip():
        raise ControlError("the database URL is empty")
    if database_url:
        url = database_url
    else:
        settings = read_settings(app.conf)
        url = settings.store_url(schedule_filename or app.conf.get("beat_schedule_filename"))
    store = JobStore(url)
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise StoreNotFoundError(
            f"no orchestra store at {missing}: beat creates it on its first start; "
            "check the schedule file (beat's -s) or the orchestra_database_url setting"
        )
    return store


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of a file-backed SQLite URL when that file does not exist, else ``None``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # JobStore has already refused it with a clear message
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if parsed.query.get("uri") or "mode=memory" in database:
        return None
    path = Path(database)
    return None if path.exists() else path.resolve()


@contextlib.contextmanager
def store_for(target: Target) -> Iterator[JobStore]:
    """``target`` itself if it is a store; else the app's store, closed afterwards."""
    if isinstance(target, JobStore):
        yield target
        return
    if not hasattr(target, "conf"):
        raise TypeError(f"target must be a Celery app or a JobStore, got {type(target).__name__}")
    store = open_store(target)
    try:
        # An older celery-orchestra may have created the store: bring its schema up to date
        # (what beat does on start; a no-op when it is current).
        store.migrate()
        yield store
    finally:
        store.close()


def default_zone(target: Target, default_timezone: str | tzinfo | None) -> tzinfo:
    """The zone of jobs that name none: the given one, else the app's (see ``timing.zones.app_zone``)."""
    if default_timezone is not None:
        return resolve_zone(default_timezone)
    return app_zone(target if hasattr(target, "conf") else None)


# ---------------------------------------------------------------------------- input


def parse_tags(tags: str | Iterable[str]) -> tuple[str, ...]:
    """Tags from ``"a,b"`` or an iterable of strings (which may hold commas too), deduplicated.

    Raises :class:`ControlError` when no tag is left or an item is not a string.
    """
    items: Iterable[object] = [tags] if isinstance(tags, str) else tags
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ControlError(f"tags must be strings, got {type(item).__name__} ({visible(repr(item), 80)})")
        found.extend(part.strip() for part in item.split(","))
    unique = unique_tags(tag for tag in found if is_tag(tag))
    if not unique:
        raise ControlError("no tags given (expected tags like 'cpu' or 'cpu,nightly')")
    return unique


def _job_names(names: str | Iterable[str]) -> list[str]:
    items: Iterable[object] = [names] if isinstance(names, str) else names
    found: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ControlError(f"a job name must be a non-empty string, got {visible(repr(item), 80)}")
        found.append(item)
    if not found:
        raise ControlError("no job names given")
    return list(dict.fromkeys(found))


def _state_names(states: Iterable[str]) -> set[str]:
    by_folded = {state.casefold(): state for state in STATES}
    wanted: set[str] = set()
    for state in states:
        known = by_folded.get(state.casefold()) if isinstance(state, str) else None
        if known is None:
            raise ControlError(f"unknown state {state!r}; expected one of {', '.join(STATES)}")
        wanted.add(known)
    return wanted


# ---------------------------------------------------------------------------- pause and resume


def pause_job(target: Target, name: str) -> ChangeResult:
    """Pause one job: beat stops sending it until it is resumed (kept across restarts)."""
    return pause_jobs(target, [name])


def resume_job(target: Target, name: str) -> ChangeResult:
    """Resume one job; its next run is the first fire time after now (missed ones are not replayed)."""
    return resume_jobs(target, [name])


def pause_jobs(target: Target, names: str | Iterable[str]) -> ChangeResult:
    """Pause jobs by name, all or none: an unknown name raises :class:`NoSuchJobError`."""
    return _switch(target, _job_names(names), "pause")


def resume_jobs(target: Target, names: str | Iterable[str]) -> ChangeResult:
    """Resume jobs by name, all or none: an unknown name raises :class:`NoSuchJobError`."""
    return _switch(target, _job_names(names), "resume")


def pause_jobs_with_tags(target: Target, tags: str | Iterable[str], any_tag: bool = True) -> ChangeResult:
    """Pause the jobs carrying any of ``tags`` (or, with ``any_tag=False``, all of them).

    Raises :class:`NoMatchingJobsError` when no job matches, rather than silently doing nothing.
    """
    return _switch_by_tags(target, parse_tags(tags), any_tag, "pause")


def resume_jobs_with_tags(target: Target, tags: str | Iterable[str], any_tag: bool = True) -> ChangeResult:
    """Resume the jobs carrying any of ``tags`` (or, with ``any_tag=False``, all of them)."""
    return _switch_by_tags(target, parse_tags(tags), any_tag, "resume")


def _switch(target: Target, names: list[str], action: Action, selector: str | None = None) -> ChangeResult:
    """Pause, resume, enable or disable the named jobs that still run (all or none)."""
    with store_for(target) as store:
        ended = _ended_states(store, names)
        live = [name for name in names if name not in ended]
        now = datetime.now(UTC)
        try:
            if not live:
                changed: set[str] = set()
            elif action in ("pause", "resume"):
                changed = set(store.set_paused(live, action == "pause", now=now))
            else:
                changed = set(store.set_enabled(live, action == "enable", now=now))
        except JobNotFound as missing:
            raise no_such_job(store, missing.names) from None
    return ChangeResult(
        action=action,
        changed=tuple(name for name in live if name in changed),
        unchanged=tuple(name for name in live if name not in changed),
        selector=selector,
        ended=tuple((name, ended[name]) for name in names if name in ended),
    )


#: Up to this many names are looked up one by one; more, in one read of every job.
_ONE_BY_ONE = 20


def _ended_states(store: JobStore, names: Sequence[str]) -> dict[str, str]:
    """The state of each named job that no longer runs (Done, Expired, Removed); unknown names raise."""
    if len(names) <= _ONE_BY_ONE:
        records = [record for record in map(store.get_job, names) if record is not None]
    else:
        wanted = set(names)
        records = [record for record in store.all_jobs(include_removed=True) if record.name in wanted]
    known = {record.name for record in records}
    missing = [name for name in names if name not in known]
    if missing:
        raise no_such_job(store, missing)
    states = {record.name: _state_of(record) for record in records}
    return {name: state for name, state in states.items() if state in (STATE_DONE, STATE_EXPIRED, STATE_REMOVED)}


def _state_of(record: JobRecord) -> str:
    return job_state(
        removed=record.removed,
        enabled=record.enabled,
        paused=record.paused,
        expired=record.expired,
        finished=has_finished(record.max_runs, record.last_run_at, record.anchor),
    )


def _switch_by_tags(target: Target, tags: tuple[str, ...], any_tag: bool, action: Action) -> ChangeResult:
    with store_for(target) as store:
        names = store.names_with_tags(tags, any_tag=any_tag)
        if not names:
            raise NoMatchingJobsError(tags, any_tag)
        return _switch(store, names, action, selector=_tag_selector(tags, any_tag))


# ---------------------------------------------------------------------------- enable and disable


def enable_job(target: Target, name: str) -> ChangeResult:
    """Enable one job (configured or added at runtime): beat sends it again from its next fire
    time after now. An operator's enable survives restarts until the configuration's own
    ``enabled`` changes."""
    return enable_jobs(target, [name])


def disable_job(target: Target, name: str) -> ChangeResult:
    """Disable one job: beat stops sending it (kept across restarts, see :func:`enable_job`)."""
    return disable_jobs(target, [name])


def enable_jobs(target: Target, names: str | Iterable[str]) -> ChangeResult:
    """Enable jobs by name, all or none: an unknown name raises :class:`NoSuchJobError`."""
    return _switch(target, _job_names(names), "enable")


def disable_jobs(target: Target, names: str | Iterable[str]) -> ChangeResult:
    """Disable jobs by name, all or none: an unknown name raises :class:`NoSuchJobError`."""
    return _switch(target, _job_names(names), "disable")


def enable_jobs_with_tags(target: Target, tags: str | Iterable[str], any_tag: bool = True) -> ChangeResult:
    """Enable the jobs carrying any of ``tags`` (or, with ``any_tag=False``, all of them)."""
    return _switch_by_tags(target, parse_tags(tags), any_tag, "enable")


def disable_jobs_with_tags(target: Target, tags: str | Iterable[str], any_tag: bool = True) -> ChangeResult:
    """Disable the jobs carrying any of ``tags`` (or, with ``any_tag=False``, all of them).

    Raises :class:`NoMatchingJobsError` when no job matches, rather than silently doing nothing.
    """
    return _switch_by_tags(target, parse_tags(tags), any_tag, "disable")


def _tag_selector(tags: Sequence[str], any_tag: bool) -> str:
    listed = ", ".join(tags)
    if len(tags) == 1:
        return f"jobs with tag {listed}"
    return f"jobs with {'any' if any_tag else 'all'} of the tags {listed}"


def no_such_job(store: JobStore, names: Sequence[str]) -> NoSuchJobError:
    known = [record.name for record in store.all_jobs()]
    suggestions = {}
    for name in names:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if close:
            suggestions[name] = close[0]
    return NoSuchJobError(names, suggestions)


# ---------------------------------------------------------------------------- listing


def list_jobs(
    target: Target,
    *,
    tags: str | Iterable[str] = (),
    any_tag: bool = True,
    states: Iterable[str] = (),
    include_removed: bool = False,
    default_timezone: str | tzinfo | None = None,
    now: datetime | None = None,
    app: Any = None,
) -> list[JobStatus]:
    """Every job with its state, next fire time and run count, by name.

    ``tags`` keeps jobs carrying any (or, with ``any_tag=False``, all) of them; ``states`` keeps jobs
    in one of those states (case-insensitive). Removed jobs (no longer configured, kept for their
    history) are left out unless ``include_removed`` or ``states`` asks for ``Removed``.
    ``default_timezone`` is the zone of jobs that name none (default: the app's ``timezone``, else
    UTC); pass it (or ``app``) when ``target`` is a store and the app has a ``timezone``.
    With a Celery app (``target`` or ``app``), each job's newest run and its outcome in the app's
    result backend are in ``last_run`` (see :func:`with_last_runs`).
    """
    return list(
        list_jobs_page(
            target,
            tags=tags,
            any_tag=any_tag,
            states=states,
            include_removed=include_removed,
            default_timezone=default_timezone,
            now=now,
            app=app,
        ).jobs
    )


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of :func:`list_jobs_page`: ``jobs`` from position ``offset`` of the ``total`` matching."""

    jobs: tuple[JobStatus, ...]
    total: int
    offset: int
    limit: int | None


def list_jobs_page(
    target: Target,
    *,
    tags: str | Iterable[str] = (),
    any_tag: bool = True,
    states: Iterable[str] = (),
    owner: str | None = None,
    name_contains: str | None = None,
    include_removed: bool = False,
    offset: int = 0,
    limit: int | None = None,
    default_timezone: str | tzinfo | None = None,
    now: datetime | None = None,
    app: Any = None,
    snapshot: JobsSnapshot | None = None,
) -> JobPage:
    """What :func:`list_jobs` lists, filtered further and cut into a page, with the number matching.

    ``owner`` (``config`` or ``runtime``) and ``name_contains`` (case-insensitive) narrow the jobs;
    ``offset`` and ``limit`` choose the page, by name. Without a state filter only the page's jobs
    are worked out (next fire, last run), so a page of a large store costs the page, not the store.
    A long-lived caller passes a :class:`~.snapshot.JobsSnapshot` of the store: a state filter then
    reads only the rows written since its last request.
    """
    if isinstance(tags, str):
        tag_items: tuple[str, ...] = (tags,) if tags else ()
    else:
        tag_items = tuple(tags)
    wanted_tags = set(parse_tags(tag_items)) if tag_items else set()
    wanted_states = _state_names(states)
    _check_page(owner, offset, limit)
    folded = name_contains.casefold() if name_contains else None
    include_removed = include_removed or STATE_REMOVED in wanted_states
    app = _celery_app(target, app)
    zone = default_zone(target if app is None else app, default_timezone)
    moment = now if now is not None else datetime.now(UTC)
    end = None if limit is None else offset + limit
    with store_for(target) as store:
        statuses = _Statuses(zone, app, moment)
        if wanted_states or (limit is None and not offset):  # a state, or every job: one read of every row
            records = [
                record
                for record in (
                    store.all_jobs(include_removed=include_removed)
                    if snapshot is None
                    else snapshot.jobs(include_removed=include_removed)
                )
                if _keep(record.name, record.owner, record.tags, wanted_tags, any_tag, owner, folded)
                and (not wanted_states or statuses.state(record) in wanted_states)
            ]
            total, records = len(records), records[offset:end]
        else:  # names, owners and tags pick the page; only its rows are read
            keys = [
                key
                for key in store.job_keys(include_removed=include_removed)
                if _keep(key.name, key.owner, key.tags, wanted_tags, any_tag, owner, folded)
            ]
            total = len(keys)
            records = store.jobs_named([key.name for key in keys[offset:end]])
        return JobPage(statuses.with_runs(store, records), total, offset, limit)


def _check_page(owner: str | None, offset: int, limit: int | None) -> None:
    if owner is not None and owner not in (OWNER_CONFIG, OWNER_RUNTIME):
        raise ControlError(f"unknown owner {owner!r}; expected {OWNER_CONFIG!r} or {OWNER_RUNTIME!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ControlError(f"offset must be a whole number >= 0, got {offset!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ControlError(f"limit must be a whole number >= 1, got {limit!r}")


def _keep(
    name: str,
    job_owner: str,
    tags: Sequence[str],
    wanted_tags: set[str],
    any_tag: bool,
    owner: str | None,
    folded: str | None,
) -> bool:
    """Whether a job passes the tag, owner and name filters of :func:`list_jobs_page`."""
    if wanted_tags:
        present = wanted_tags.intersection(tags)
        if not (present if any_tag else present == wanted_tags):
            return False
    if owner is not None and job_owner != owner:
        return False
    return folded is None or folded in name.casefold()


def tag_counts(target: Target) -> dict[str, int]:
    """Every tag of the jobs that are not removed, with how many jobs carry it, by tag."""
    counts: dict[str, int] = {}
    with store_for(target) as store:
        for key in store.job_keys(include_removed=False):
            for tag in key.tags:
                counts[tag] = counts.get(tag, 0) + 1
    return dict(sorted(counts.items()))


def _celery_app(target: Target, app: Any) -> Any:
    """The Celery app given, else ``target`` if it is one, else ``None``."""
    if app is not None:
        return app
    return target if hasattr(target, "conf") else None


def with_last_runs(store: JobStore, statuses: Sequence[JobStatus], app: Any) -> list[JobStatus]:
    """``statuses`` with each job's newest recorded run and its outcome in ``app``'s result
    backend (one ledger query, one batched backend lookup); unchanged without an app."""
    if app is None or not statuses:
        return list(statuses)
    runs = _latest_runs(store, [(status.name, _zone_named(status.timezone)) for status in statuses], app)
    return [dataclasses.replace(status, last_run=runs.get(status.name)) for status in statuses]


def _latest_runs(store: JobStore, jobs: Sequence[tuple[str, tzinfo]], app: Any) -> dict[str, RunInfo]:
    """The newest recorded run of each of ``jobs`` (name, zone of its times) that has one, with
    its outcome; nothing without an app."""
    if app is None or not jobs:
        return {}
    latest = store.latest_runs([name for name, _ in jobs])
    found = [(latest[name], zone) for name, zone in jobs if name in latest]
    return {run.job_name: run for run in _run_infos(found, app)}


def _zone_named(name: str) -> tzinfo:
    try:
        return resolve_zone(name)
    except OrchestraError:
        return UTC


def _run_infos(entries: Sequence[tuple[LedgerEntry, tzinfo]], app: Any) -> list[RunInfo]:
    """Each ledger entry as a run in its zone; with an app, with its outcome, all looked up
    together (see :func:`.outcomes.outcomes`)."""
    if app is None or not entries:
        return [_run_info(entry, zone, None) for entry, zone in entries]
    found = outcomes(app, [entry.task_id for entry, _ in entries])
    return [_run_info(entry, zone, found[entry.task_id].in_zone(zone)) for entry, zone in entries]


def _run_info(entry: LedgerEntry, zone: tzinfo, outcome: RunOutcome | None) -> RunInfo:
    return RunInfo(
        entry.job_name,
        entry.fire_time.astimezone(zone),
        entry.sent_at.astimezone(zone),
        entry.task_id,
        entry.confirmed,
        entry.abandoned,
        entry.manual,
        outcome,
    )


def job_status(record: JobRecord, *, default_zone: tzinfo, app: Any = None, now: datetime) -> JobStatus:
    """A stored job as shown to operators (see :class:`JobStatus`)."""
    return _Statuses(default_zone, app, now).status(record)


def job_statuses(
    records: Iterable[JobRecord], *, default_zone: tzinfo, app: Any = None, now: datetime
) -> list[JobStatus]:
    """:func:`job_status` of each record, computing what alike records share once (see :class:`_Statuses`)."""
    statuses = _Statuses(default_zone, app, now)
    return [statuses.status(record) for record in records]


class _Statuses:
    """The :class:`JobStatus` of many jobs at one instant, built from what their rows share.

    Jobs added together (a bulk import, one configuration) share their schedule, zone and
    anchor, thousands of rows alike: each distinct schedule is rebuilt once per zone and anchor
    (not one Celery schedule object per row), described once, and its next fire computed once per
    last run and resume, as beat shares them when it loads jobs (``beat/loading.py``). A schedule
    object is never changed by computing its fires, so sharing one changes no answer.
    """

    def __init__(self, default_zone: tzinfo, app: Any, now: datetime) -> None:
        self.default_zone = default_zone
        self.app = app
        self.now = now
        #: Each job's ``timezone`` column: its zone and the zone's name (see :func:`record_zone`).
        self.zones: dict[str | None, tuple[tzinfo, str]] = {}
        self.descriptions: dict[Hashable, str] = {}
        #: By (schedule data, zone, anchor); ``None`` when the data cannot be rebuilt.
        self.schedules: dict[tuple[Hashable, tzinfo, datetime], BaseSchedule | None] = {}
        #: By (schedule data, zone, anchor, last run, resume).
        self.fires: dict[tuple[Hashable, tzinfo, datetime, datetime | None, datetime | None], datetime | None] = {}

    def state(self, record: JobRecord) -> str:
        return STATE_BROKEN if record.broken is not None else _state_of(record)

    def zone(self, record: JobRecord) -> tuple[tzinfo, str]:
        known = self.zones.get(record.timezone)
        if known is None:
            zone = record_zone(record, self.default_zone)
            known = self.zones[record.timezone] = (zone, zone_name(zone))
        return known

    def run_zone(self, record: JobRecord) -> tzinfo:
        """The zone a job's runs are shown in: the one its status names."""
        return _zone_named(self.zone(record)[1])

    def with_runs(self, store: JobStore, records: Sequence[JobRecord]) -> tuple[JobStatus, ...]:
        """Each record's status with its newest run: the runs are looked up first (one query, one
        batch of outcomes), so that each status is built once, with its run."""
        runs = _latest_runs(store, [(record.name, self.run_zone(record)) for record in records], self.app)
        return tuple(self.status(record, last_run=runs.get(record.name)) for record in records)

    def status(self, record: JobRecord, *, last_run: RunInfo | None = None) -> JobStatus:
        if record.broken is not None:
            return _broken_status(record, self.default_zone, last_run)
        state = _state_of(record)
        zone, name = self.zone(record)
        shape = data_key(record.schedule_data)
        due = self.due_at(record, zone, shape) if state == STATE_RUNNING else None
        return JobStatus(
            name=record.name,
            state=state,
            kind=record.kind,
            schedule=self.describe(record.schedule_data, shape),
            task=record.task,
            due_at=None if due is None else due.astimezone(zone),
            timezone=name,
            runs=record.total_run_count,
            max_runs=record.max_runs,
            tags=tuple(record.tags),
            last_run_at=None if record.last_run_at is None else record.last_run_at.astimezone(zone),
            enabled=record.enabled,
            paused=record.paused,
            source=record.source,
            owner=record.owner,
            last_run=last_run,
        )

    def describe(self, data: Mapping[str, Any], shape: Hashable | None) -> str:
        """``data``'s description; ``shape`` is its :func:`data_key` (``None``: nothing shared)."""
        if shape is None:
            return _described(data)
        described = self.descriptions.get(shape)
        if described is None:
            described = self.descriptions[shape] = _described(data)
        return described

    def due_at(self, record: JobRecord, zone: tzinfo, shape: Hashable | None) -> datetime | None:
        """The job's next fire instant: beat's stored value while it is current, else computed.

        Beat stores ``next_run_at`` when it schedules a job. After a resume that value can predate
        the resume (it was computed before the pause, and beat may not have run since); the next
        run is then the first fire time after the resume, computed here the way beat will.
        """
        stored = record.next_run_at
        resumed = record.resumed_at
        if stored is not None and (resumed is None or stored > resumed):
            return stored
        if shape is None:  # data that cannot be a key (it will not decode either): nothing shared
            schedule = self._rebuilt(record.schedule_data, zone, record.anchor)
            return stored if schedule is None else self._next_fire(schedule, record)
        key = (shape, zone, record.anchor)
        if key not in self.schedules:
            self.schedules[key] = self._rebuilt(record.schedule_data, zone, record.anchor)
        schedule = self.schedules[key]
        if schedule is None:
            return stored
        fire_key = (*key, record.last_run_at, resumed)
        if fire_key not in self.fires:
            self.fires[fire_key] = self._next_fire(schedule, record)
        return self.fires[fire_key]

    def _next_fire(self, schedule: BaseSchedule, record: JobRecord) -> datetime | None:
        return next_fire(
            schedule, last_fire_at=record.last_run_at, anchor=record.anchor, resumed_at=record.resumed_at, now=self.now
        )

    def _rebuilt(self, data: Mapping[str, Any], zone: tzinfo, anchor: datetime) -> BaseSchedule | None:
        try:
            return schedule_from_data(data, tz=zone, anchor=anchor, app=self.app)
        except (OrchestraError, ValueError):
            return None


def _described(data: Mapping[str, Any]) -> str:
    try:
        return describe_data(data)
    except OrchestraError as error:  # a row edited into nonsense is shown, not fatal to the listing
        return f"unreadable schedule: {error}"


def _broken_status(record: JobRecord, default_zone: tzinfo, last_run: RunInfo | None) -> JobStatus:
    """A job whose row cannot be read: its name, the reason, and the operator columns (still usable)."""
    return JobStatus(
        name=record.name,
        state=STATE_BROKEN,
        kind=record.kind,
        schedule=f"cannot be read: {record.broken}",
        task=record.task,
        due_at=None,
        timezone=zone_name(record_zone(record, default_zone)),
        runs=record.total_run_count,
        max_runs=record.max_runs,
        tags=tuple(record.tags),
        last_run_at=None,
        enabled=record.enabled,
        paused=record.paused,
        source=record.source,
        broken=record.broken,
        owner=record.owner,
        last_run=last_run,
    )


def record_zone(record: JobRecord, default_zone: tzinfo) -> tzinfo:
    """The zone of ``record``'s times: its own, else ``default_zone`` (also when its own cannot be read)."""
    if not record.timezone:
        return default_zone
    try:
        return resolve_zone(record.timezone)
    except OrchestraError:
        return default_zone


# ---------------------------------------------------------------------------- history


def job_history(
    target: Target,
    name: str,
    limit: int = 20,
    *,
    before: datetime | None = None,
    default_timezone: str | tzinfo | None = None,
    app: Any = None,
) -> list[RunInfo]:
    """The newest ``limit`` recorded runs of job ``name``, newest first, in the job's zone; with
    ``before`` (aware), only runs whose fire time is earlier: pass the last run's ``fire_time``
    to read the next page.

    With a Celery app (``target`` or ``app``), each run's ``outcome`` is read from the app's
    result backend, all runs in one batch (see :mod:`celery_orchestra.ops.outcomes`).

    Raises :class:`NoSuchJobError` for an unknown name and :class:`ControlError` for a limit < 1.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ControlError(f"the number of runs must be a whole number >= 1, got {limit!r}")
    if before is not None and (not isinstance(before, datetime) or before.utcoffset() is None):
        raise ControlError(f"before must be an aware datetime, got {before!r}")
    app = _celery_app(target, app)
    zone = default_zone(target if app is None else app, default_timezone)
    with store_for(target) as store:
        try:
            record = store.get_job(name)
            if record is None:
                raise JobNotFound([name])
            entries: list[LedgerEntry] = store.history(name, limit, before=before)
        except JobNotFound as missing:
            raise no_such_job(store, missing.names) from None
    job_zone = record_zone(record, zone)
    return _run_infos([(entry, job_zone) for entry in entries], app)


def find_run(target: Target, task_id: str, *, default_timezone: str | tzinfo | None = None, app: Any = None) -> RunInfo:
    """The recorded run sent with ``task_id``, in its job's zone, with its outcome when there is an app.

    Raises :class:`NoSuchRunError` when the ledger holds no run with that task id.
    """
    if not isinstance(task_id, str) or not task_id.strip():
        raise ControlError(f"a task id must be a non-empty string, got {visible(repr(task_id), 80)}")
    app = _celery_app(target, app)
    zone = default_zone(target if app is None else app, default_timezone)
    with store_for(target) as store:
        entry = store.run_by_task_id(task_id)
        if entry is None:
            raise NoSuchRunError(task_id)
        record = store.get_job(entry.job_name)
    job_zone = zone if record is None else record_zone(record, zone)
    return _run_infos([(entry, job_zone)], app)[0]
