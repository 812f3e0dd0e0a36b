"""Reading YAML schedule files, in the predecessor's format, into job definitions.

YAML is read with PyYAML's node composer rather than ``safe_load`` so that every value still knows
where it was written; only leaves (arguments, options) are turned into Python values. Every
problem is reported with its file, line, column (a caret under it) and job. The limits on a
file's size, nesting and alias expansion (README "Limits") are checked here, with
:mod:`.yaml_loader`, before anything is built.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import EXCERPT_LIMIT, ConfigProblem, TimeZoneError, TimingError, quoted, shortened
from .codec import schedule_to_data
from .definitions import JobDefinition
from .fields import canonical_zone_name, unique_tags, unknown_key_message
from .yaml_loader import MAX_DEPTH, MAX_NODES, MAX_PARSE_DEPTH, TOO_DEEP_TAG, NodeMeter, ScheduleLoader

__all__ = ["MAX_SCHEDULE_FILE_BYTES", "definitions_from_yaml", "definitions_from_yaml_text"]

#: The largest schedule file read (10 MiB): far more than any hand-written schedule, and checked in
#: seconds, not minutes.
MAX_SCHEDULE_FILE_BYTES = 10 * 1024 * 1024

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
        refusal = _unreadable_file(source)
        if refusal is not None:
            return [], [ConfigProblem(source, None, None, None, refusal)]
        # Text mode, as Path.read_text: universal newlines. Reading one character past the limit
        # catches a file that grew since it was looked at.
        with open(source, encoding="utf-8") as file:
            text = file.read(MAX_SCHEDULE_FILE_BYTES + 1)
        if len(text) > MAX_SCHEDULE_FILE_BYTES:
            return [], [ConfigProblem(source, None, None, None, _too_large_message())]
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


def _unreadable_file(source: str) -> str | None:
    """Why ``source`` is not read at all: not a regular file (a device, a pipe...), or too large."""
    status = os.stat(source)
    if stat.S_ISDIR(status.st_mode):
        return "cannot read schedule file: it is a directory"
    if not stat.S_ISREG(status.st_mode):
        return "schedule file is not a regular file (a device, pipe or socket is never read)"
    if status.st_size > MAX_SCHEDULE_FILE_BYTES:
        return _too_large_message(status.st_size)
    return None


def _too_large_message(size: int | None = None) -> str:
    found = f" ({size:,} bytes)" if size is not None else ""
    return f"schedule file is too large{found}: at most {MAX_SCHEDULE_FILE_BYTES:,} bytes (10 MiB)"


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
    if node.tag == TOO_DEEP_TAG:
        return f"lists or mappings nested more than {MAX_DEPTH} levels deep"
    value = shortened(str(node.value))
    kinds = {
        _STR_TAG: f"the text {quoted(str(node.value))}",
        _NULL_TAG: "nothing",
        _BOOL_TAG: f"{value} (a boolean)",
        "tag:yaml.org,2002:int": f"the number {value}",
        "tag:yaml.org,2002:float": f"the number {value}",
        "tag:yaml.org,2002:timestamp": f"the date {value}",
    }
    return kinds.get(node.tag, f"{value} ({shortened(node.tag.rpartition(':')[2])})")


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


class _YamlNodes:
    """One YAML document's nodes, read with their positions: every problem is reported where it is."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.loader = ScheduleLoader(text)
        self.meter = NodeMeter()
        #: Nodes read so far, every use of an alias counted again; reading stops past MAX_NODES.
        self.nodes_read = 0
        self.problems: list[ConfigProblem] = []
        # Mappings already read, by node: an aliased mapping is flattened once and read alike.
        self.mapping_cache: dict[int, _NodeItems | None] = {}

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

    def within_node_limit(self, node: Node, job: str | None) -> bool:
        """Count a job's nodes against the file's MAX_NODES; False (reported) for a job that is too large.

        A job too large on its own is left out and the others are still read; once the jobs read
        add up to more than MAX_NODES, that is reported once and no further job is read.
        """
        if self.nodes_read > MAX_NODES:
            return False
        size, _ = self.meter.measure(node)
        if size > MAX_NODES:
            self.report_too_many_nodes(node, job)
            return False
        self.nodes_read += size
        if self.nodes_read > MAX_NODES:
            self.report(node, job, f"the file has more than {MAX_NODES:,} YAML nodes by this job; split it into files")
            return False
        return True

    def report_too_many_nodes(self, node: Node, job: str | None) -> None:
        """Report a job of more than MAX_NODES nodes at the key of its largest value."""
        what = "the job"
        where = node
        if isinstance(node, MappingNode) and node.value:
            key_node, value_node = max(node.value, key=lambda item: self.meter.measure(item[1])[0])
            if self.meter.measure(value_node)[0] > MAX_NODES and isinstance(key_node, ScalarNode):
                what, where = quoted(key_node.value), key_node
        self.report(
            where,
            job,
            f"{what} expands to more than {MAX_NODES:,} YAML nodes (each use of an alias counts what it names "
            "again, and an alias inside what it names never ends)",
        )

    def report_yaml_error(self, exc: yaml.MarkedYAMLError, job: str | None = None) -> None:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "malformed document"
        message = f"invalid YAML: {problem}"
        if problem.startswith("exceeded maximum nesting depth"):
            # libyaml 0.2.5+ stops deep nesting itself, before our composer counts it: one wording.
            message = f"invalid YAML: lists and mappings nested more than {MAX_PARSE_DEPTH} levels deep"
        elif exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            context = f"{exc.context} (line {exc.context_mark.line + 1})"
            # PyYAML phrases some errors as context + problem ("expected X", "but found Y").
            if problem.startswith("but "):
                message = f"invalid YAML: {context}, {problem}"
            else:
                message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        if mark is None:
            self.problems.append(ConfigProblem(self.source, None, None, job, message))
            return
        self.report_at(mark, job, message)

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
                    f"duplicate key {quoted(key_node.value)} in {what} "
                    f"(first given on line {first.start_mark.line + 1})",
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
                self.report(key_node, job, unknown_key_message(key, allowed, where, hints))

    def optional(self, items: _NodeItems, key: str) -> Node | None:
        """The value node for ``key``; an empty value (``key:`` with nothing after it) counts as absent."""
        entry = items.get(key)
        if entry is None or _is_null(entry[1]):
            return None
        return entry[1]

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
        _, depth = self.meter.measure(node)
        if depth > MAX_DEPTH:
            too_deep = self.meter.deepest(node, MAX_DEPTH + 1)
            self.report(
                too_deep,
                job,
                f"{what} is nested too deeply: at most {MAX_DEPTH} levels of lists and mappings inside each other",
            )
            return False, None
        try:
            # The loader caches values by node, so jobs sharing a node via an alias or a `<<` merge
            # would share one mutable list or dict; each job gets its own copy.
            return True, copy.deepcopy(self.loader.construct_object(node, deep=True))
        except yaml.MarkedYAMLError as exc:
            self.report_yaml_error(exc, job)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            self.report(node, job, f"{what} cannot be read: {shortened(str(exc), EXCERPT_LIMIT)}")
        return False, None

    def string_keyed(self, node: Node, what: str, job: str | None) -> dict[str, Any] | None:
        before = len(self.problems)
        entries = self.mapping(node, what, job)
        if entries is None:
            return None
        result: dict[str, Any] = {}
        for key, (_, value_node) in entries.items():
            ok, value = self.value(value_node, f"{what}[{quoted(key)}]", job)
            if not ok:
                return None
            result[key] = value
        # mapping() reports keys that are not text and leaves them out; a partial dict would lie.
        return result if len(self.problems) == before else None

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


class _YamlScheduleReader(_YamlNodes):
    """Walks the composed YAML of one schedule file, collecting definitions and problems."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text, source)
        self.definitions: list[JobDefinition] = []
        # Where each name was first defined in this file, for the duplicate-name message.
        self.first_place: dict[str, str] = {}

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

    def read_block(self, node: Node, number: int) -> None:
        self.nodes_read += 1  # its jobs are counted as they are read; a list of a million blocks is not
        if self.nodes_read > MAX_NODES:
            return
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
            if self.within_node_limit(job_node, _peek_name(job_node)):
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

        enabled_node = self.optional(items, "enabled")
        enabled = True if enabled_node is None else self.flag(enabled_node, "'enabled'", job)

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

        if name is not None and name_node is not None and not self.first_definition(name, name_node, node):
            return
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

    def first_definition(self, name: str, name_node: Node, job_node: Node) -> bool:
        """Note where job ``name`` is defined; False (reported) when this file defined it before."""
        first = self.first_place.get(name)
        if first is not None:
            self.report(name_node, name, f"job name defined twice: here and at {first} (names must be unique)")
            return False
        self.first_place[name] = f"{self.source}:{job_node.start_mark.line + 1}"
        return True

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
                    zone = canonical_zone_name(zone_text)
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
        return unique_tags(tags)

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
