"""What a read job must be before the store takes it: the rules ``celery orchestra check`` and beat share.

The readers (:mod:`.beat_schedule`, :mod:`.yaml_files`) check each source's own shape; this module
checks what every job must be whatever its source: names and task names that fit the store's
columns, arguments and options that can be stored as JSON, and options that ``apply_async`` will
accept on every send. Both ``celery orchestra check`` and beat's start-up run
:func:`definition_problems` (through :func:`~.config.collect_definitions`) before the store is
touched, so "check OK" means beat starts; the store keeps its own guard
(:mod:`celery_orchestra.store.wanted`) with the same limit and the same JSON encoder, for jobs
given to it directly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, Final

from kombu.compression import get_encoder
from kombu.serialization import registry as serializers

from ..errors import ConfigProblem
from ..settings import DEFAULT_MIN_INTERVAL, MIN_INTERVAL_SETTING, python_value
from ..timing.model import Interval
from ..timing.parser import parse_expression
from .definitions import JobDefinition
from .fields import unknown_key_message

__all__ = [
    "JSON_ENCODER",
    "MAX_NESTING",
    "NAME_LENGTH",
    "OPTION_KEYS",
    "definition_problems",
    "job_problems",
    "split_source",
]

#: Longest job name and task name the store keeps (its columns are this wide).
NAME_LENGTH: Final = 255
#: Characters a job's name or task may not hold: NUL, line breaks, tabs and the other C0 controls, DEL.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
#: Deepest nesting of lists and mappings in a job's arguments and options: JSON encoders recurse.
MAX_NESTING: Final = 100
#: How every job's JSON columns are written: keys sorted (reordering a dict is no change), no NaN.
#: Built once: ``json.dumps`` with options builds an encoder per call.
JSON_ENCODER: Final = json.JSONEncoder(sort_keys=True, allow_nan=False)

_NUMBER_OPTIONS: Final = ("countdown", "time_limit", "soft_time_limit", "timeout", "confirm_timeout")
_TEXT_OPTIONS: Final = ("queue", "exchange", "exchange_type", "routing_key", "shadow", "reply_to")
_FLAG_OPTIONS: Final = ("retry", "ignore_result", "mandatory", "immediate")
_RETRY_POLICY_KEYS: Final = ("max_retries", "interval_start", "interval_step", "interval_max")
#: The ``apply_async`` options a job may give (values that JSON can hold), in the order listed to users.
OPTION_KEYS: Final = (
    *_TEXT_OPTIONS,
    "priority",
    "expires",
    *_NUMBER_OPTIONS,
    "serializer",
    "compression",
    "headers",
    *_FLAG_OPTIONS,
    "retry_policy",
    "delivery_mode",
)
#: ``apply_async`` parameters beat gives itself (or that name live objects): never a job's option.
_RESERVED_HINTS: Final = {
    "task_id": "beat gives every run its own task id (see the run ledger); remove it",
    "producer": "beat publishes through its own producer; remove it",
    "publisher": "beat publishes through its own producer; remove it",
    "connection": "beat uses the app's broker connection; set broker_url instead",
    "args": "give it as the job's 'args'",
    "kwargs": "give it as the job's 'kwargs'",
    "eta": "beat decides when a job runs; use 'countdown' (seconds) to delay each run",
    "link": "callbacks are not stored; chain them in the task",
    "link_error": "callbacks are not stored; chain them in the task",
    "router": "routers are configured with task_routes",
}
_DELIVERY_MODES: Final = (1, 2, "transient", "persistent")


def split_source(source: str) -> tuple[str, int | None]:
    """``"path:12"`` → ``("path", 12)``; ``"beat_schedule"`` → ``("beat_schedule", None)``."""
    path, _, line = source.rpartition(":")
    if path and line.isdigit():
        return path, int(line)
    return source, None


def definition_problems(
    definitions: Sequence[JobDefinition], *, min_interval: float = DEFAULT_MIN_INTERVAL
) -> list[ConfigProblem]:
    """Every problem of every job in ``definitions``, each at the job's place (file and line, or
    ``beat_schedule`` and the job's name); a job repeating more often than ``min_interval``
    seconds is one (``orchestra_min_interval``: a flood of messages).

    Jobs usually share their arguments and options (often the very same objects): each distinct
    object is checked once.
    """
    problems: list[ConfigProblem] = []
    known: dict[tuple[int, str], list[str]] = {}  # by the id of a value the definitions keep alive meanwhile
    for definition in definitions:
        every = _repeat_seconds(definition.schedule_data)
        if (
            (every is None or every >= min_interval)
            and not definition.args
            and not definition.kwargs
            and not definition.options
            and len(definition.name) <= NAME_LENGTH
            and len(definition.task) <= NAME_LENGTH
            and (definition.name.isprintable() or not _CONTROL.search(definition.name))
            and (definition.task.isprintable() or not _CONTROL.search(definition.task))
        ):
            continue  # the usual job: nothing to look at more closely
        messages = job_problems(definition, known, min_interval=min_interval)
        if messages:
            source, line = split_source(definition.source)
            problems.extend(ConfigProblem(source, line, None, definition.name, message) for message in messages)
    return problems


def job_problems(
    definition: JobDefinition,
    known: dict[tuple[int, str], list[str]] | None = None,
    *,
    min_interval: float = DEFAULT_MIN_INTERVAL,
) -> list[str]:
    """What is wrong with one job (empty: nothing); ``known`` memoises the checks of shared values."""
    messages: list[str] = []
    every = _repeat_seconds(definition.schedule_data)
    if every is not None and every < min_interval:
        messages.append(
            f"it would run every {every:g} seconds, more often than {MIN_INTERVAL_SETTING} ({min_interval:g} seconds) "
            "allows"
        )
    if len(definition.name) > NAME_LENGTH:
        messages.append(f"the name is {len(definition.name)} characters long; at most {NAME_LENGTH} fit the store")
    if len(definition.task) > NAME_LENGTH:
        messages.append(f"'task' is {len(definition.task)} characters long; at most {NAME_LENGTH} fit the store")
    # PostgreSQL's text cannot hold NUL (its driver refuses the whole write); a line break or tab in
    # a name breaks every line-based face (logs, the status table, URLs of the HTTP API).
    for what, text in (("the name", definition.name), ("'task'", definition.task)):
        control = _CONTROL.search(text)
        if control is not None:
            messages.append(f"{what} holds the control character {control.group()!r}; names and tasks may not hold any")
    memo = {} if known is None else known
    # A YAML job's options are its 'additional_options'; a file's jobs have a line in their source.
    options_key = "options" if split_source(definition.source)[1] is None else "additional_options"
    for what, value, check in (
        ("args", definition.args, _json_problems),
        ("kwargs", definition.kwargs, _json_problems),
        (options_key, definition.options, _options_problems),
    ):
        if not value:
            continue
        key = (id(value), what)
        found = memo.get(key)
        if found is None:
            found = memo[key] = check(what, value)
        messages.extend(found)
    return messages


def _repeat_seconds(data: Mapping[str, Any]) -> float | None:
    """Seconds between runs of an interval schedule (a number, timedelta or ``every N``); None for others.

    Every other kind repeats at most once a minute (a crontab, ``every minute at ...``) or once.
    """
    if data["type"] == "interval":
        return float(data["seconds"])
    if data["type"] == "timing":
        spec = parse_expression(data["expression"])
        if isinstance(spec, Interval):
            return spec.every.total_seconds()
    return None


# ---------------------------------------------------------------------------- JSON


def _json_problems(what: str, value: object) -> list[str]:
    """Why ``value`` cannot be stored as JSON (the first offending part, with its path), if it cannot."""
    found = _first_non_json(value, what)
    return [] if found is None else [found]


def _first_non_json(value: object, what: str) -> str | None:
    # Iterative, depth-first: a value nested thousands deep must give a message, not a RecursionError.
    pending: list[tuple[object, str, int]] = [(value, what, 0)]
    while pending:
        item, path, depth = pending.pop()
        if item is None or isinstance(item, str | bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{path} is {item!r}, which JSON cannot hold; use a finite number"
            continue
        if isinstance(item, list | tuple | dict) and depth >= MAX_NESTING:
            return f"{path} is nested more than {MAX_NESTING} levels deep; flatten the value"
        if isinstance(item, list | tuple):
            indexed = list(enumerate(item))
            pending.extend((element, f"{path}[{index}]", depth + 1) for index, element in reversed(indexed))
            continue
        if isinstance(item, dict):
            children: list[tuple[object, str, int]] = []
            for key, element in item.items():
                if not isinstance(key, str):
                    return f"{path} has the key {python_value(key)}; keys must be text (JSON turns them into text)"
                children.append((element, f"{path}[{key!r}]", depth + 1))
            pending.extend(reversed(children))
            continue
        return _not_json_message(item, path)
    return None


def _not_json_message(item: object, path: str) -> str:
    if isinstance(item, datetime | date | time):
        hint = "write it in quotes to pass the text (in YAML an unquoted date is a date)"
    elif isinstance(item, set | frozenset):
        hint = "use a list (YAML's !!set is a set)"
    elif isinstance(item, bytes | bytearray):
        hint = "pass text, e.g. base64 (YAML's !!binary is bytes)"
    else:
        hint = "use text, numbers, true/false, null, lists and mappings"
    return f"{path} is {python_value(item)}, which cannot be stored as JSON; {hint}"


# ---------------------------------------------------------------------------- apply_async options


def _options_problems(what: str, options: object) -> list[str]:
    """Why ``options`` would make ``apply_async`` fail (or be ignored), key by key."""
    if not isinstance(options, Mapping):
        return [f"{what} must be a mapping, got {python_value(options)}"]
    messages: list[str] = []
    for key, value in options.items():
        if not isinstance(key, str):
            messages.append(f"{what} has the key {python_value(key)}; keys must be text")
            continue
        if key in _RESERVED_HINTS:
            messages.append(f"{what} must not contain {key!r}: {_RESERVED_HINTS[key]}")
            continue
        check = _OPTION_CHECKS.get(key)
        if check is None:
            messages.append(unknown_key_message(key, OPTION_KEYS, what, {}))
            continue
        problem = check(value)
        if problem is not None:
            messages.append(f"{what}[{key!r}] {problem}")
    if not messages:
        found = _first_non_json(options, what)
        if found is not None:
            messages.append(found)
    return messages


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _seconds(value: object) -> str | None:
    if _is_number(value) and value >= 0:  # type: ignore[operator]
        return None
    return f"must be a number of seconds (0 or more), got {python_value(value)}"


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return None
    return f"must be a non-empty text, got {python_value(value)}"


def _flag(value: object) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {python_value(value)}"


def _priority(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return None
    return f"must be a whole number from 0 to 255, got {python_value(value)}"


def _expires(value: object) -> str | None:
    """Seconds after the send, or an aware date-time (as ISO 8601 text: a datetime is not JSON)."""
    if _is_number(value) and value >= 0:  # type: ignore[operator]
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.utcoffset() is not None:
            return None
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return f"is a datetime, which cannot be stored; write it as text: {value.isoformat()!r}"
    return (
        "must be a number of seconds after each send, or a date-time with its UTC offset as text "
        f"(e.g. '2030-01-01T00:00:00+00:00'), got {python_value(value)}"
    )


def _serializer(value: object) -> str | None:
    if isinstance(value, str) and value in serializers.name_to_type:
        return None
    names = ", ".join(sorted(serializers.name_to_type))
    return f"must be a registered serializer ({names}), got {python_value(value)}"


def _compression(value: object) -> str | None:
    if isinstance(value, str):
        try:
            get_encoder(value)  # type: ignore[no-untyped-call]
            return None
        except KeyError:
            pass
    return f"must be a compression kombu has registered (e.g. 'zlib', 'bzip2'), got {python_value(value)}"


def _headers(value: object) -> str | None:
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return None
    return f"must be a mapping of text keys, got {python_value(value)}"


def _retry_policy(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return f"must be a mapping ({', '.join(_RETRY_POLICY_KEYS)}), got {python_value(value)}"
    for key, setting in value.items():
        if key not in _RETRY_POLICY_KEYS:
            return f"has the unknown key {python_value(key)}; expected one of: {', '.join(_RETRY_POLICY_KEYS)}"
        if setting is not None and _seconds(setting) is not None:
            return f"[{key!r}] must be a number (0 or more), got {python_value(setting)}"
    return None


def _delivery_mode(value: object) -> str | None:
    if value in _DELIVERY_MODES and not isinstance(value, bool):
        return None
    return f"must be 1, 2, 'transient' or 'persistent', got {python_value(value)}"


_OPTION_CHECKS: Final[dict[str, Callable[[object], str | None]]] = {
    **dict.fromkeys(_TEXT_OPTIONS, _text),
    **dict.fromkeys(_NUMBER_OPTIONS, _seconds),
    **dict.fromkeys(_FLAG_OPTIONS, _flag),
    "priority": _priority,
    "expires": _expires,
    "serializer": _serializer,
    "compression": _compression,
    "headers": _headers,
    "retry_policy": _retry_policy,
    "delivery_mode": _delivery_mode,
}
if set(_OPTION_CHECKS) != set(OPTION_KEYS):  # pragma: no cover - a guard for editors
    raise ImportError("checks._OPTION_CHECKS and OPTION_KEYS list different options")
