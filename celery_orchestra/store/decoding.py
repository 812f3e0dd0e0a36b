"""Stored job values into a record's values, where a value that cannot be read costs its job only.

A row edited by hand or by another tool may hold text that is not JSON in a JSON column, JSON of
the wrong shape (``args`` that is not an array), or, on SQLite, which keeps any value in any
column, a datetime that is not ISO 8601 or a count that is not a number. Reading such a row must
not fail the batch it is read in (beat's start-up, a poll, the status of every job), nor name
neither job nor column. So a column is converted as before, each distinct value once in one
comprehension, and only when that fails is it converted again value by value, to learn which jobs
hold what: those jobs are noted as *broken* (job index -> reason) and their values replaced by
placeholders. Reading good rows costs nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from .records import UNREADABLE_DATETIME

__all__ = [
    "INTEGER",
    "JSON_SHAPES",
    "Broken",
    "Conversion",
    "convert_column",
    "datetime_conversion",
    "decode_json_column",
    "decode_json_text",
    "note_broken",
]

#: Why each broken job cannot be used, by its index in the batch being read.
Broken = dict[int, str]

#: What each JSON column must hold once decoded: its Python type, in words, and the placeholder of
#: a broken job.
JSON_SHAPES: Final[dict[str, tuple[type, str, Any]]] = {
    "schedule_data": (dict, "a JSON object", {}),
    "args": (list, "a JSON array", []),
    "kwargs": (dict, "a JSON object", {}),
    "options": (dict, "a JSON object", {}),
    "tags": (list, "a JSON array of strings", []),
}

#: At most this many characters of an unreadable value are quoted in a reason.
_QUOTED: Final = 60
_DECODE: Final = json.JSONDecoder().decode


def note_broken(broken: Broken, index: int, reason: str) -> None:
    """Add ``reason`` to job ``index``'s (a job may hold several unreadable columns)."""
    known = broken.get(index)
    broken[index] = reason if known is None else f"{known}; {reason}"


class Conversion(NamedTuple):
    """How the values of a column are read: ``convert``, or else the job is broken and holds
    ``placeholder``; ``expected`` says in words what the column holds."""

    convert: Callable[[Any], Any]
    expected: str
    placeholder: Any


def datetime_conversion(convert: Callable[[Any], Any]) -> Conversion:
    """Reading a datetime column with ``convert`` (the column type's result processor)."""
    return Conversion(convert, "an ISO 8601 datetime", UNREADABLE_DATETIME)


#: Reading a count or a revision (SQLite would hand back any text kept in the column).
INTEGER: Final = Conversion(int, "an integer", 0)


def convert_column(column: Sequence[Any], conversion: Conversion, *, name: str, broken: Broken) -> list[Any]:
    """``column`` with each value converted (``None`` stays ``None``), each distinct value once.

    A value that the conversion refuses marks its job in ``broken`` (saying what column ``name``
    holds) and is replaced by the conversion's placeholder.
    """
    convert = conversion.convert
    try:
        converted = {value: None if value is None else convert(value) for value in set(column)}
    except (ValueError, TypeError, OverflowError):
        return [_converted_one(index, value, conversion, name, broken) for index, value in enumerate(column)]
    return list(map(converted.__getitem__, column))


def _converted_one(index: int, value: Any, conversion: Conversion, name: str, broken: Broken) -> Any:
    if value is None:
        return None
    try:
        return conversion.convert(value)
    except (ValueError, TypeError, OverflowError):
        note_broken(broken, index, f"column {name} holds {_quoted(value)}, not {conversion.expected}")
        return conversion.placeholder


def decode_json_column(name: str, texts: Sequence[Any], broken: Broken) -> list[Any]:
    """The values of the JSON column ``name`` (one of :data:`JSON_SHAPES`) from their stored text.

    Text that is not JSON, or JSON of another shape, marks its job in ``broken`` and is replaced
    by the shape's placeholder.
    """
    values: list[Any]
    try:
        values = list(map(_DECODE, texts))
    except (ValueError, TypeError, RecursionError):
        values = [_decoded_one(index, text, name, broken) for index, text in enumerate(texts)]
    shape, words, placeholder = JSON_SHAPES[name]
    for index, value in enumerate(values):
        # An undecodable text already holds the placeholder, which has the right shape.
        if not _has_shape(value, shape, tags=name == "tags"):
            note_broken(broken, index, f"column {name} holds {_quoted(texts[index])}, not {words}")
            values[index] = placeholder
    return values


def _has_shape(value: Any, shape: type, *, tags: bool) -> bool:
    if tags:
        return isinstance(value, list) and all(isinstance(tag, str) for tag in value)
    return type(value) is shape


def decode_json_text(name: str, text: Any) -> tuple[Any, str | None]:
    """One JSON column's value from its stored text, and why it is unusable (``None``: it is not)."""
    broken: Broken = {}
    value = decode_json_column(name, [text], broken)[0]
    return value, broken.get(0)


def _decoded_one(index: int, text: Any, name: str, broken: Broken) -> Any:
    try:
        return _DECODE(text)
    except (ValueError, TypeError, RecursionError) as error:
        detail = error.msg if isinstance(error, json.JSONDecodeError) else type(error).__name__
        note_broken(broken, index, f"column {name} holds {_quoted(text)}, not JSON ({detail})")
        return JSON_SHAPES[name][2]


def _quoted(value: Any) -> str:
    """``value`` quoted, cut to :data:`_QUOTED` characters: a reason stays one short line."""
    text = repr(value)
    return text if len(text) <= _QUOTED else text[: _QUOTED - 1] + "…"
