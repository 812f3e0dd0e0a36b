"""Column types shared by the ORM tables and the migrations.

Datetimes are the one type SQLite and PostgreSQL disagree on: SQLite has no time zone support and
``timestamp with time zone`` comes back in the *session's* zone on PostgreSQL. Storing naive UTC
in a plain ``TIMESTAMP`` and re-attaching UTC on the way out gives identical values on both, and
strings on SQLite that sort in time order (the ledger's uniqueness and the ``next_run_at`` index
rely on that).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from ..timing.zones import require_aware

__all__ = ["UTCDateTime"]


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as naive UTC and read back as aware UTC."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return require_aware(value, "a stored datetime").replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        """The conversion above, remembering the last value: a batch often stamps one instant on
        every row (a start-up's anchors, a dispatch's ``sent_at``), and it is converted once."""
        convert = super().bind_processor(dialect)
        if convert is None:
            return None
        last: list[tuple[datetime | None, Any]] = [(None, None)]

        def process(value: datetime | None) -> Any:
            if value is None:
                return None
            seen, converted = last[0]  # one tuple, replaced whole: safe across threads
            if seen is value:
                return converted
            converted = convert(value)
            last[0] = (value, converted)
            return converted

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], datetime | None] | None:
        """The conversion below, remembering the last value: rows read together often hold the
        same instant (every job registered at one start-up shares its anchor)."""
        convert = super().result_processor(dialect, coltype)
        if convert is None:
            return None
        last: list[tuple[Any, datetime | None]] = [(None, None)]

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            seen, converted = last[0]
            if seen == value:
                return converted
            converted = convert(value)
            last[0] = (value, converted)
            return converted

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)
