"""Reading Celery's ``beat_schedule`` setting into :class:`~celery_orchestra.jobs.definitions.JobDefinition` values.

Entries take Celery's keys (``task``, ``schedule``, ``args``, ``kwargs``, ``options``,
``relative``) plus ``timezone``, ``tags`` and ``enabled``; ``schedule`` may also be a timing string
or a :class:`~celery_orchestra.timing.schedule.Timing`. Every problem is reported with the job's
name, never raised one at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta, tzinfo
from typing import Any, Final

from celery.schedules import schedule as interval_schedule

from ..errors import ConfigProblem, ScheduleDataError, ScheduleTypeError, TimeZoneError, TimingError
from ..timing.schedule import Timing
from .codec import schedule_to_data
from .definitions import JobDefinition
from .fields import canonical_zone_name, is_tag, python_value, unique_tags, unknown_key_message

__all__ = ["BEAT_SCHEDULE_SOURCE", "definitions_from_beat_schedule", "read_entry_fields"]

#: ``JobDefinition.source`` (and ``ConfigProblem.source``) of jobs from Celery's ``beat_schedule``.
BEAT_SCHEDULE_SOURCE = "beat_schedule"

_BEAT_KEYS = ("task", "schedule", "args", "kwargs", "options", "relative", "timezone", "tags", "enabled")
_BEAT_KEY_SET: Final = frozenset(_BEAT_KEYS)
_BEAT_HINTS = {
    "tz": "did you mean 'timezone'?",
    "additional_options": "in beat_schedule, apply_async options go under 'options'",
    "name": "the entry's name is its key in beat_schedule",
}
#: apply_async parameters that the scheduler passes itself; in ``options`` they would collide.
_RESERVED_OPTIONS = ("args", "kwargs")


def definitions_from_beat_schedule(
    schedule: Mapping[str, Any], *, source: str = BEAT_SCHEDULE_SOURCE
) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    """The jobs in a Celery ``beat_schedule`` mapping, and every problem found in it.

    Entries take Celery's keys (``task``, ``schedule``, ``args``, ``kwargs``, ``options``,
    ``relative``) plus ``timezone``, ``tags`` and ``enabled``. ``schedule`` may also be a timing
    string or a :class:`~celery_orchestra.timing.schedule.Timing`. ``source`` is where the jobs
    and the problems say they come from (a mapping given to ``Scheduler.update_from_dict``, say).
    """
    definitions: list[JobDefinition] = []
    problems: list[ConfigProblem] = []
    if not isinstance(schedule, Mapping):
        problems.append(
            ConfigProblem(
                source,
                None,
                None,
                None,
                f"must be a dict of job name to entry, got {python_value(schedule)}",
            )
        )
        return definitions, problems
    read = _BeatScheduleReader(problems, source=source).read
    for name, entry in schedule.items():
        definition = read(name, entry)
        if definition is not None:
            definitions.append(definition)
    return definitions, problems


def read_entry_fields(
    entries: Iterable[tuple[str, Mapping[str, Any]]], *, source: str
) -> tuple[list[dict[str, Any]], list[ConfigProblem]]:
    """Some keys of each ``(name, fields)`` entry, checked and converted exactly as
    ``beat_schedule``'s are, and every problem found (each at ``source``, naming its job).

    ``fields`` may hold any of ``task``, ``schedule``, ``timezone``, ``args``, ``kwargs``,
    ``options``, ``tags`` and ``enabled``: what a job added or changed at runtime gives. Each
    entry's values come back under :class:`JobDefinition`'s field names (``schedule`` as
    ``schedule_data``; a :class:`~celery_orchestra.timing.schedule.Timing`'s own zone as
    ``timezone`` unless one is given). One reader reads them all: a bulk import's shared schedule
    is parsed once.
    """
    problems: list[ConfigProblem] = []
    reader = _BeatScheduleReader(problems, source=source)
    return [reader.fields(name, fields) for name, fields in entries], problems


#: The keys a job added or changed at runtime may give (``relative`` is beat_schedule's alone).
_RUNTIME_KEYS: Final = ("task", "schedule", "timezone", "args", "kwargs", "options", "tags", "enabled")
_RUNTIME_KEY_SET: Final = frozenset(_RUNTIME_KEYS)


#: Stands for a key the entry does not have (``None`` is a value some keys may have).
_MISSING: Final = object()
#: Schedule types whose equal values always encode alike, so the memo may key them by value (a
#: crontab, say, compares by its expanded fields, though its data keeps the spelling it was given).
_ENCODED_BY_VALUE: Final = frozenset({str, int, float, timedelta})


class _BeatScheduleReader:
    """Checks the entries of one ``beat_schedule``, reporting into a shared problem list.

    Beat's start-up reads every entry, and a ``beat_schedule`` may hold 100,000 of them, most
    sharing one schedule value (often the very same object). So one reader reads them all and works
    out what they share once: a schedule's data and a zone's name are remembered when they are
    good (a bad one is checked, and reported, again for every job that has it). An optional key's
    checks run only when the entry gives the key.
    """

    def __init__(self, problems: list[ConfigProblem], *, source: str = BEAT_SCHEDULE_SOURCE) -> None:
        self.problems = problems
        self.source = source
        #: (schedule, data, its own zone) by (type, value or id, relative); the schedule is kept
        #: alive so that the id of one keyed by identity cannot be reused while remembered.
        self.schedules: dict[tuple[type, object, bool], tuple[object, dict[str, Any], str | None]] = {}
        #: (zone, canonical name) by name, or by the id of a zone object (kept alive likewise).
        self.zones: dict[str | int, tuple[object, str]] = {}

    def report(self, job: str, message: str, *, excerpt: str | None = None, excerpt_column: int | None = None) -> None:
        self.problems.append(ConfigProblem(self.source, None, None, job, message, excerpt, excerpt_column))

    def read(self, name: object, entry: object) -> JobDefinition | None:
        """The job of one entry, or ``None`` when the entry has a problem (reported)."""
        problems = self.problems
        before = len(problems)
        job = name if isinstance(name, str) else repr(name)
        if not isinstance(name, str) or not name.strip():
            self.report(job, f"a job name must be a non-empty string, got {python_value(name)}")
        # The common case first, in a few C-level checks (a dict, known keys, a task name, real
        # booleans): this runs for every one of up to 100,000 entries.
        if type(entry) is not dict and not isinstance(entry, Mapping):
            self.report(job, f"an entry must be a dict with 'task' and 'schedule', got {python_value(entry)}")
            return None
        if not _BEAT_KEY_SET.issuperset(entry):
            self.unknown_keys(job, entry)
        get = entry.get
        task = get("task", _MISSING)
        if type(task) is not str or not task.strip():
            task = self.task(job, task)
        relative = get("relative", False)
        if type(relative) is not bool:
            relative = self.flag(job, "relative", relative, default=False)
        enabled = get("enabled", True)
        if type(enabled) is not bool:
            enabled = self.flag(job, "enabled", enabled, default=True)
        zone = get("timezone")
        if zone is not None:
            zone = self.zone(job, zone)
        schedule_data, schedule_zone = self.schedule(job, get("schedule", _MISSING), relative)
        if zone is not None and schedule_zone is not None and zone != schedule_zone:
            self.report(
                job,
                f"the schedule's own time zone {schedule_zone!r} disagrees with 'timezone' {zone!r}; "
                "give the zone in one place",
            )
        args = get("args")
        args = () if args is None else self.args(job, args)
        kwargs = get("kwargs")
        kwargs = {} if kwargs is None else self.string_keyed(job, "kwargs", kwargs)
        options = get("options")
        options = {} if options is None else self.options(job, options)
        tags = get("tags")
        tags = () if tags is None else self.tags(job, tags)
        if len(problems) != before or task is None or schedule_data is None:
            return None
        assert isinstance(name, str)  # a bad name was reported above
        # Positional: keywords would cost a named tuple twice as much, for every job.
        return JobDefinition(
            name,
            task,
            schedule_data,
            zone if zone is not None else schedule_zone,  # timezone
            args,
            kwargs,
            options,
            tags,
            enabled,
            self.source,
        )

    def field(self, job: str, key: str, value: object) -> dict[str, Any]:
        """One of the :data:`_RUNTIME_KEYS` checked (problems reported), under its definition
        field's name; a schedule's own zone comes as ``schedule_zone``."""
        if key == "task":
            return {"task": self.task(job, value)}
        if key == "schedule":
            data, zone = self.schedule(job, value, relative=False)
            return {"schedule_data": data, "schedule_zone": zone}
        if key == "timezone":
            return {"timezone": None if value is None else self.zone(job, value)}
        if key == "args":
            return {"args": () if value is None else self.args(job, value)}
        if key in ("kwargs", "options"):
            checked = {} if value is None else (self.options if key == "options" else self.kwargs)(job, value)
            return {key: checked}
        if key == "tags":
            return {"tags": () if value is None else self.tags(job, value)}
        return {"enabled": self.flag(job, "enabled", value, default=True)}

    def fields(self, name: object, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The given :data:`_RUNTIME_KEYS` of one job, checked (see :func:`read_entry_fields`)."""
        if not isinstance(name, str) or not name.strip():
            self.report(repr(name), f"a job name must be a non-empty string, got {python_value(name)}")
            return {}
        for key in fields:
            if key not in _RUNTIME_KEY_SET:
                self.report(name, unknown_key_message(str(key), _RUNTIME_KEYS, "a job", _BEAT_HINTS))
        values: dict[str, Any] = {}
        for key in _RUNTIME_KEYS:
            if key in fields:
                values.update(self.field(name, key, fields[key]))
        own_zone = values.pop("schedule_zone", None)
        if own_zone is not None:
            given = values.get("timezone")
            if given is None:
                values["timezone"] = own_zone
            elif given != own_zone:
                self.report(
                    name,
                    f"the schedule's own time zone {own_zone!r} disagrees with 'timezone' {given!r}; "
                    "give the zone in one place",
                )
        return values

    def kwargs(self, job: str, value: object) -> dict[str, Any]:
        return self.string_keyed(job, "kwargs", value)

    def unknown_keys(self, job: str, entry: Mapping[Any, Any]) -> None:
        for key in entry:
            if key not in _BEAT_KEY_SET:
                shown = key if isinstance(key, str) else repr(key)
                self.report(job, unknown_key_message(shown, _BEAT_KEYS, "the entry", _BEAT_HINTS))

    def task(self, job: str, task: object) -> str | None:
        if task is _MISSING:
            self.report(job, "missing 'task' (the registered name of the Celery task to send)")
            return None
        if not isinstance(task, str) or not task.strip():
            self.report(job, f"'task' must be a task name, got {python_value(task)}")
            return None
        return task

    def flag(self, job: str, key: str, value: object, *, default: bool) -> bool:
        if not isinstance(value, bool):
            self.report(job, f"{key!r} must be True or False, got {python_value(value)}")
            return default
        return value

    def zone(self, job: str, value: object) -> str | None:
        """The canonical name of a ``timezone`` that is not ``None``; ``None`` when it is bad (reported)."""
        if not isinstance(value, str | tzinfo):
            self.report(job, f"'timezone' must be an IANA zone name, got {python_value(value)}")
            return None
        try:
            return self.zone_name(value)
        except TimeZoneError as exc:
            self.report(job, f"bad time zone: {exc}")
            return None

    def zone_name(self, zone: str | tzinfo) -> str:
        """:func:`canonical_zone_name`, remembered per name or zone object; raises its TimeZoneError."""
        key = zone if type(zone) is str else id(zone)
        known = self.zones.get(key)
        if known is None:
            known = (zone, canonical_zone_name(zone))
            self.zones[key] = known
        return known[1]

    def schedule(self, job: str, value: object, relative: bool) -> tuple[dict[str, Any] | None, str | None]:
        """The schedule as data, and the zone a :class:`Timing` brought along (if any)."""
        if value is _MISSING:
            self.report(job, "missing 'schedule' (a timing string, crontab, timedelta or seconds)")
            return None, None
        if relative and not _honours_relative(value):
            self.report(
                job,
                "'relative' applies only to a number of seconds or a timedelta; "
                f"a {type(value).__name__} schedule has no use for it",
            )
        kind = type(value)
        key = (kind, value if kind in _ENCODED_BY_VALUE else id(value), relative)
        known = self.schedules.get(key)
        if known is not None:
            return known[1], known[2]
        try:
            data = schedule_to_data(value, relative=relative)
        except TimingError as exc:
            self.report(job, f"bad timing: {exc.reason}", excerpt=_expression_line(exc), excerpt_column=exc.column)
            return None, None
        except (ScheduleTypeError, ScheduleDataError) as exc:
            self.report(job, f"bad schedule: {exc}")
            return None, None
        own_zone = value.zone if isinstance(value, Timing) else None
        try:
            zone = None if own_zone is None else self.zone_name(own_zone)
        except TimeZoneError as exc:
            self.report(job, f"bad time zone in the schedule: {exc}")
            return None, None
        self.schedules[key] = (value, data, zone)
        return data, zone

    def args(self, job: str, value: object) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            self.report(job, f"'args' must be a list or tuple, got {python_value(value)}")
            return ()
        return tuple(value)

    def string_keyed(self, job: str, key: str, value: object) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.report(job, f"{key!r} must be a dict, got {python_value(value)}")
            return {}
        bad_keys = [k for k in value if not isinstance(k, str)]
        if bad_keys:
            self.report(job, f"the keys of {key!r} must be strings, got {python_value(bad_keys[0])}")
            return {}
        return dict(value)

    def options(self, job: str, value: object) -> dict[str, Any]:
        options = self.string_keyed(job, "options", value)
        for reserved in _RESERVED_OPTIONS:
            if reserved in options:
                self.report(job, f"'options' must not contain {reserved!r}; give it as the entry's {reserved!r}")
        return options

    def tags(self, job: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list | tuple | set | frozenset):
            self.report(job, f"'tags' must be a list of strings, got {python_value(value)}")
            return ()
        for tag in value:
            if not is_tag(tag):
                self.report(job, f"'tags' must be a list of non-empty strings, got {python_value(tag)}")
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
