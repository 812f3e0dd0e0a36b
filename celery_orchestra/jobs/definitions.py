"""What a job *is*, independent of where it was written down.

Both configuration sources (Celery's ``beat_schedule`` and YAML schedule files) are reduced to
:class:`JobDefinition` values before anything else sees them. The store persists them, the scheduler
runs them, and the CLI validates them, so each of those layers depends on this one small module
instead of on each other.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .codec import kind_of_data, max_runs_of_kind


class JobDefinition(NamedTuple):
    """One configured periodic job, as plain data.

    ``schedule_data`` is the schedule as JSON-able data (see :mod:`celery_orchestra.jobs.codec`), never a
    pickled object, so that a store written by one version can be read by the next and inspected
    with plain SQL.

    A named tuple rather than a frozen dataclass: start-up builds one per configured job (there may
    be 100,000), and a frozen dataclass's ``__init__`` costs several times as much. Like the
    dataclass it was, it is immutable but its dicts are not; they are shared (the empty defaults
    between all definitions, equal ``schedule_data`` between the jobs of one source), so nothing
    may mutate them.
    """

    name: str
    task: str
    schedule_data: dict[str, Any]
    #: IANA zone name the schedule is evaluated in; ``None`` means "the app's timezone, else UTC".
    timezone: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}  # noqa: RUF012 - shared, never mutated (see above)
    #: Passed to ``apply_async`` (queue, priority, expires, ...).
    options: dict[str, Any] = {}  # noqa: RUF012 - shared, never mutated (see above)
    tags: tuple[str, ...] = ()
    enabled: bool = True
    #: Where the job was defined, for error messages and the status table:
    #: ``"beat_schedule"`` or ``"path/to/schedule.yaml:12"``.
    source: str = "beat_schedule"

    @property
    def schedule_type(self) -> str:
        return str(self.schedule_data["type"])

    @property
    def kind(self) -> str:
        """The job's kind (``cyclic``, ``daily``..., ``once``, ``crontab``, ``solar``), from its schedule."""
        return kind_of_data(self.schedule_data)

    @property
    def max_runs(self) -> int | None:
        """1 for a one-off, ``None`` (unlimited) for everything else."""
        return max_runs_of_kind(self.kind)
