"""SQL building blocks shared by the store's modules: the change counter, name lookups, bulk updates.

Every write transaction first increments the single row of ``orchestra_meta`` (:func:`bump_revision`)
and stamps the rows it writes with the new value. Taking the counter row first also serialises the
store's writers in one lock order, so revisions become visible in order and writers cannot
deadlock each other.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Boolean, Text, bindparam, cast, insert, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from ..errors import JobNotFound, StoreError
from .columns import UTCDateTime
from .job_columns import JobColumns
from .records import JOB_FIELDS
from .tables import JOBS, META, META_ROW_ID

__all__ = [
    "IN_CHUNK",
    "JSON_COLUMNS",
    "SQLITE_ROWS_PER_INSERT",
    "bump_revision",
    "chunks",
    "dialect_insert",
    "existing",
    "insert_jobs",
    "job_bind",
    "lock_writers",
    "read_job_columns",
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


def insert_jobs(connection: Connection, jobs: JobColumns) -> None:
    """Insert jobs given as columns, the JSON columns as JSON text.

    On SQLite the rows go to the driver directly, :data:`SQLITE_ROWS_PER_INSERT` to a statement:
    converting 100,000 rows' parameters one by one costs SQLAlchemy twice what SQLite needs to
    write them (a cold start of beat is mostly this), and SQLite writes multi-row ``VALUES`` a
    quarter faster than a row per execution. The values are bound as the column types bind them
    (datetimes by the columns' own bind processor, once per distinct instant; booleans as the
    integers SQLite stores for them), so the rows read back exactly as rows written through
    SQLAlchemy. PostgreSQL takes SQLAlchemy's batched ``INSERT ... VALUES`` (one round trip per
    page of rows, not per row).
    """
    if not jobs:
        return
    dialect = connection.dialect
    if dialect.name != "sqlite":
        text_columns = {column: bindparam(column, type_=Text()) for column in JSON_COLUMNS}
        connection.execute(
            insert(JOBS).values(text_columns), [dict(zip(JOB_FIELDS, row, strict=True)) for row in jobs.rows()]
        )
        return
    columns: list[Sequence[Any]] = [jobs.column(name) for name in JOB_FIELDS]
    bind = _SOME_DATETIME.dialect_impl(dialect).bind_processor(dialect) or _same
    for position in _DATETIME_POSITIONS:
        columns[position] = _converted(columns[position], bind)
    values = list(itertools.chain.from_iterable(zip(*columns, strict=True)))
    width = len(JOB_FIELDS)
    one_row = f"({', '.join('?' for _ in JOB_FIELDS)})"
    driver = connection.connection.dbapi_connection
    # A build of SQLite may allow fewer parameters than the 32,766 of its defaults.
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if isinstance(driver, sqlite3.Connection) else 999
    per_statement = max(1, min(SQLITE_ROWS_PER_INSERT, limit // width))
    for start in range(0, len(jobs), per_statement):
        count = min(per_statement, len(jobs) - start)
        connection.exec_driver_sql(
            f"INSERT INTO {JOBS.name} ({', '.join(JOB_FIELDS)}) VALUES {', '.join([one_row] * count)}",
            tuple(values[start * width : (start + count) * width]),
        )


#: Rows per ``INSERT`` on SQLite at most (12,000 parameters; SQLite allows 32,766 by default).
SQLITE_ROWS_PER_INSERT: Final = 500


def read_job_columns(connection: Connection) -> JobColumns:
    """Every stored job, column by column (in the table's own order), the JSON columns as their
    stored text (comparing text costs a fraction of decoding it), datetimes aware UTC.

    Read through the driver and converted column by column, each distinct value once (every job
    registered at one start-up shares its anchor): SQLAlchemy's per-value result processing cost
    more than the query itself at 100,000 jobs.
    """
    dialect = connection.dialect
    statement = _JOB_TEXT_QUERIES.get(dialect.name)
    if statement is None:
        statement = _JOB_TEXT_QUERIES[dialect.name] = str(_JOB_TEXT_QUERY.compile(dialect=dialect))
    rows = connection.exec_driver_sql(statement).fetchall()
    if not rows:
        return JobColumns.empty()
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    del rows
    convert_datetime = _SOME_DATETIME.dialect_impl(dialect).result_processor(dialect, None) or _same
    for position in _DATETIME_POSITIONS:
        columns[position] = _converted(columns[position], convert_datetime)
    for position in _BOOLEAN_POSITIONS:
        columns[position] = _converted(columns[position], bool)
    columns[_REVISION_POSITION] = _converted(columns[_REVISION_POSITION], int)
    return JobColumns(columns)


def _converted(column: Sequence[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``column`` with each value converted (``None`` stays ``None``), each distinct value once."""
    converted = {value: None if value is None else convert(value) for value in set(column)}
    return list(map(converted.__getitem__, column))


#: ``orchestra_jobs`` in :data:`JOB_FIELDS` order, JSON columns cast to text.
_JOB_TEXT_QUERY: Final = select(
    *(cast(JOBS.c[name], Text).label(name) if name in JSON_COLUMNS else JOBS.c[name] for name in JOB_FIELDS)
)
_JOB_TEXT_QUERIES: dict[str, str] = {}
_DATETIME_POSITIONS: Final = tuple(
    position for position, name in enumerate(JOB_FIELDS) if isinstance(JOBS.c[name].type, UTCDateTime)
)
_BOOLEAN_POSITIONS: Final = tuple(
    position for position, name in enumerate(JOB_FIELDS) if isinstance(JOBS.c[name].type, Boolean)
)
_REVISION_POSITION: Final = JOB_FIELDS.index("revision")
_SOME_DATETIME: Final = JOBS.c[JOB_FIELDS[_DATETIME_POSITIONS[0]]].type


def _same(value: Any) -> Any:
    return value


def update_many(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Update rows by name, one executemany per distinct set of columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for values in rows:
        by_columns.setdefault(tuple(values), []).append({f"b_{column}": value for column, value in values.items()})
    for columns, parameters in by_columns.items():
        connection.execute(update_by_name(columns), parameters)
