"""Column types shared by the ORM tables and the migrations.

Datetimes are the one type SQLite and PostgreSQL disagree on: SQLite has no time zone support and
``timestamp with time zone`` comes back in the *session's* zone on PostgreSQL. Storing naive UTC
in a plain ``TIMESTAMP`` and re-attaching UTC on the way out gives identical values on both, and
strings on SQLite that sort in time order (the ledger's uniqueness and the ``next_run_at`` index
rely on that).
"""

from __future__ import annotations

from datetime import UTC, datetime

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

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)
