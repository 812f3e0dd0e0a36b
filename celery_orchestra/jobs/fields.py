"""The checks every job source shares: how a wrong value is shown, zones, unknown keys, tags.

``beat_schedule`` entries, YAML files and operator input (``--tags``) are read by different code,
but a tag or a zone means the same in each, so the rule for it lives here once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from datetime import tzinfo

from ..errors import TimeZoneError, quoted
from ..settings import python_value
from ..timing.zones import resolve_zone, zone_name

__all__ = ["canonical_zone_name", "is_tag", "python_value", "unique_tags", "unknown_key_message"]


def canonical_zone_name(value: str | tzinfo) -> str:
    """The IANA name to store for a zone given by name or object; TimeZoneError if it has none."""
    name = zone_name(resolve_zone(value))
    try:
        resolve_zone(name)
    except TimeZoneError:
        raise TimeZoneError(f"the time zone {quoted(name)} has no IANA name; use a name like 'Europe/Berlin'") from None
    return name


def unknown_key_message(key: str, allowed: Sequence[str], where: str, hints: Mapping[str, str]) -> str:
    """``unknown key 'tz' in the entry; did you mean 'timezone'?``: a hint, a close match, or the list."""
    message = f"unknown key {quoted(key)} in {where}"
    hint = hints.get(key)
    if hint is None:
        close = difflib.get_close_matches(key, allowed, n=2, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}?" if close else None
    if hint is None:
        hint = f"expected one of: {', '.join(allowed)}"
    return f"{message}; {hint}"


def is_tag(value: object) -> bool:
    """A tag is a string with something in it besides white space."""
    return isinstance(value, str) and bool(value.strip())


def unique_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """``tags`` without repeats, in their first order (a job's tags are a set shown in order)."""
    return tuple(dict.fromkeys(tags))
