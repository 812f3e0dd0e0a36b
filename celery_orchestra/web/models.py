"""The HTTP API's request and response bodies, as pydantic models: they are the OpenAPI schema.

Responses are built from the operator API's own ``as_dict()`` (what ``--json`` prints), so the
CLI and the HTTP API show one representation; these models describe it precisely and check it on
the way out. Request models forbid unknown fields: a misspelt ``tag`` is an error, not ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "NO_NUL",
    "BeatOut",
    "BulkSelection",
    "ChangeOut",
    "CrontabFields",
    "CrontabSchedule",
    "HealthOut",
    "IntervalSchedule",
    "JobCreate",
    "JobListOut",
    "JobOut",
    "JobUpdate",
    "LivenessOut",
    "OutcomeOut",
    "Problem",
    "ProblemItem",
    "RemovedOut",
    "RunListOut",
    "RunOut",
    "Schedule",
    "SolarFields",
    "SolarSchedule",
    "TagOut",
]

#: No NUL character: PostgreSQL cannot hold one in text (SQLite could, so a store's rows would depend on its database).
NO_NUL = r"^[^\x00]*$"
#: Long enough for any job name or task name the store keeps (it refuses longer ones itself).
_NAME = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
_SHORT = Annotated[str, Field(max_length=200, pattern=NO_NUL)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrontabFields(_Input):
    """Celery's ``crontab`` fields, each a crontab field string (``*``, ``*/15``, ``mon-fri``...)."""

    minute: _SHORT = "*"
    hour: _SHORT = "*"
    day_of_week: _SHORT = "*"
    day_of_month: _SHORT = "*"
    month_of_year: _SHORT = "*"


class CrontabSchedule(_Input):
    crontab: CrontabFields


class IntervalSchedule(_Input):
    #: Seconds between runs.
    interval: Annotated[float, Field(gt=0, le=100 * 365 * 86400)]


class SolarFields(_Input):
    """Celery's ``solar`` schedule: an event (``sunrise``, ``sunset``, ``dawn_civil``...) at a place."""

    event: _SHORT
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class SolarSchedule(_Input):
    solar: SolarFields


#: A timing string (``every day at 03:00``), or one of Celery's own schedules as an object.
Schedule = (
    Annotated[str, Field(min_length=1, max_length=10_000, pattern=NO_NUL)]
    | CrontabSchedule
    | IntervalSchedule
    | SolarSchedule
)


class JobCreate(_Input):
    """A job to add at runtime: ``add_job``'s parameters."""

    name: _NAME
    task: _NAME
    schedule: Schedule
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: ``apply_async`` options (``queue``, ``priority``, ``expires``...).
    options: dict[str, Any] = Field(default_factory=dict)
    #: An IANA zone; ``null``: the app's ``timezone``.
    timezone: _SHORT | None = None
    tags: list[_NAME] = Field(default_factory=list)
    enabled: bool = True


class JobUpdate(_Input):
    """The fields to change (those absent keep their value; ``timezone: null`` follows the app's zone)."""

    task: _NAME | None = None
    schedule: Schedule | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    timezone: _SHORT | None = None
    tags: list[_NAME] | None = None
    enabled: bool | None = None


class BulkSelection(_Input):
    """Jobs by name, or by tags (any of them, or with ``any_tag: false`` all of them): one of the two."""

    names: list[_NAME] | None = None
    tags: list[_NAME] | None = None
    any_tag: bool = True


class OutcomeOut(BaseModel):
    """What the Celery result backend knows of a run (``sent``: the app has no result backend)."""

    state: str
    finished_at: datetime | None
    error: str | None
    unavailable: str | None
    took_seconds: float | None = None


class RunOut(BaseModel):
    job: str
    fire_time: datetime
    sent_at: datetime
    task_id: str
    confirmed: bool
    #: ``sent``, ``sending``, ``requested``... (see ``RunInfo.state``).
    state: str
    manual: bool
    outcome: OutcomeOut | None


class JobOut(BaseModel):
    name: str
    state: str
    kind: str
    schedule: str
    task: str
    due_at: datetime | None
    timezone: str
    runs: int
    max_runs: int | None
    attempts: str
    tags: list[str]
    last_run_at: datetime | None
    enabled: bool
    paused: bool
    source: str
    owner: str
    broken: str | None
    last_run: RunOut | None


class JobListOut(BaseModel):
    jobs: list[JobOut]
    #: How many jobs match the filters (all pages).
    total: int
    offset: int
    limit: int
    #: The ``offset`` of the next page, ``null`` on the last.
    next_offset: int | None


class RunListOut(BaseModel):
    runs: list[RunOut]
    #: Pass as ``cursor`` for the next (older) page; ``null`` when there is none.
    next_cursor: str | None


class ChangeOut(BaseModel):
    action: Literal["pause", "resume", "enable", "disable"]
    changed: list[str]
    unchanged: list[str]
    #: Jobs that no longer run (Done, Expired, Removed), with that state: left as they were.
    ended: dict[str, str]
    selector: str | None
    #: The CLI's one-line description of the change.
    description: str


class RemovedOut(BaseModel):
    name: str
    #: False when the job was removed already.
    removed: bool


class TagOut(BaseModel):
    tag: str
    #: Jobs (not removed) carrying the tag.
    jobs: int


class BeatOut(BaseModel):
    id: str
    host: str
    pid: int
    version: str
    role: str
    epoch: int | None
    started_at: datetime
    last_tick_at: datetime
    ticked_seconds_ago: float


class LivenessOut(BaseModel):
    active: BeatOut | None
    epoch: int
    lease_expires_at: datetime | None
    checked_at: datetime
    beats: list[BeatOut]
    #: The line ``celery orchestra status`` leads with.
    summary: str


class HealthOut(BaseModel):
    healthy: bool
    summary: str
    #: Healthy means: the active beat ticked at most this many seconds ago.
    max_age_seconds: float


class ProblemItem(BaseModel):
    """One located problem of a request: a job's bad field, or a request field that failed validation."""

    message: str
    #: The request field, as a path (``body.schedule``, ``query.limit``), when known.
    field: str | None = None
    job: str | None = None
    #: Line and column in the timing expression, with ``text`` showing the line and a caret.
    line: int | None = None
    column: int | None = None
    text: str | None = None


class Problem(BaseModel):
    """An error, as RFC 9457 ``application/problem+json``."""

    type: str = "about:blank"
    title: str
    status: int
    #: The message, worded as the CLI words it.
    detail: str
    instance: str | None = None
    problems: list[ProblemItem] | None = None
    #: Unknown job names with the closest known name ("did you mean").
    suggestions: dict[str, str] | None = None
