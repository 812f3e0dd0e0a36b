"""Reading Celery's ``beat_schedule`` setting into :class:`~celery_orchestra.jobs.definitions.JobDefinition` values.

Entries take Celery's keys (``task``, ``schedule``, ``args``, ``kwargs``, ``options``,
``relative``) plus ``timezone``, ``tags`` and ``enabled``; ``schedule`` may also be a timing string
or a :class:`~celery_orchestra.timing.schedule.Timing`. Every problem is reported with the job's
name, never raised one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta, tzinfo
from typing import Any

from celery.schedules import schedule as interval_schedule

from ..errors import ConfigProblem, ScheduleDataError, ScheduleTypeError, TimeZoneError, TimingError
from ..timing.schedule import Timing
from .codec import schedule_to_data
from .definitions import JobDefinition
from .fields import canonical_zone_name, is_tag, python_value, unique_tags, unknown_key_message

__all__ = ["BEAT_SCHEDULE_SOURCE", "definitions_from_beat_schedule"]

#: ``JobDefinition.source`` (and ``ConfigProblem.source``) of jobs from Celery's ``beat_schedule``.
BEAT_SCHEDULE_SOURCE = "beat_schedule"

_BEAT_KEYS = ("task", "schedule", "args", "kwargs", "options", "relative", "timezone", "tags", "enabled")
_BEAT_HINTS = {
    "tz": "did you mean 'timezone'?",
    "additional_options": "in beat_schedule, apply_async options go under 'options'",
    "name": "the entry's name is its key in beat_schedule",
}
#: apply_async parameters that the scheduler passes itself; in ``options`` they would collide.
_RESERVED_OPTIONS = ("args", "kwargs")


def definitions_from_beat_schedule(
    schedule: Mapping[str, Any],
) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    """The jobs in a Celery ``beat_schedule`` mapping, and every problem found in it.

    Entries take Celery's keys (``task``, ``schedule``, ``args``, ``kwargs``, ``options``,
    ``relative``) plus ``timezone``, ``tags`` and ``enabled``. ``schedule`` may also be a timing
    string or a :class:`~celery_orchestra.timing.schedule.Timing`.
    """
    definitions: list[JobDefinition] = []
    problems: list[ConfigProblem] = []
    if not isinstance(schedule, Mapping):
        problems.append(
            ConfigProblem(
                BEAT_SCHEDULE_SOURCE,
                None,
                None,
                None,
                f"must be a dict of job name to entry, got {python_value(schedule)}",
            )
        )
        return definitions, problems
    for name, entry in schedule.items():
        definition = _BeatEntryReader(name, entry, problems).read()
        if definition is not None:
            definitions.append(definition)
    return definitions, problems


class _BeatEntryReader:
    """Checks one ``beat_schedule`` entry, reporting into a shared problem list."""

    def __init__(self, name: object, entry: object, problems: list[ConfigProblem]) -> None:
        self.name = name
        self.entry = entry
        self.problems = problems
        self.job = name if isinstance(name, str) else repr(name)

    def report(self, message: str, *, excerpt: str | None = None, excerpt_column: int | None = None) -> None:
        self.problems.append(
            ConfigProblem(BEAT_SCHEDULE_SOURCE, None, None, self.job, message, excerpt, excerpt_column)
        )

    def read(self) -> JobDefinition | None:
        before = len(self.problems)
        name = self.name
        if not isinstance(name, str) or not name.strip():
            self.report(f"a job name must be a non-empty string, got {python_value(name)}")
        entry = self.entry
        if not isinstance(entry, Mapping):
            self.report(f"an entry must be a dict with 'task' and 'schedule', got {python_value(entry)}")
            return None
        for key in entry:
            if key not in _BEAT_KEYS:
                shown = key if isinstance(key, str) else repr(key)
                self.report(unknown_key_message(shown, _BEAT_KEYS, "the entry", _BEAT_HINTS))
        task = self.task(entry)
        relative = self.flag(entry, "relative", default=False)
        enabled = self.flag(entry, "enabled", default=True)
        zone = self.zone(entry)
        schedule_data, schedule_zone = self.schedule(entry, relative)
        if zone is not None and schedule_zone is not None and zone != schedule_zone:
            self.report(
                f"the schedule's own time zone {schedule_zone!r} disagrees with 'timezone' {zone!r}; "
                "give the zone in one place"
            )
        args = self.args(entry)
        kwargs = self.string_keyed(entry, "kwargs")
        options = self.string_keyed(entry, "options")
        for reserved in _RESERVED_OPTIONS:
            if reserved in options:
                self.report(f"'options' must not contain {reserved!r}; give it as the entry's {reserved!r}")
        tags = self.tags(entry)
        if len(self.problems) != before or task is None or schedule_data is None:
            return None
        assert isinstance(name, str)  # a bad name was reported above
        return JobDefinition(
            name=name,
            task=task,
            schedule_data=schedule_data,
            timezone=zone if zone is not None else schedule_zone,
            args=args,
            kwargs=kwargs,
            options=options,
            tags=tags,
            enabled=bool(enabled),
            source=BEAT_SCHEDULE_SOURCE,
        )

    def task(self, entry: Mapping[Any, Any]) -> str | None:
        if "task" not in entry:
            self.report("missing 'task' (the registered name of the Celery task to send)")
            return None
        task = entry["task"]
        if not isinstance(task, str) or not task.strip():
            self.report(f"'task' must be a task name, got {python_value(task)}")
            return None
        return task

    def flag(self, entry: Mapping[Any, Any], key: str, *, default: bool) -> bool:
        value = entry.get(key, default)
        if not isinstance(value, bool):
            self.report(f"{key!r} must be True or False, got {python_value(value)}")
            return default
        return value

    def zone(self, entry: Mapping[Any, Any]) -> str | None:
        value = entry.get("timezone")
        if value is None:
            return None
        if not isinstance(value, str | tzinfo):
            self.report(f"'timezone' must be an IANA zone name, got {python_value(value)}")
            return None
        try:
            return canonical_zone_name(value)
        except TimeZoneError as exc:
            self.report(f"bad time zone: {exc}")
            return None

    def schedule(self, entry: Mapping[Any, Any], relative: bool) -> tuple[dict[str, Any] | None, str | None]:
        """The schedule as data, and the zone a :class:`Timing` brought along (if any)."""
        if "schedule" not in entry:
            self.report("missing 'schedule' (a timing string, crontab, timedelta or seconds)")
            return None, None
        value = entry["schedule"]
        if relative and not _honours_relative(value):
            self.report(
                "'relative' applies only to a number of seconds or a timedelta; "
                f"a {type(value).__name__} schedule has no use for it"
            )
        try:
            data = schedule_to_data(value, relative=relative)
        except TimingError as exc:
            self.report(f"bad timing: {exc.reason}", excerpt=_expression_line(exc), excerpt_column=exc.column)
            return None, None
        except (ScheduleTypeError, ScheduleDataError) as exc:
            self.report(f"bad schedule: {exc}")
            return None, None
        own_zone = value.zone if isinstance(value, Timing) else None
        if own_zone is None:
            return data, None
        try:
            return data, canonical_zone_name(own_zone)
        except TimeZoneError as exc:
            self.report(f"bad time zone in the schedule: {exc}")
            return None, None

    def args(self, entry: Mapping[Any, Any]) -> tuple[Any, ...]:
        value = entry.get("args", ())
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.report(f"'args' must be a list or tuple, got {python_value(value)}")
            return ()
        return tuple(value)

    def string_keyed(self, entry: Mapping[Any, Any], key: str) -> dict[str, Any]:
        value = entry.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.report(f"{key!r} must be a dict, got {python_value(value)}")
            return {}
        bad_keys = [k for k in value if not isinstance(k, str)]
        if bad_keys:
            self.report(f"the keys of {key!r} must be strings, got {python_value(bad_keys[0])}")
            return {}
        return dict(value)

    def tags(self, entry: Mapping[Any, Any]) -> tuple[str, ...]:
        value = entry.get("tags")
        if value is None:
            return ()
        if not isinstance(value, list | tuple | set | frozenset):
            self.report(f"'tags' must be a list of strings, got {python_value(value)}")
            return ()
        for tag in value:
            if not is_tag(tag):
                self.report(f"'tags' must be a list of non-empty strings, got {python_value(tag)}")
                return ()
        # A set has no order of its own; sorting keeps the stored value stable between runs.
        return unique_tags(sorted(value) if isinstance(value, set | frozenset) else value)


def _honours_relative(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | timedelta):
        return True
    return isinstance(value, interval_schedule) and bool(value.relative)


def _expression_line(error: TimingError) -> str:
    lines = error.expression.splitlines() or [""]
    return lines[error.line - 1] if 0 < error.line <= len(lines) else lines[-1]
