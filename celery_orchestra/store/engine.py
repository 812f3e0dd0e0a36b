"""Turning a database URL into a configured SQLAlchemy engine, and driver errors into store errors.

Everything backend-specific about *connections* lives here, so the rest of the store can be written
once for SQLite and PostgreSQL:

* SQLite runs in WAL mode with a busy timeout, so the CLI can read while beat writes, and with
  foreign keys on. The driver's own transaction handling is switched off and the store emits
  ``BEGIN IMMEDIATE`` for writes: a write transaction then takes the write lock up front (waiting up
  to the busy timeout) instead of failing half-way when a read lock cannot be upgraded.
* PostgreSQL (psycopg2) pings pooled connections before use, so a server restart costs one
  reconnect instead of an error, batches ``executemany`` updates into a few round trips, and gives
  up connecting after ``connect_timeout`` seconds instead of hanging.
* In-memory SQLite (``sqlite://``) shares one connection, guarded by a lock held by the store, so
  every thread sees the same database.

Other backends are refused: the run ledger relies on ``INSERT ... ON CONFLICT DO NOTHING``, which
is written per dialect.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import StaticPool

from ..errors import StoreError

__all__ = [
    "SUPPORTED_BACKENDS",
    "WRITE_OPTION",
    "DatabaseTarget",
    "build_engine",
    "check_sqlite_integrity",
    "damaged_sqlite_error",
    "describe_driver_error",
    "is_damaged_sqlite",
    "is_missing_schema",
    "is_transient",
    "mask_url",
    "parse_url",
]

log = logging.getLogger(__name__)

SUPPORTED_BACKENDS: Final = ("sqlite", "postgresql")

#: Execution option marking a connection whose next transaction writes (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION: Final = "orchestra_write"

_PASSWORD_IN_URL = re.compile(r"(?P<head>://[^:/@?#]*:)(?P<password>[^@/?#]*)(?P<tail>@)")

#: PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock, lock timeout,
#: administrator/crash shutdown, cannot connect now, too many connections. Class 08 (connection
#: exceptions) is retried as a whole.
_TRANSIENT_SQLSTATES: Final = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})
#: Connection failures that another attempt will not fix.
_PERMANENT_CONNECT_ERRORS: Final = (
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "could not translate host name",
)
_SQLITE_TRANSIENT: Final = ("database is locked", "database table is locked", "database is busy")
#: What SQLite says of a file whose pages are damaged, or that is not a database at all.
_SQLITE_DAMAGED: Final = ("database disk image is malformed", "file is not a database")
_UNDEFINED_TABLE: Final = "42P01"


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``, safe for logs and error messages."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", url)


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed, checked database URL."""

    url: URL
    #: ``mask_url(url)``, computed once for every message.
    shown: str

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @property
    def is_sqlite_memory(self) -> bool:
        database = self.url.database
        return self.is_sqlite and (not database or database == ":memory:" or "mode=memory" in database)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a file-backed SQLite URL (``None`` for memory or ``uri=true``)."""
        if not self.is_sqlite or self.is_sqlite_memory or self.url.query.get("uri"):
            return None
        return Path(str(self.url.database))


def parse_url(url: str | URL) -> DatabaseTarget:
    """Parse and check ``url`` without connecting or touching the filesystem.

    Loads the dialect (an import) so that an unknown driver is reported here, with the URL, rather
    than at first use deep inside a scheduler tick.
    """
    shown = mask_url(url)
    try:
        parsed = make_url(url)
    except (ValueError, TypeError) as exc:
        # SQLAlchemy reads the port with int(): "[::1/db" or "host:abc" raise a bare ValueError.
        raise StoreError(f"invalid database URL {shown!r}: its host and port cannot be read ({exc})", shown) from exc
    except ArgumentError as exc:
        raise StoreError(
            f"invalid database URL {shown!r}: expected a SQLAlchemy URL such as "
            "'sqlite:////var/lib/orchestra/orchestra.db' or "
            "'postgresql+psycopg2://user:password@host:5432/dbname'",
            shown,
        ) from exc
    if parsed.drivername == "postgresql":
        # Plain postgresql:// means psycopg 3 to SQLAlchemy 2.1; the driver we ship is psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    shown = mask_url(parsed)
    backend = parsed.get_backend_name()
    try:
        parsed.get_dialect()
    except NoSuchModuleError as exc:
        raise StoreError(
            f"unknown database driver {parsed.drivername!r} in URL {shown!r}: "
            f"celery-orchestra supports {', '.join(SUPPORTED_BACKENDS)}",
            shown,
        ) from exc
    except ImportError as exc:
        raise StoreError(
            f"the driver for database URL {shown!r} is not installed ({exc}); "
            "install it (for PostgreSQL: pip install psycopg2-binary)",
            shown,
        ) from exc
    if backend not in SUPPORTED_BACKENDS:
        raise StoreError(
            f"unsupported database backend {backend!r} in URL {shown!r}: "
            f"celery-orchestra supports {', '.join(SUPPORTED_BACKENDS)}",
            shown,
        )
    if parsed.port is not None and not 0 < parsed.port <= _HIGHEST_PORT:
        raise StoreError(
            f"invalid database URL {shown!r}: port {parsed.port} is out of range (1 to {_HIGHEST_PORT})", shown
        )
    _check_connect_arguments(parsed, shown)
    return DatabaseTarget(url=parsed, shown=shown)


_HIGHEST_PORT: Final = 65535


def _check_connect_arguments(parsed: URL, shown: str) -> None:
    """Let the dialect read the URL's query arguments now, as it will when connecting.

    The dialect converts them with ``int()``, ``float()`` or a true/false reading
    (``sqlite:///x.db?timeout=abc``): a bad one would otherwise surface as a bare ``ValueError``
    from inside SQLAlchemy at the first query.
    """
    try:
        dialect = parsed.get_dialect()()
        dialect.create_connect_args(parsed)
    except (ValueError, TypeError, ArgumentError) as exc:
        raise StoreError(f"invalid database URL {shown!r}: a query argument cannot be read ({exc})", shown) from exc


def build_engine(target: DatabaseTarget, *, echo: bool, sqlite_busy_timeout: float) -> Engine:
    """Create the engine for ``target``. Does not connect; refuses a SQLite file in a missing folder.

    SQLite would otherwise report "unable to open database file" at the first query, without saying
    which file or why.
    """
    path = target.sqlite_path
    if path is not None:
        folder = path.expanduser().absolute().parent
        if not folder.is_dir():
            raise StoreError(
                f"cannot open SQLite database {target.shown!r}: the folder {str(folder)!r} does not exist "
                "(create it first; celery-orchestra creates the database file, not its folder)",
                target.shown,
            )
    options: dict[str, Any] = {"echo": echo}
    if target.is_sqlite:
        options["connect_args"] = {"check_same_thread": False}
        if target.is_sqlite_memory:
            options["poolclass"] = StaticPool
    else:
        options["pool_pre_ping"] = True
        if target.url.get_driver_name() == "psycopg2":
            options["executemany_mode"] = "values_plus_batch"
            options["executemany_batch_page_size"] = 500
            connect_args: dict[str, Any] = {}
            if "connect_timeout" not in target.url.query:
                connect_args["connect_timeout"] = 10
            if "application_name" not in target.url.query:
                connect_args["application_name"] = "celery-orchestra"
            options["connect_args"] = connect_args
    try:
        engine = create_engine(target.url, **options)
    except (ArgumentError, TypeError) as exc:
        raise StoreError(f"cannot use database URL {target.shown!r}: {exc}", target.shown) from exc
    except ImportError as exc:
        raise StoreError(
            f"cannot use database URL {target.shown!r}: its driver is not installed: {exc}", target.shown
        ) from exc
    if target.is_sqlite:
        _configure_sqlite(engine, wal=not target.is_sqlite_memory, busy_timeout=sqlite_busy_timeout)
    return engine


def _configure_sqlite(engine: Engine, *, wal: bool, busy_timeout: float) -> None:
    busy_timeout_ms = max(int(busy_timeout * 1000), 0)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Autocommit at the driver level: the "begin" listener below decides how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning(
                        "SQLite refused WAL mode (journal_mode is %r); readers will block while beat writes",
                        mode,
                    )
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def is_transient(exc: DBAPIError, backend: str) -> bool:
    """Whether retrying the same operation may succeed (lock contention, dropped connection)."""
    if exc.connection_invalidated:
        return True
    message = str(exc.orig).lower()
    if backend == "sqlite":
        return isinstance(exc, OperationalError) and any(text in message for text in _SQLITE_TRANSIENT)
    pgcode = getattr(exc.orig, "pgcode", None)
    if pgcode:
        return pgcode.startswith("08") or pgcode in _TRANSIENT_SQLSTATES
    # psycopg2 reports a refused or dropped connection as an OperationalError without a SQLSTATE.
    return isinstance(exc, OperationalError) and not any(text in message for text in _PERMANENT_CONNECT_ERRORS)


def is_missing_schema(exc: DBAPIError) -> bool:
    """Whether the error says one of the store's tables does not exist (``migrate()`` never ran)."""
    if getattr(exc.orig, "pgcode", None) == _UNDEFINED_TABLE:
        return True
    return "no such table" in str(exc.orig).lower()


def describe_driver_error(exc: DBAPIError) -> str:
    """The driver's message, on one line, without the SQL and parameters SQLAlchemy appends."""
    lines = [line.strip() for line in str(exc.orig).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(exc.orig).__name__


def is_damaged_sqlite(exc: BaseException) -> bool:
    """Whether ``exc`` (a driver error, wrapped by SQLAlchemy or not) says the SQLite file is damaged."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    message = str(orig).lower()
    return any(text in message for text in _SQLITE_DAMAGED)


def damaged_sqlite_error(target: DatabaseTarget, detail: str) -> StoreError:
    """The one-line error for a damaged SQLite store: which file, what SQLite found, what to do.

    Retrying cannot help, and carrying on would fail at every tick: the file must be restored.
    """
    path = target.sqlite_path
    where = str(path) if path is not None else target.shown
    salvage = (
        f" or salvage what is left with `sqlite3 {where} .recover | sqlite3 {where}.recovered` and use that file"
        if path is not None
        else ""
    )
    return StoreError(
        f"the SQLite store {where!r} is damaged ({detail}): restore it from a backup{salvage}", target.shown
    )


#: At most this many of quick_check's findings, in this many characters, are named in the error.
_SHOWN_FINDINGS: Final = 3
_SHOWN_LENGTH: Final = 300


def check_sqlite_integrity(connection: Connection, target: DatabaseTarget) -> None:
    """Run ``PRAGMA quick_check`` on a SQLite store and refuse a damaged file (a no-op otherwise).

    quick_check reads every page once, without the index cross-checks of ``integrity_check``: a
    start-up's cost, paid so that a damaged file stops beat at once with one line instead of
    failing at every tick.
    """
    if not target.is_sqlite:
        return
    findings = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA quick_check")]
    if findings == ["ok"]:
        return
    shown = "; ".join(" ".join(finding.split()) for finding in findings[:_SHOWN_FINDINGS])
    if len(shown) > _SHOWN_LENGTH:
        shown = shown[: _SHOWN_LENGTH - 1] + "…"
    if len(findings) > _SHOWN_FINDINGS:
        shown += f" (and {len(findings) - _SHOWN_FINDINGS} more)"
    raise damaged_sqlite_error(target, f"PRAGMA quick_check found: {shown}")
