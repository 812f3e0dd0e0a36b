"""``{"type": "crontab", "minute": "0", "hour": "9", "day_of_week": "mon-fri", ...}``: a
``celery.schedules.crontab`` by its five field strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from celery.schedules import BaseSchedule, crontab

from ...errors import ScheduleDataError
from ._common import CodecDefaults, ScheduleContext

__all__ = ["CRONTAB_FIELDS", "CrontabCodec"]

#: The crontab fields in Celery's keyword order.
CRONTAB_FIELDS: Final = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
#: Each field with the attribute where Celery keeps it as given: named once, not formatted for
#: every field of every crontab (``getattr`` must hash a fresh string; encoding took twice as long).
_FIELDS_AS_GIVEN: Final = tuple((field, f"_orig_{field}") for field in CRONTAB_FIELDS)


class CrontabCodec(CodecDefaults):
    tag = "crontab"
    fields: Final[Mapping[str, tuple[type, ...]]] = dict.fromkeys(CRONTAB_FIELDS, (str,))

    def encode(self, value: object, *, relative: bool) -> dict[str, Any] | None:
        if not isinstance(value, crontab):
            return None
        data: dict[str, Any] = {"type": self.tag}
        for field, as_given in _FIELDS_AS_GIVEN:
            data[field] = _field_text(field, getattr(value, as_given), getattr(value, field))
        return data

    def decode(self, data: Mapping[str, Any], context: ScheduleContext) -> BaseSchedule:
        try:
            cron = crontab(**{field: data[field] for field in CRONTAB_FIELDS}, nowfun=context.nowfun, app=context.app)
        except (ValueError, TypeError) as exc:  # celery's ParseException is a ValueError
            raise ScheduleDataError(f"invalid crontab {_text(data)!r}: {exc}") from exc
        if context.tz is not None:
            cron.tz = context.tz
        return cron

    def describe(self, data: Mapping[str, Any]) -> str:
        return f"crontab {_text(data)}"


def _field_text(field: str, original: object, expanded: Iterable[int]) -> str:
    """The field as crontab text: the user's own spelling when it is text or a number.

    Sets, lists and ranges have no spelling of their own, so they are written as the sorted,
    comma-separated values Celery expanded them to (which it has already range-checked).
    """
    if isinstance(original, str):
        return original
    if isinstance(original, int) and not isinstance(original, bool):
        return str(original)
    values = sorted(expanded)
    if not values:
        raise ScheduleDataError(f"crontab field {field!r} is empty, so the job would never run")
    return ",".join(str(v) for v in values)


def _text(data: Mapping[str, Any]) -> str:
    # Cron's own column order (minute hour day-of-month month day-of-week), as people read it.
    return " ".join(str(data[f]) for f in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week"))
