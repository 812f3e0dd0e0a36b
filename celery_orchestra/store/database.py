"""One database, used one transaction at a time: the engine's lifecycle and retried transactions.

Every store operation is a *work* function run here in its own connection and transaction:
``work(connection) -> (result, commit)``. A write that turns out to change nothing returns
``commit=False`` and is rolled back, so the change counter only moves for real changes.

Transient errors (a locked SQLite file, a dropped PostgreSQL connection) are retried a few times
with backoff, each retry logged; anything else, or the last failed retry, raises
:class:`~celery_orchestra.errors.StoreError` naming the database (password masked) and the
operation. A failed write is rolled back as a whole.

**A stalled client must not hold locks forever.** A beat stopped (SIGSTOP, a frozen VM) inside a
PostgreSQL write transaction keeps its row locks while its socket stays open: a standby's lease
acquisition would wait for it to resume, however long that takes. With ``transaction_limit``
every write transaction sets ``idle_in_transaction_session_timeout`` to it (``SET LOCAL``, so it
also holds behind a transaction-pooling PgBouncer): the server ends a session that sits idle
inside a transaction that long, rolling its writes back and releasing its locks.

**A writer checks what it writes into first.** ``first_write_check(connection, shown_url)`` runs
inside the first write transaction (and again until it passes once): the store uses it to refuse a
schema that a newer version migrated, at the cost of one query per process.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from ..errors import StoreError
from .engine import (
    WRITE_OPTION,
    DatabaseTarget,
    build_engine,
    check_sqlite_integrity,
    damaged_sqlite_error,
    describe_driver_error,
    is_damaged_sqlite,
    is_missing_schema,
    is_transient,
    parse_url,
)

__all__ = ["Database", "FirstWriteCheck", "Work"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: A unit of work: given a connection inside a transaction, its result and whether to commit.
Work = Callable[[Connection], tuple[_T, bool]]

#: A check run before a database's first write: given the connection and the masked URL, it raises to refuse.
FirstWriteCheck = Callable[[Connection, str], None]

#: The oldest SQLite with ``RETURNING``, which the ledger needs to know which runs were new.
_SQLITE_MIN_VERSION: Final = (3, 35, 0)


class Database:
    """A database URL and, from first use on, its engine. Thread-safe; nothing connects before use."""

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        sqlite_busy_timeout: float = 5.0,
        retries: int = 3,
        retry_backoff: float = 0.1,
        transaction_limit: float | None = None,
        first_write_check: FirstWriteCheck | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if transaction_limit is not None and not transaction_limit > 0:
            raise ValueError(f"transaction_limit must be > 0 seconds, got {transaction_limit}")
        self.target: DatabaseTarget = parse_url(url)
        self._echo = echo
        self._sqlite_busy_timeout = sqlite_busy_timeout
        self._retries = retries
        self._retry_backoff = retry_backoff
        self._limits_sql = _limits_sql(transaction_limit) if self.target.backend == "postgresql" else None
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        #: Cleared once it passed: later writes skip it.
        self._first_write_check = first_write_check
        # An in-memory SQLite database is one shared connection: one transaction at a time.
        self._memory_lock: threading.RLock | None = threading.RLock() if self.target.is_sqlite_memory else None

    @property
    def safe_url(self) -> str:
        """The database URL with its password masked."""
        return self.target.shown

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.target.backend

    def engine(self) -> Engine:
        """The SQLAlchemy engine, created on first use."""
        with self._engine_lock:
            if self._engine is None:
                if self.target.is_sqlite and sqlite3.sqlite_version_info < _SQLITE_MIN_VERSION:
                    raise StoreError(
                        f"SQLite {sqlite3.sqlite_version} is too old for {self.safe_url!r}: celery-orchestra "
                        f"needs {'.'.join(map(str, _SQLITE_MIN_VERSION))} or newer (for RETURNING)",
                        self.safe_url,
                    )
                self._engine = build_engine(self.target, echo=self._echo, sqlite_busy_timeout=self._sqlite_busy_timeout)
            return self._engine

    def check_integrity(self) -> None:
        """Refuse a damaged SQLite file (see :func:`~.engine.check_sqlite_integrity`); a no-op on PostgreSQL."""
        if self.target.is_sqlite:
            self.read("check the SQLite file", lambda connection: check_sqlite_integrity(connection, self.target))

    def close(self) -> None:
        """Close every pooled connection. Idempotent; the next use reconnects."""
        with self._engine_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def read(self, operation: str, work: Callable[[Connection], _T]) -> _T:
        """Run a read-only ``work(connection) -> result`` (rolled back afterwards)."""
        return self.run(operation, lambda connection: (work(connection), False), write=False)

    def run(self, operation: str, work: Work[_T], *, write: bool, durable: bool = True) -> _T:
        """Run ``work`` in one transaction, retrying transient errors (see the module docstring).

        ``durable=False`` (SQLite) commits without waiting for the disk: for writes whose loss in
        a power cut cannot matter (a lease renewal, a heartbeat: the beat lost power too), and
        which would otherwise spend milliseconds of a tick on an fsync.
        """
        attempts = self._retries + 1
        attempt = 1
        while True:
            try:
                return self._attempt(work, write=write, durable=durable)
            except sqlite3.DatabaseError as exc:  # raised by the driver's connection, outside SQLAlchemy
                if is_damaged_sqlite(exc):
                    raise damaged_sqlite_error(self.target, str(exc)) from exc
                raise StoreError(f"cannot {operation} in {self.safe_url!r}: {exc}", self.safe_url) from exc
            except DBAPIError as exc:
                reason = describe_driver_error(exc)
                if is_damaged_sqlite(exc):
                    raise damaged_sqlite_error(self.target, reason) from exc
                if is_missing_schema(exc):
                    raise StoreError(
                        f"cannot {operation}: {self.safe_url!r} has no celery-orchestra tables ({reason}); "
                        "create them with JobStore.migrate()",
                        self.safe_url,
                    ) from exc
                if not is_transient(exc, self.backend):
                    raise StoreError(f"cannot {operation} in {self.safe_url!r}: {reason}", self.safe_url) from exc
                if attempt >= attempts:
                    raise StoreError(
                        f"cannot {operation} in {self.safe_url!r}: {reason} (gave up after {attempts} attempts)",
                        self.safe_url,
                        transient=True,
                    ) from exc
                delay = self._retry_backoff * 2 ** (attempt - 1)
                log.warning(
                    "%s in %s failed (attempt %d of %d): %s; retrying in %.2f s",
                    operation,
                    self.safe_url,
                    attempt,
                    attempts,
                    reason,
                    delay,
                )
                time.sleep(delay)
                attempt += 1

    def _attempt(self, work: Work[_T], *, write: bool, durable: bool = True) -> _T:
        engine = self.engine()
        with self._exclusive(), engine.connect() as connection, self._synchronous(connection, durable):
            if write:
                connection.execution_options(**{WRITE_OPTION: True})
            transaction = connection.begin()
            try:
                if write and self._limits_sql is not None:
                    connection.exec_driver_sql(self._limits_sql)
                check = self._first_write_check
                if write and check is not None:
                    check(connection, self.safe_url)
                    self._first_write_check = None
                result, commit = work(connection)
            except BaseException:
                transaction.rollback()
                raise
            if commit:
                transaction.commit()
            else:
                transaction.rollback()
            return result

    @contextlib.contextmanager
    def _synchronous(self, connection: Connection, durable: bool) -> Iterator[None]:
        """SQLite's ``synchronous = NORMAL`` for one non-durable transaction, then back (WAL: no fsync)."""
        if durable or self.backend != "sqlite":
            yield
            return
        raw = connection.connection.driver_connection
        assert raw is not None
        previous = raw.execute("PRAGMA synchronous").fetchone()[0]
        raw.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            raw.execute(f"PRAGMA synchronous = {int(previous)}")

    def _exclusive(self) -> contextlib.AbstractContextManager[Any]:
        return self._memory_lock if self._memory_lock is not None else contextlib.nullcontext()


def _limits_sql(transaction_limit: float | None) -> str | None:
    if transaction_limit is None:
        return None
    milliseconds = max(1, round(transaction_limit * 1000))
    return f"SET LOCAL idle_in_transaction_session_timeout = {milliseconds}"
