"""SQL building blocks shared by the store's modules: the change counter, name lookups, bulk updates.

Every write transaction first increments the single row of ``orchestra_meta`` (:func:`bump_revision`)
and stamps the rows it writes with the new value. Taking the counter row first also serialises the
store's writers in one lock order, so revisions become visible in order and writers cannot
deadlock each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Text, bindparam, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from ..errors import JobNotFound, StoreError
from .tables import JOBS, META, META_ROW_ID

__all__ = [
    "IN_CHUNK",
    "JSON_COLUMNS",
    "bump_revision",
    "chunks",
    "dialect_insert",
    "existing",
    "job_bind",
    "lock_writers",
    "read_revision",
    "require_known",
    "stamp",
    "update_by_name",
    "update_many",
]

#: Names per ``IN (...)`` list: well under SQLite's oldest bound-variable limit (999).
IN_CHUNK: Final = 500


def dialect_insert(backend: str, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the backend (SQLite and PostgreSQL spell it alike)."""
    if backend == "postgresql":
        return postgresql_dialect.insert(table)
    return sqlite_dialect.insert(table)


def lock_writers(connection: Connection) -> None:
    """Take the counter row's lock without bumping it: the store's writers queue in one order.

    (SQLite needs nothing here: ``BEGIN IMMEDIATE`` already admits one writer at a time.)
    """
    connection.execute(select(META.c.id).where(META.c.id == META_ROW_ID).with_for_update())


def bump_revision(connection: Connection, shown_url: str) -> int:
    """Increment the change counter (taking its row lock first) and return the new value."""
    connection.execute(update(META).where(META.c.id == META_ROW_ID).values(revision=META.c.revision + 1))
    return read_revision(connection, shown_url)


def read_revision(connection: Connection, shown_url: str) -> int:
    revision = connection.execute(select(META.c.revision).where(META.c.id == META_ROW_ID)).scalar_one_or_none()
    if revision is None:
        raise StoreError(
            f"the change counter row is missing from orchestra_meta in {shown_url!r}; JobStore.migrate() recreates it",
            shown_url,
        )
    return int(revision)


def chunks(names: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(names), IN_CHUNK):
        yield names[start : start + IN_CHUNK]


def existing(connection: Connection, names: Iterable[str], columns: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
    """The given names that are stored, each with the values of ``columns``."""
    found: dict[str, tuple[Any, ...]] = {}
    for chunk in chunks(list(names)):
        for row in connection.execute(select(JOBS.c.name, *columns).where(JOBS.c.name.in_(chunk))):
            found[row[0]] = tuple(row[1:])
    return found


def require_known(names: Iterable[str], found: Mapping[str, object]) -> None:
    unknown = [name for name in names if name not in found]
    if unknown:
        raise JobNotFound(unknown)


def stamp(connection: Connection, names: Sequence[str], revision: int, values: Mapping[str, Any]) -> None:
    """Set ``values`` on the named rows and stamp them with ``revision``."""
    now = datetime.now(UTC)
    for chunk in chunks(names):
        connection.execute(
            update(JOBS).where(JOBS.c.name.in_(chunk)).values(**values, revision=revision, updated_at=now)
        )


#: The JSON columns of ``orchestra_jobs``: reconcile writes them as JSON text it serialised itself.
JSON_COLUMNS: Final = ("schedule_data", "args", "kwargs", "options", "tags")


def job_bind(column: str) -> Any:
    """The bind parameter ``:b_<column>``: JSON columns take ready JSON text (see :data:`JSON_COLUMNS`)."""
    type_ = Text() if column in JSON_COLUMNS else JOBS.c[column].type
    return bindparam(f"b_{column}", type_=type_)


def update_by_name(columns: Sequence[str]) -> Any:
    """An ``UPDATE orchestra_jobs ... WHERE name = :b_name`` for executemany, one ``:b_<column>`` per column."""
    assignments = {column: job_bind(column) for column in columns if column != "name"}
    return update(JOBS).where(JOBS.c.name == bindparam("b_name")).values(assignments)


def update_many(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Update rows by name, one executemany per distinct set of columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for values in rows:
        by_columns.setdefault(tuple(values), []).append({f"b_{column}": value for column, value in values.items()})
    for columns, parameters in by_columns.items():
        connection.execute(update_by_name(columns), parameters)
