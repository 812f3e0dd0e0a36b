"""Time zone lookup, forgiving in spelling and strict in meaning.

We evaluate every schedule with :mod:`zoneinfo` (PEP 495 ``fold`` semantics are what make the DST
rules in :mod:`celery_orchestra.timing.evaluate` exact). Users coming from pytz-era configuration write
``utc`` or ``europe/paris``; pytz accepted those, so we accept them too and normalise to the
canonical IANA key. Anything else is a :class:`TimeZoneError` that suggests the closest names.
"""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from ..errors import TimeZoneError, quoted

__all__ = ["MAX_ZONE_NAME_LENGTH", "app_zone", "log_instant", "require_aware", "resolve_zone", "zone_name"]

#: The longest zone name looked up. IANA names are at most about 30 characters; a long name of
#: many ``/`` parts would make zoneinfo recurse (a RecursionError) looking for its file.
MAX_ZONE_NAME_LENGTH = 255


def log_instant(instant: datetime, zone: tzinfo | None = None) -> str:
    """An instant the one way log lines show it: ISO 8601 to the second with its UTC offset, in
    ``zone`` (a job's own; default UTC), e.g. ``2026-03-29 03:00:00+02:00``."""
    return require_aware(instant, "instant").astimezone(zone or UTC).isoformat(sep=" ", timespec="seconds")


@functools.cache
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in zoneinfo.available_timezones()}


@functools.lru_cache(maxsize=1024)
def _zone_from_name(name: str) -> tzinfo:
    key = name.strip()
    if not key:
        raise TimeZoneError("empty time zone name")
    if len(key) > MAX_ZONE_NAME_LENGTH:
        raise TimeZoneError(
            f"time zone name {quoted(key)} is {len(key)} characters long; "
            f"at most {MAX_ZONE_NAME_LENGTH} (IANA names are like 'Europe/Berlin')"
        )
    if key.casefold() in ("utc", "z", "etc/utc"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    canonical = _zones_by_folded_name().get(key.casefold())
    if canonical is not None:
        return zoneinfo.ZoneInfo(canonical)
    close = difflib.get_close_matches(key, sorted(_zones_by_folded_name().values()), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise TimeZoneError(f"unknown time zone {quoted(name)} (expected an IANA name like 'Europe/Berlin'){hint}")


def resolve_zone(value: str | tzinfo | None) -> tzinfo:
    """Return a usable ``tzinfo`` for a name or zone object; ``None`` means UTC.

    pytz zones are replaced by the ``ZoneInfo`` of the same name, because pytz zones attached with
    ``replace(tzinfo=...)`` carry the zone's LMT offset (the predecessor's bug).
    """
    if value is None:
        return UTC
    if isinstance(value, str):
        return _zone_from_name(value)
    if isinstance(value, tzinfo):
        pytz_name = getattr(value, "zone", None)
        if isinstance(pytz_name, str):
            return _zone_from_name(pytz_name)
        return value
    raise TimeZoneError(f"a time zone must be a name or a tzinfo, not {type(value).__name__}")


def zone_name(zone: tzinfo) -> str:
    """The name to store and show for ``zone``: the IANA key, ``UTC``, or a fixed offset."""
    if zone is UTC:
        return "UTC"
    key = getattr(zone, "key", None)
    if isinstance(key, str):
        return key
    if isinstance(zone, timezone):
        offset = zone.utcoffset(None)
        if offset == timedelta(0):
            return "UTC"
        return str(zone)
    return str(zone)


def app_zone(app: Any) -> tzinfo:
    """The zone of jobs that name none: the app's ``timezone`` setting, else UTC (also without an app).

    Deliberately not Celery's ``app.timezone``, which follows ``enable_utc`` and the local zone:
    a schedule must not move because of where beat happens to run.
    """
    conf = getattr(app, "conf", None)
    configured = conf.get("timezone") if conf is not None else None
    return resolve_zone(configured) if configured else UTC


def require_aware(value: datetime, what: str) -> datetime:
    """Return ``value`` converted to UTC; refuse naive datetimes with a message naming ``what``.

    A naive datetime is ambiguous (local time? UTC?) and guessing wrong moves a job by hours, so
    nothing in celery-orchestra guesses.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} is a naive datetime ({value.isoformat()}); only timezone-aware datetimes are accepted, "
            "e.g. datetime.now(UTC)"
        )
    return value.astimezone(UTC)
