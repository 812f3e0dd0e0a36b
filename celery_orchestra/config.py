"""From Celery settings and YAML schedule files to :class:`JobDefinition` values.

Jobs come from two places, merged by name: Celery's ``beat_schedule`` setting (so existing
projects work unchanged) and the YAML files named by ``orchestra_schedule_files`` (the format
pyorchestra users already have). Everything is checked before anything is stored: every problem in
every source is collected and raised together as one :class:`ConfigError`, each with the file,
line, column and job it belongs to, because fixing a schedule one error per restart is miserable
and a half-loaded configuration must never reach the store.

YAML is read with PyYAML's node composer rather than ``safe_load`` so that every value still knows
where it was written; only leaves (arguments, options) are turned into Python values.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Any, cast

import yaml
from celery.schedules import schedule as interval_schedule
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .codec import ScheduleDataError, ScheduleTypeError, schedule_to_data
from .definitions import JobDefinition
from .errors import OrchestraError, TimeZoneError, TimingError
from .schedule import Timing
from .zones import resolve_zone, zone_name

__all__ = [
    "BEAT_SCHEDULE_SOURCE",
    "SCHEDULE_FILES_SETTING",
    "ConfigError",
    "ConfigProblem",
    "definitions_from_beat_schedule",
    "definitions_from_yaml",
    "definitions_from_yaml_text",
    "load_definitions",
]

#: ``JobDefinition.source`` (and ``ConfigProblem.source``) of jobs from Celery's ``beat_schedule``.
BEAT_SCHEDULE_SOURCE = "beat_schedule"
#: The Celery setting that lists YAML schedule files.
SCHEDULE_FILES_SETTING = "orchestra_schedule_files"


# ---------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration, and where it is.

    ``line`` and ``column`` are 1-based positions in ``source`` (a file path, or
    ``"beat_schedule"``), ``None`` when the source has no lines. ``excerpt`` is the offending text
    (the file's line, or a timing expression) to print under the message with a caret at
    ``excerpt_column`` (default: ``column``).
    """

    source: str | None
    line: int | None
    column: int | None
    job: str | None
    message: str
    excerpt: str | None = None
    excerpt_column: int | None = None

    @property
    def location(self) -> str:
        """``path:line:column`` with whatever parts are known."""
        if self.source is None:
            return ""
        if self.line is None:
            return self.source
        if self.column is None:
            return f"{self.source}:{self.line}"
        return f"{self.source}:{self.line}:{self.column}"

    def format(self) -> str:
        """The message as a compiler would print it, with the offending line and a caret."""
        parts = [self.location, f"job {self.job!r}" if self.job is not None else "", self.message]
        text = ": ".join(part for part in parts if part)
        if self.excerpt is None:
            return text
        text += f"\n    {self.excerpt}"
        caret_column = self.excerpt_column if self.excerpt_column is not None else self.column
        if caret_column is not None and caret_column > 0:
            # Keep tabs so the caret lines up with what a terminal shows.
            lead = "".join("\t" if char == "\t" else " " for char in self.excerpt[: caret_column - 1])
            text += f"\n    {lead}^"
        return text

    def __str__(self) -> str:
        return self.format()


class ConfigError(OrchestraError, ValueError):
    """The configuration has problems; ``problems`` lists every one of them, in source order."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        body = "\n".join(problem.format() for problem in self.problems)
        super().__init__(f"{head} in the schedule configuration:\n{body}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConfigError, (self.problems,))


# ---------------------------------------------------------------------------- entry point


def load_definitions(app: Any) -> list[JobDefinition]:
    """Every job configured for ``app``: its ``beat_schedule`` plus its YAML schedule files.

    Raises :class:`ConfigError` listing every problem found in any source; on success the list
    holds each job once, ``beat_schedule`` jobs first, then each file's jobs in file order.
    """
    conf = app.conf
    definitions, problems = _collect_definitions(conf.get("beat_schedule"), conf.get(SCHEDULE_FILES_SETTING))
    if problems:
        raise ConfigError(problems)
    return definitions


def _collect_definitions(
    beat_schedule: object, schedule_files: object
) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    groups: list[list[JobDefinition]] = []
    problems: list[ConfigProblem] = []
    if beat_schedule is not None:
        # Any value is accepted here: definitions_from_beat_schedule reports a non-mapping itself.
        found, found_problems = definitions_from_beat_schedule(cast("Mapping[str, Any]", beat_schedule))
        groups.append(found)
        problems.extend(found_problems)
    paths, path_problems = _schedule_file_paths(schedule_files)
    problems.extend(path_problems)
    for path in paths:
        found, found_problems = definitions_from_yaml(path)
        groups.append(found)
        problems.extend(found_problems)
    merged, duplicate_problems = _merge_by_name(groups)
    return merged, problems + duplicate_problems


def _schedule_file_paths(setting: object) -> tuple[list[str], list[ConfigProblem]]:
    """The paths in the ``orchestra_schedule_files`` setting: one path, or a list of them."""
    if setting is None:
        return [], []
    problems: list[ConfigProblem] = []

    def report(message: str) -> None:
        problems.append(ConfigProblem(SCHEDULE_FILES_SETTING, None, None, None, message))

    items: list[object]
    if isinstance(setting, str | os.PathLike):
        items = [setting]
    elif isinstance(setting, list | tuple):
        items = list(setting)
    else:
        report(f"must be a path or a list of paths, got {_python_value(setting)}")
        return [], problems
    paths: list[str] = []
    seen: set[Path] = set()
    for item in items:
        if not isinstance(item, str | os.PathLike) or not os.fspath(item):
            report(f"each entry must be a file path, got {_python_value(item)}")
            continue
        path = os.path.expanduser(os.fspath(item))
        resolved = Path(path).resolve()
        if resolved in seen:
            report(f"{path!r} is listed more than once")
            continue
        seen.add(resolved)
        paths.append(path)
    return paths, problems


def _merge_by_name(groups: Iterable[list[JobDefinition]]) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    """Concatenate the groups, reporting each name that appears again at its second place."""
    merged: list[JobDefinition] = []
    first_source: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for group in groups:
        for definition in group:
            first = first_source.get(definition.name)
            if first is None:
                first_source[definition.name] = definition.source
                merged.append(definition)
                continue
            source, line = _split_source(definition.source)
            problems.append(
                ConfigProblem(
                    source,
                    line,
                    None,
                    definition.name,
                    f"job name defined twice: here and at {first} (job names must be unique)",
                )
            )
    return merged, problems


def _split_source(source: str) -> tuple[str, int | None]:
    """``"path:12"`` → ``("path", 12)``; ``"beat_schedule"`` → ``("beat_schedule", None)``."""
    path, _, line = source.rpartition(":")
    if path and line.isdigit():
        return path, int(line)
    return source, None


# ---------------------------------------------------------------------------- shared checks


def _python_value(value: object) -> str:
    """``str ('cpu')``: the type first, because that is usually what is wrong."""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{type(value).__name__} ({shown})"


def _canonical_zone_name(value: str | tzinfo) -> str:
    """The IANA name to store for a zone given by name or object; TimeZoneError if it has none."""
    name = zone_name(resolve_zone(value))
    try:
        resolve_zone(name)
    except TimeZoneError:
        raise TimeZoneError(f"the time zone {name!r} has no IANA name; use a name like 'Europe/Berlin'") from None
    return name


def _unknown_key_message(key: str, allowed: Sequence[str], where: str, hints: Mapping[str, str]) -> str:
    message = f"unknown key {key!r} in {where}"
    hint = hints.get(key)
    if hint is None:
        close = difflib.get_close_matches(key, allowed, n=2, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}?" if close else None
    if hint is None:
        hint = f"expected one of: {', '.join(allowed)}"
    return f"{message}; {hint}"


# ---------------------------------------------------------------------------- beat_schedule

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
    string or a :class:`~celery_orchestra.schedule.Timing`.
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
                f"must be a dict of job name to entry, got {_python_value(schedule)}",
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
            self.report(f"a job name must be a non-empty string, got {_python_value(name)}")
        entry = self.entry
        if not isinstance(entry, Mapping):
            self.report(f"an entry must be a dict with 'task' and 'schedule', got {_python_value(entry)}")
            return None
        for key in entry:
            if key not in _BEAT_KEYS:
                shown = key if isinstance(key, str) else repr(key)
                self.report(_unknown_key_message(shown, _BEAT_KEYS, "the entry", _BEAT_HINTS))
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
            self.report(f"'task' must be a task name, got {_python_value(task)}")
            return None
        return task

    def flag(self, entry: Mapping[Any, Any], key: str, *, default: bool) -> bool:
        value = entry.get(key, default)
        if not isinstance(value, bool):
            self.report(f"{key!r} must be True or False, got {_python_value(value)}")
            return default
        return value

    def zone(self, entry: Mapping[Any, Any]) -> str | None:
        value = entry.get("timezone")
        if value is None:
            return None
        if not isinstance(value, str | tzinfo):
            self.report(f"'timezone' must be an IANA zone name, got {_python_value(value)}")
            return None
        try:
            return _canonical_zone_name(value)
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
            return data, _canonical_zone_name(own_zone)
        except TimeZoneError as exc:
            self.report(f"bad time zone in the schedule: {exc}")
            return None, None

    def args(self, entry: Mapping[Any, Any]) -> tuple[Any, ...]:
        value = entry.get("args", ())
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.report(f"'args' must be a list or tuple, got {_python_value(value)}")
            return ()
        return tuple(value)

    def string_keyed(self, entry: Mapping[Any, Any], key: str) -> dict[str, Any]:
        value = entry.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.report(f"{key!r} must be a dict, got {_python_value(value)}")
            return {}
        bad_keys = [k for k in value if not isinstance(k, str)]
        if bad_keys:
            self.report(f"the keys of {key!r} must be strings, got {_python_value(bad_keys[0])}")
            return {}
        return dict(value)

    def tags(self, entry: Mapping[Any, Any]) -> tuple[str, ...]:
        value = entry.get("tags")
        if value is None:
            return ()
        if not isinstance(value, list | tuple | set | frozenset):
            self.report(f"'tags' must be a list of strings, got {_python_value(value)}")
            return ()
        for tag in value:
            if not isinstance(tag, str) or not tag.strip():
                self.report(f"'tags' must be a list of non-empty strings, got {_python_value(tag)}")
                return ()
        # A set has no order of its own; sorting keeps the stored value stable between runs.
        tags = sorted(value) if isinstance(value, set | frozenset) else list(value)
        return tuple(dict.fromkeys(tags))


def _honours_relative(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float | timedelta):
        return True
    return isinstance(value, interval_schedule) and bool(value.relative)


def _expression_line(error: TimingError) -> str:
    lines = error.expression.splitlines() or [""]
    return lines[error.line - 1] if 0 < error.line <= len(lines) else lines[-1]


# ---------------------------------------------------------------------------- YAML

_STR_TAG = "tag:yaml.org,2002:str"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"

_BLOCK_KEYS = ("name", "module", "schedules")
_JOB_KEYS = ("name", "task", "enabled", "schedule", "additional_options", "tags", "args", "kwargs")
_TIMING_KEYS = ("timing", "timezone")
_JOB_HINTS = {
    "options": "did you mean 'additional_options'?",
    "timing": "put it under 'schedule:' as 'schedule: {timing: ...}'",
    "timezone": "put it under 'schedule:' next to 'timing'",
    "module": "'module' belongs to the block, next to 'schedules'",
}
_TIMING_HINTS = {
    "resume_from_previous": "remove it: celery-orchestra always resumes every job from its store",
    "tz": "did you mean 'timezone'?",
}
_BLOCK_HINTS = {
    "task": "jobs go in the block's 'schedules' list",
    "schedule": "jobs go in the block's 'schedules' list",
}

_NodeItems = dict[str, tuple[ScalarNode, Node]]


def definitions_from_yaml(path: str | os.PathLike[str]) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    """The jobs in one YAML schedule file, and every problem found in it.

    A relative ``path`` is relative to the current working directory. A file that cannot be read
    is a problem like any other, so that the other sources are still checked.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        where = f" (looked for {Path(source).resolve()})" if not os.path.isabs(source) else ""
        message = f"schedule file not found{where}"
        return [], [ConfigProblem(source, None, None, None, message)]
    except UnicodeDecodeError as exc:
        message = f"schedule file is not UTF-8 text (byte {exc.start}: {exc.reason})"
        return [], [ConfigProblem(source, None, None, None, message)]
    except OSError as exc:
        message = f"cannot read schedule file: {exc.strerror or exc}"
        return [], [ConfigProblem(source, None, None, None, message)]
    return definitions_from_yaml_text(text, source)


def definitions_from_yaml_text(text: str, source: str) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    """Like :func:`definitions_from_yaml`, for text already in hand; ``source`` names it in messages."""
    unreadable = _unreadable_character(text, source)
    if unreadable is not None:
        return [], [unreadable]
    reader = _YamlScheduleReader(text, source)
    reader.read()
    # Checks run key by key, not line by line; report in the order a reader of the file meets them.
    problems = sorted(reader.problems, key=lambda problem: (problem.line or 0, problem.column or 0))
    return reader.definitions, problems


def _unreadable_character(text: str, source: str) -> ConfigProblem | None:
    """A problem for the first character YAML refuses outright (control characters), if any.

    PyYAML checks this when the loader is created, before it tracks lines, so the position is
    worked out here.
    """
    found = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if found is None:
        return None
    index = found.start()
    line_start = text.rfind("\n", 0, index) + 1
    line_end = text.find("\n", index)
    excerpt = text[line_start : line_end if line_end >= 0 else len(text)]
    message = f"invalid YAML: the character U+{ord(found.group()):04X} is not allowed in a YAML file"
    return ConfigProblem(source, text.count("\n", 0, index) + 1, index - line_start + 1, None, message, excerpt)


def _describe_node(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    value = str(node.value)
    kinds = {
        _STR_TAG: f"the text {value!r}",
        _NULL_TAG: "nothing",
        _BOOL_TAG: f"{value} (a boolean)",
        "tag:yaml.org,2002:int": f"the number {value}",
        "tag:yaml.org,2002:float": f"the number {value}",
        "tag:yaml.org,2002:timestamp": f"the date {value}",
    }
    return kinds.get(node.tag, f"{value} ({node.tag.rpartition(':')[2]})")


def _peek_name(node: Node) -> str | None:
    """The job's name, if it has a plain one, so problems found before it is checked can name the job."""
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if key_node.tag == _STR_TAG and key_node.value == "name" and value_node.tag == _STR_TAG:
            return str(value_node.value) or None
    return None


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


class _YamlScheduleReader:
    """Walks the composed YAML of one schedule file, collecting definitions and problems."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.loader = yaml.SafeLoader(text)
        self.definitions: list[JobDefinition] = []
        self.problems: list[ConfigProblem] = []
        # Where each name was first defined in this file, for the duplicate-name message.
        self.first_place: dict[str, str] = {}
        # Mappings already read, by node: an aliased mapping is flattened once and read alike.
        self.mapping_cache: dict[int, _NodeItems | None] = {}

    # -- reporting

    def report_at(
        self, mark: Mark, job: str | None, message: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        """Record a problem at ``mark`` (or at an explicit 1-based ``line``/``column``)."""
        line_number = line if line is not None else mark.line + 1
        column_number = column if column is not None else mark.column + 1
        excerpt = self.lines[line_number - 1] if 0 < line_number <= len(self.lines) else None
        self.problems.append(ConfigProblem(self.source, line_number, column_number, job, message, excerpt))

    def report(self, node: Node, job: str | None, message: str) -> None:
        self.report_at(node.start_mark, job, message)

    # -- the document

    def read(self) -> None:
        try:
            try:
                root = self.loader.get_single_node()
            except yaml.MarkedYAMLError as exc:
                self.report_yaml_error(exc)
                return
            except yaml.YAMLError as exc:
                self.problems.append(ConfigProblem(self.source, None, None, None, f"invalid YAML: {exc}"))
                return
            if root is None or _is_null(root):
                return
            if not isinstance(root, SequenceNode):
                self.report(
                    root,
                    None,
                    f"a schedule file must be a list of blocks (each with 'schedules'), got {_describe_node(root)}",
                )
                return
            for index, block in enumerate(root.value):
                self.read_block(block, index + 1)
        finally:
            self.loader.dispose()

    def report_yaml_error(self, exc: yaml.MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "malformed document"
        message = f"invalid YAML: {problem}"
        if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            context = f"{exc.context} (line {exc.context_mark.line + 1})"
            # PyYAML phrases some errors as context + problem ("expected X", "but found Y").
            if problem.startswith("but "):
                message = f"invalid YAML: {context}, {problem}"
            else:
                message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        if mark is None:
            self.problems.append(ConfigProblem(self.source, None, None, None, message))
            return
        self.report_at(mark, None, message)

    # -- structure

    def mapping(self, node: Node, what: str, job: str | None) -> _NodeItems | None:
        """The string-keyed entries of a mapping node, after ``<<`` merges; None if it is none.

        Duplicate keys are reported (YAML loaders silently keep the last one, which hides typos
        in copied blocks); keys brought in by a ``<<`` merge may be overridden, as YAML intends.
        """
        if id(node) in self.mapping_cache:
            return self.mapping_cache[id(node)]
        if not isinstance(node, MappingNode):
            self.report(node, job, f"{what} must be a mapping, got {_describe_node(node)}")
            return None
        seen: dict[str, ScalarNode] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                self.report(key_node, job, f"keys in {what} must be text, got {_describe_node(key_node)}")
                continue
            first = seen.get(key_node.value)
            if first is not None:
                self.report(
                    key_node,
                    job,
                    f"duplicate key {key_node.value!r} in {what} (first given on line {first.start_mark.line + 1})",
                )
            seen[key_node.value] = key_node
        try:
            self.loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            self.report_yaml_error(exc)
            self.mapping_cache[id(node)] = None
            return None
        items: _NodeItems = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _STR_TAG:
                items[key_node.value] = (key_node, value_node)
        self.mapping_cache[id(node)] = items
        return items

    def check_keys(
        self, items: _NodeItems, allowed: Sequence[str], where: str, job: str | None, hints: Mapping[str, str]
    ) -> None:
        for key, (key_node, _) in items.items():
            if key not in allowed:
                self.report(key_node, job, _unknown_key_message(key, allowed, where, hints))

    def optional(self, items: _NodeItems, key: str) -> Node | None:
        """The value node for ``key``; an empty value (``key:`` with nothing after it) counts as absent."""
        entry = items.get(key)
        if entry is None or _is_null(entry[1]):
            return None
        return entry[1]

    # -- scalars

    def text(self, node: Node, what: str, job: str | None) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag != _STR_TAG:
            self.report(node, job, f"{what} must be text, got {_describe_node(node)}")
            return None
        value = str(node.value)
        if not value.strip():
            self.report(node, job, f"{what} must not be empty")
            return None
        return value

    def flag(self, node: Node, what: str, job: str | None) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL_TAG:
            self.report(node, job, f"{what} must be true or false, got {_describe_node(node)}")
            return None
        return bool(self.loader.construct_object(node))

    def value(self, node: Node, what: str, job: str | None) -> tuple[bool, Any]:
        """The Python value of a subtree (task arguments, options); ``(False, None)`` if unusable."""
        try:
            # The loader caches values by node, so jobs sharing a node via an alias or a `<<` merge
            # would share one mutable list or dict; each job gets its own copy.
            return True, copy.deepcopy(self.loader.construct_object(node, deep=True))
        except yaml.MarkedYAMLError as exc:
            self.report_yaml_error(exc)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            self.report(node, job, f"{what} cannot be read: {exc}")
        return False, None

    # -- blocks and jobs

    def read_block(self, node: Node, number: int) -> None:
        items = self.mapping(node, f"schedule block {number}", None)
        if items is None:
            return
        self.check_keys(items, _BLOCK_KEYS, f"schedule block {number}", None, _BLOCK_HINTS)
        block_ok = True
        name_node = self.optional(items, "name")
        if name_node is not None and self.text(name_node, "the block's 'name'", None) is None:
            block_ok = False
        module: str | None = None
        module_node = self.optional(items, "module")
        if module_node is not None:
            module = self.text(module_node, "the block's 'module'", None)
            block_ok = block_ok and module is not None
        if "schedules" not in items:
            self.report(node, None, f"schedule block {number} has no 'schedules' list")
            return
        schedules_node = items["schedules"][1]
        if not isinstance(schedules_node, SequenceNode):
            self.report(
                schedules_node, None, f"'schedules' must be a list of jobs, got {_describe_node(schedules_node)}"
            )
            return
        for job_node in schedules_node.value:
            self.read_job(job_node, module, block_ok)

    def read_job(self, node: Node, module: str | None, block_ok: bool) -> None:
        before = len(self.problems)
        items = self.mapping(node, "a job", _peek_name(node))
        if items is None:
            return
        name: str | None = None
        name_node = self.optional(items, "name")
        if name_node is None:
            self.report(node, None, "the job has no 'name' (every job needs a unique name)")
        else:
            name = self.text(name_node, "'name'", None)
        job = name
        self.check_keys(items, _JOB_KEYS, "the job", job, _JOB_HINTS)

        task: str | None = None
        task_node = self.optional(items, "task")
        if task_node is None:
            self.report(node, job, "the job has no 'task' (the task function's name)")
        else:
            task = self.text(task_node, "'task'", job)

        enabled: bool | None = True
        enabled_node = self.optional(items, "enabled")
        if enabled_node is not None:
            enabled = self.flag(enabled_node, "'enabled'", job)

        schedule_data: dict[str, Any] | None = None
        zone: str | None = None
        schedule_node = self.optional(items, "schedule")
        if schedule_node is None:
            self.report(node, job, "the job has no 'schedule' (a mapping with 'timing')")
        else:
            schedule_data, zone = self.read_schedule(schedule_node, job)

        tags = self.read_tags(items, job)
        args = self.read_args(items, "args", job)
        kwargs = self.read_string_keyed(items, "kwargs", job)
        options = self.read_options(items, job)
        if options is not None and args is not None and kwargs is not None:
            # pyorchestra passed arguments through additional_options; honour that spelling.
            args, kwargs = self.lift_arguments(items, options, args, kwargs, job)

        if name is not None and name_node is not None:
            first = self.first_place.get(name)
            if first is not None:
                self.report(name_node, job, f"job name defined twice: here and at {first} (names must be unique)")
                return
            self.first_place[name] = f"{self.source}:{node.start_mark.line + 1}"

        if len(self.problems) != before or not block_ok:
            return
        assert name is not None and task is not None and schedule_data is not None and enabled is not None
        assert tags is not None and args is not None and kwargs is not None and options is not None
        self.definitions.append(
            JobDefinition(
                name=name,
                task=f"{module}.{task}" if module else task,
                schedule_data=schedule_data,
                timezone=zone,
                args=args,
                kwargs=kwargs,
                options=options,
                tags=tags,
                enabled=enabled,
                source=f"{self.source}:{node.start_mark.line + 1}",
            )
        )

    def read_schedule(self, node: Node, job: str | None) -> tuple[dict[str, Any] | None, str | None]:
        items = self.mapping(node, "'schedule'", job)
        if items is None:
            return None, None
        self.check_keys(items, _TIMING_KEYS, "'schedule'", job, _TIMING_HINTS)
        zone: str | None = None
        zone_node = self.optional(items, "timezone")
        if zone_node is not None:
            zone_text = self.text(zone_node, "'timezone'", job)
            if zone_text is not None:
                try:
                    zone = _canonical_zone_name(zone_text)
                except TimeZoneError as exc:
                    self.report(zone_node, job, f"bad time zone: {exc}")
        timing_node = self.optional(items, "timing")
        if timing_node is None:
            self.report(node, job, "'schedule' has no 'timing' (e.g. timing: \"every day at 09:00\")")
            return None, zone
        if not isinstance(timing_node, ScalarNode):
            self.report(timing_node, job, f"'timing' must be text, got {_describe_node(timing_node)}")
            return None, zone
        # The text as written: YAML 1.1 reads an unquoted 11:23:00 as the base-60 number 40980,
        # but the user plainly wrote a time.
        expression = str(timing_node.value)
        try:
            return schedule_to_data(expression), zone
        except TimingError as exc:
            line, column = self.position_in_scalar(timing_node, exc)
            self.report_at(timing_node.start_mark, job, f"bad timing: {exc.reason}", line=line, column=column)
            return None, zone

    def position_in_scalar(self, node: ScalarNode, error: TimingError) -> tuple[int, int]:
        """The 1-based file position of the character a TimingError points at inside a scalar.

        Exact for a one-line plain or quoted scalar that reads as written (no escapes), and for a
        literal block (``|``), whose lines are the file's lines minus their indentation; anywhere
        else, the scalar's start, which is still the right place to look.
        """
        start = node.start_mark
        if node.style in (None, "", '"', "'") and error.line == 1 and start.line == node.end_mark.line:
            begin = start.column + (1 if node.style in ('"', "'") else 0)
            if self.line_text(start.line)[begin : begin + len(node.value)] == node.value:
                return start.line + 1, begin + error.column
        if node.style == "|":
            index = start.line + error.line  # the block's text starts on the line after the '|'
            written = self.line_text(index)
            indent = len(written) - len(written.lstrip(" "))
            expression_lines = node.value.splitlines()
            if 0 < error.line <= len(expression_lines) and written[indent:] == expression_lines[error.line - 1]:
                return index + 1, indent + error.column
        return start.line + 1, start.column + 1

    def line_text(self, index: int) -> str:
        return self.lines[index] if 0 <= index < len(self.lines) else ""

    def read_tags(self, items: _NodeItems, job: str | None) -> tuple[str, ...] | None:
        node = self.optional(items, "tags")
        if node is None:
            return ()
        if not isinstance(node, SequenceNode):
            self.report(node, job, f"'tags' must be a list of text, got {_describe_node(node)}")
            return None
        tags: list[str] = []
        for tag_node in node.value:
            tag = self.text(tag_node, "each tag", job)
            if tag is None:
                return None
            tags.append(tag)
        return tuple(dict.fromkeys(tags))

    def read_args(self, items: _NodeItems, key: str, job: str | None) -> tuple[Any, ...] | None:
        node = self.optional(items, key)
        if node is None:
            return ()
        if not isinstance(node, SequenceNode):
            self.report(node, job, f"{key!r} must be a list, got {_describe_node(node)}")
            return None
        ok, value = self.value(node, repr(key), job)
        return tuple(value) if ok else None

    def read_string_keyed(self, items: _NodeItems, key: str, job: str | None) -> dict[str, Any] | None:
        node = self.optional(items, key)
        if node is None:
            return {}
        return self.string_keyed(node, repr(key), job)

    def string_keyed(self, node: Node, what: str, job: str | None) -> dict[str, Any] | None:
        before = len(self.problems)
        entries = self.mapping(node, what, job)
        if entries is None:
            return None
        result: dict[str, Any] = {}
        for key, (_, value_node) in entries.items():
            ok, value = self.value(value_node, f"{what}[{key!r}]", job)
            if not ok:
                return None
            result[key] = value
        # mapping() reports keys that are not text and leaves them out; a partial dict would lie.
        return result if len(self.problems) == before else None

    def read_options(self, items: _NodeItems, job: str | None) -> dict[str, Any] | None:
        node = self.optional(items, "additional_options")
        if node is None:
            return {}
        return self.string_keyed(node, "'additional_options'", job)

    def lift_arguments(
        self,
        items: _NodeItems,
        options: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        job: str | None,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Move ``args``/``kwargs`` given in ``additional_options`` to the job's own fields.

        pyorchestra splatted ``additional_options`` into ``apply_async``, so that was the only
        place for task arguments; the scheduler passes them separately, where a second copy in
        the options would collide.
        """
        if "args" not in options and "kwargs" not in options:
            return args, kwargs
        options_node = items["additional_options"][1]
        option_nodes = self.mapping(options_node, "'additional_options'", job) or {}
        for key in ("args", "kwargs"):
            if key not in options:
                continue
            key_node, value_node = option_nodes[key]
            value = options.pop(key)
            if self.optional(items, key) is not None:
                self.report(key_node, job, f"{key!r} is given both in the job and in 'additional_options'")
            elif key == "args":
                if isinstance(value, list):
                    args = tuple(value)
                else:
                    self.report(value_node, job, f"'args' must be a list, got {_describe_node(value_node)}")
            elif isinstance(value, dict) and all(isinstance(k, str) for k in value):
                kwargs = value
            else:
                self.report(value_node, job, f"'kwargs' must be a mapping, got {_describe_node(value_node)}")
        return args, kwargs
