"""Celery's own ways of giving a scheduler jobs, ``Scheduler.add(**fields)`` and
``Scheduler.update_from_dict(mapping)``: stored and scheduled like ``beat_schedule`` entries.

Stock beat keeps what these are given in memory; the orchestra scheduler schedules from its store,
so here each entry is read by the ``beat_schedule`` reader (the same keys: ``task``,
``schedule`` as a timing string, crontab, solar, timedelta or seconds, ``args``, ``kwargs``,
``options``, ``relative``, ``timezone``, ``tags``, ``enabled``) and checked by the rules every
configured job obeys (:func:`~celery_orchestra.jobs.checks.definition_problems`). A bad entry
raises :class:`~celery_orchestra.errors.JobSpecError` on one line naming the job (and
``Scheduler.add`` or ``Scheduler.update_from_dict`` as where it came from) before anything is
written. ``update_from_dict`` also takes Celery entry objects, as stock beat does: their task,
schedule, arguments and options.

Jobs given so are the process's configuration (owner ``config``):

* given before the scheduler is set up (a subclass's ``setup_schedule`` calling them before its
  ``super()``), they join the configured jobs in start-up's reconcile;
* given to a set-up scheduler, they are written at once by a partial reconcile (the other stored
  jobs are left alone), which bumps the store's change counter for the other processes, and are
  installed into the running scheduler: they fire from its next tick;
* a later start whose configuration (and calls) no longer give them marks them removed, like any
  job gone from the configuration.

A name ``beat_schedule`` or a YAML file also gives is replaced by what was given last (stock
beat's ``schedule.update`` replaces entries too); a name held by a job added at runtime is refused
naming both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

from celery import beat

from ..errors import ConfigError, JobSpecError, SettingsError
from ..interfaces import SchedulerStore
from ..jobs.beat_schedule import definitions_from_beat_schedule
from ..jobs.checks import definition_problems
from ..jobs.definitions import JobDefinition
from ..settings import DEFAULT_MIN_INTERVAL, read_min_interval
from ..store import JobRecord
from .loading import log_broken

__all__ = ["ADD_SOURCE", "UPDATE_FROM_DICT_SOURCE", "GivenJobs"]

#: The ``source`` of a job given to ``Scheduler.add`` (shown by ``status``, named in errors).
ADD_SOURCE: Final = "Scheduler.add"
#: The ``source`` of a job given to ``Scheduler.update_from_dict``.
UPDATE_FROM_DICT_SOURCE: Final = "Scheduler.update_from_dict"
#: What stock ``add`` hands its entry class besides the entry's fields: nothing a stored job keeps.
_NOT_FIELDS: Final = ("app",)

#: Puts stored jobs' records into the running scheduler (as its poll of the store does).
Install = Callable[[Sequence[JobRecord], datetime], None]
#: The first fire of a job registered at an anchor (the scheduler's, written with each new row).
FirstFire = Callable[[JobDefinition, datetime], datetime | None]


class GivenJobs:
    """The jobs one scheduler was given through Celery's API (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        #: Jobs given before start-up, by name: they join the configured ones.
        self._before_start: dict[str, JobDefinition] = {}
        self._store: SchedulerStore | None = None
        self._first_fire: FirstFire | None = None
        self._install: Install | None = None
        self._now: Callable[[], datetime] | None = None

    def add(self, fields: Mapping[str, Any]) -> str:
        """Store and schedule the one job ``Scheduler.add(**fields)`` gives; its name."""
        values = {key: value for key, value in fields.items() if key not in _NOT_FIELDS}
        name = values.pop("name", None)
        (definition,) = self._read({name: values}, ADD_SOURCE)
        self._take([definition])
        return definition.name

    def update_from_dict(self, mapping: object) -> list[str]:
        """Store and schedule the jobs of a ``beat_schedule``-like mapping; their names."""
        if isinstance(mapping, Mapping):
            mapping = {name: _entry_fields(entry) for name, entry in mapping.items()}
        definitions = self._read(mapping, UPDATE_FROM_DICT_SOURCE)
        self._take(definitions)
        return [definition.name for definition in definitions]

    def with_configured(self, configured: Sequence[JobDefinition]) -> list[JobDefinition]:
        """The configured jobs and those given before start-up (replacing configured ones of their names)."""
        given = self._before_start
        return [definition for definition in configured if definition.name not in given] + list(given.values())

    def started(
        self, store: SchedulerStore | None, *, first_fire: FirstFire, install: Install, now: Callable[[], datetime]
    ) -> None:
        """From now on jobs given are written to ``store`` and put into the running scheduler
        (``None``: there is no store, they are kept as before)."""
        self._store, self._first_fire, self._install, self._now = store, first_fire, install, now
        self._before_start.clear()

    def _read(self, mapping: object, source: str) -> list[JobDefinition]:
        definitions, problems = definitions_from_beat_schedule(cast("Mapping[str, Any]", mapping), source=source)
        if not problems:
            problems = definition_problems(definitions, min_interval=self._min_interval())
        if problems:
            raise JobSpecError(problems)
        return definitions

    def _min_interval(self) -> float:
        try:
            return read_min_interval(self._app.conf)
        except SettingsError:  # start-up (and `celery orchestra check`) says so; the default stands in
            return DEFAULT_MIN_INTERVAL

    def _take(self, definitions: Sequence[JobDefinition]) -> None:
        if not definitions:
            return
        if self._store is None or self._install is None or self._now is None:
            self._before_start.update((definition.name, definition) for definition in definitions)
            return
        # Whole seconds, as at start-up: anchors are shown to people and intervals fire on their grid.
        now = self._now().replace(microsecond=0)
        try:
            report = self._store.reconcile(definitions, now=now, first_fire=self._first_fire, partial=True)
        except ConfigError as error:  # a name held by a job added at runtime: one line, naming both
            raise JobSpecError(error.problems) from None
        log_broken(report.broken)
        self._install(list(report.jobs), now)


def _entry_fields(entry: object) -> object:
    """A Celery entry object as the ``beat_schedule`` entry it stands for; anything else as it is."""
    if not isinstance(entry, beat.ScheduleEntry):
        return entry
    return {
        "task": entry.task,
        "schedule": entry.schedule,
        "args": entry.args,
        "kwargs": entry.kwargs,
        "options": entry.options,
    }
