"""Many job rows in and out of the database at once: what a start-up reads and inserts.

At 100,000 jobs SQLAlchemy's per-value processing (binding parameters, converting results) costs
more than the database's own work, so these go through the driver and convert column by column,
each distinct value once (every job registered at one start-up shares its anchor), exactly as the
column types would have.

A restart reads each job's nine configured text columns as one text, :func:`config_key`, built
by the database in one function call per row (see :func:`read_job_states`): comparing it with the
configuration's decides that a job is unchanged. Fetching it costs less than fetching the nine
(at 100,000 jobs on SQLite about 0.45 s for the keyed rows against 0.6 s for whole rows; joining
with ``||`` instead cost more than it saved). Only the jobs that differ are then read whole
(:func:`read_jobs_named`).

A value that cannot be read (a row edited by hand) marks its job broken instead of failing the
read (see :mod:`.decoding`): every read here says which jobs are broken, and why.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from sqlalchemy import Boolean, Text, bindparam, cast, func, insert, literal, select, type_coerce
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from .columns import UTCDateTime
from .decoding import INTEGER, Broken, convert_column, datetime_conversion, decode_json_column
from .job_columns import JobColumns
from .records import JOB_FIELDS, JobRecord
from .sql import JSON_COLUMNS, chunks
from .tables import JOBS

__all__ = [
    "CONFIG_KEY_FIELDS",
    "SQLITE_ROWS_PER_INSERT",
    "STATE_FIELDS",
    "StoredStates",
    "config_key",
    "insert_jobs",
    "read_job_columns",
    "read_job_records",
    "read_job_states",
    "read_jobs_named",
]


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


#: The configured text columns that :func:`config_key` joins, in its order.
CONFIG_KEY_FIELDS: Final = ("task", "schedule_data", "timezone", "kind", "args", "kwargs", "options", "tags", "source")
#: Between two fields of a config key: a control character that JSON text never holds unescaped.
_SEPARATOR: Final = "\x1f"


def config_key(values: Sequence[str | None]) -> str | None:
    """The config key of the :data:`CONFIG_KEY_FIELDS` values (JSON columns as their text), as the
    database builds it in :func:`read_job_states`; ``None`` when a value holds the separator.

    Equal keys mean equal values only when each value is known to be free of the separator: a
    stored key equal to a key with exactly ``len(values) - 1`` separators splits only one way.
    A job whose key is ``None`` is compared value by value.
    """
    task, schedule_data, timezone, *rest = values
    key = _SEPARATOR.join(
        (task or "", schedule_data or "", "-" if timezone is None else "+" + timezone, *map(str, rest))
    )
    return key if key.count(_SEPARATOR) == len(CONFIG_KEY_FIELDS) - 1 else None


def _config_key_expression(dialect: str) -> ColumnElement[str]:
    """:func:`config_key`, in SQL: one function call per row (SQLite's ``||`` would copy the
    growing text once per column, costing more than fetching the columns one by one)."""
    parts: list[ColumnElement[Any]] = []
    for name in CONFIG_KEY_FIELDS:
        column: ColumnElement[Any] = JOBS.c[name]
        if name in JSON_COLUMNS and dialect != "sqlite":  # SQLite stores JSON as its text already
            column = cast(column, Text)
        if name == "timezone":
            column = func.coalesce(literal("+", Text) + column, literal("-", Text))
        parts.append(column)
    if dialect == "sqlite":
        template = _SEPARATOR.join(["%s"] * len(parts))
        return func.printf(literal(template, Text), *parts, type_=Text).label("config_key")
    return func.concat_ws(literal(_SEPARATOR, Text), *parts, type_=Text).label("config_key")


class StoredStates(NamedTuple):
    """Every stored job's name, its config key, and its other fields (those besides the
    :data:`CONFIG_KEY_FIELDS`), column by column in the table's own order; ``broken``: the jobs
    (by position) whose fields could not be read, and why."""

    names: Sequence[str]
    config_keys: Sequence[str | None]
    fields: dict[str, Sequence[Any]]
    broken: Broken


#: What :func:`read_job_states` reads besides the name and the config key.
STATE_FIELDS: Final = tuple(name for name in JOB_FIELDS if name != "name" and name not in CONFIG_KEY_FIELDS)


def read_job_states(connection: Connection) -> StoredStates:
    """Every stored job's name, config key and other fields (datetimes aware UTC)."""
    dialect = connection.dialect.name
    query = _STATES_QUERIES.get(dialect)
    if query is None:
        key = _config_key_expression(dialect)
        query = _STATES_QUERIES[dialect] = select(JOBS.c.name, key, *(JOBS.c[name] for name in STATE_FIELDS))
    columns, broken = _read_columns(connection, query, ("name", "config_key", *STATE_FIELDS))
    if not columns:
        return StoredStates((), (), {name: () for name in STATE_FIELDS}, {})
    return StoredStates(columns[0], columns[1], dict(zip(STATE_FIELDS, columns[2:], strict=True)), broken)


def read_job_columns(connection: Connection) -> tuple[JobColumns, Broken]:
    """Every stored job, column by column (in the table's own order), the JSON columns as their
    stored text (comparing text costs a fraction of decoding it), datetimes aware UTC; and the
    broken ones (by position; their unreadable values are placeholders)."""
    columns, broken = _read_columns(connection, _JOB_TEXT_QUERY, JOB_FIELDS)
    return (JobColumns(columns) if columns else JobColumns.empty()), broken


def read_jobs_named(connection: Connection, names: Sequence[str]) -> tuple[JobColumns, Broken]:
    """The stored jobs called ``names`` (as :func:`read_job_columns` reads them), in no order."""
    rows: list[tuple[Any, ...]] = []
    for chunk in chunks(names):
        rows.extend(map(tuple, connection.execute(_JOB_RAW_QUERY.where(JOBS.c.name.in_(chunk)))))
    if not rows:
        return JobColumns.empty(), {}
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    broken = _convert_columns(connection.dialect, columns, JOB_FIELDS)
    return JobColumns(columns), broken


def read_job_records(connection: Connection, *, where: Any = None, order_by: Any = JOBS.c.name) -> list[JobRecord]:
    """The records of the stored jobs matching ``where`` (all of them: ``None``), by ``order_by``.

    A row that cannot be read gives a broken record (see :class:`~.records.JobRecord`), not an error.
    """
    query = _JOB_RAW_QUERY if where is None else _JOB_RAW_QUERY.where(where)
    rows = connection.execute(query.order_by(order_by)).fetchall()
    if not rows:
        return []
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    del rows
    broken = _convert_columns(connection.dialect, columns, JOB_FIELDS)
    for name in JSON_COLUMNS:
        position = _POSITION[name]
        columns[position] = decode_json_column(name, columns[position], broken)
    from_values = JobRecord.from_values
    return [from_values(values, broken.get(index)) for index, values in enumerate(zip(*columns, strict=True))]


def _read_columns(connection: Connection, query: Any, fields: Sequence[str]) -> tuple[list[Sequence[Any]], Broken]:
    """The columns of ``query`` (which selects ``fields``), converted as their types convert them
    (no columns when there are no rows), and the jobs (by position) holding unreadable values."""
    dialect = connection.dialect
    statement = _COMPILED.get((id(query), dialect.name))
    if statement is None:
        # Constants (the config key's separator) inline: the driver is given no parameters.
        compiled = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        statement = _COMPILED[id(query), dialect.name] = str(compiled)
    rows = connection.exec_driver_sql(statement).fetchall()
    if not rows:
        return [], {}
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    del rows
    return columns, _convert_columns(dialect, columns, fields)


def _convert_columns(dialect: Dialect, columns: list[Sequence[Any]], fields: Sequence[str]) -> Broken:
    """Convert the raw ``columns`` (of ``fields``) in place, as their types would; return the
    jobs (by position) holding values that could not be converted."""
    broken: Broken = {}
    datetimes = datetime_conversion(_SOME_DATETIME.dialect_impl(dialect).result_processor(dialect, None) or _same)
    for position, name in enumerate(fields):
        column_type = JOBS.c[name].type if name in JOBS.c else None
        if isinstance(column_type, UTCDateTime):
            columns[position] = convert_column(columns[position], datetimes, name=name, broken=broken)
        elif isinstance(column_type, Boolean):
            columns[position] = _converted(columns[position], bool)
        elif name in _INTEGER_FIELDS:
            columns[position] = convert_column(columns[position], INTEGER, name=name, broken=broken)
    return broken


def _converted(column: Sequence[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``column`` with each value converted (``None`` stays ``None``), each distinct value once."""
    converted = {value: None if value is None else convert(value) for value in set(column)}
    return list(map(converted.__getitem__, column))


#: ``orchestra_jobs`` in :data:`JOB_FIELDS` order, JSON columns cast to text.
_JOB_TEXT_QUERY: Final = select(
    *(cast(JOBS.c[name], Text).label(name) if name in JSON_COLUMNS else JOBS.c[name] for name in JOB_FIELDS)
)
#: The same, every value left as the driver gives it when run through SQLAlchemy (which would
#: otherwise convert each row as it comes, failing the whole read at the first unreadable value).
_JOB_RAW_QUERY: Final = select(
    *(
        cast(JOBS.c[name], Text).label(name)
        if name in JSON_COLUMNS
        else type_coerce(JOBS.c[name], NullType()).label(name)
        for name in JOB_FIELDS
    )
)
#: The integer columns, which SQLite would hand back holding any text put there.
_INTEGER_FIELDS: Final = ("total_run_count", "max_runs", "revision")
_POSITION: Final = {name: index for index, name in enumerate(JOB_FIELDS)}
#: read_job_states's query, by dialect.
_STATES_QUERIES: dict[str, Any] = {}
#: The queries above compiled, by (query, dialect).
_COMPILED: dict[tuple[int, str], str] = {}
_DATETIME_POSITIONS: Final = tuple(
    position for position, name in enumerate(JOB_FIELDS) if isinstance(JOBS.c[name].type, UTCDateTime)
)
_SOME_DATETIME: Final = JOBS.c[JOB_FIELDS[_DATETIME_POSITIONS[0]]].type


def _same(value: Any) -> Any:
    return value
