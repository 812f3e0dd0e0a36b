"""Creating and upgrading the store's schema with the Alembic migrations shipped in the package.

Alembic is run programmatically: users need no ``alembic.ini``, and the store's version lives in
its own table, ``orchestra_alembic_version``, so it never collides with an application's own
Alembic history in the same database. Migrations only ever touch ``orchestra_*`` tables.

Upgrading runs in one transaction (both SQLite and PostgreSQL have transactional DDL), under a
lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level advisory lock), so two beat
processes starting at once cannot both try to create the tables.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection

from ..errors import StoreError
from .lease import ensure_lease_row
from .tables import META, META_ROW_ID

if TYPE_CHECKING:
    from collections.abc import Iterator

    from alembic.config import Config

# Alembic is imported inside the functions: reading the store (the CLI, remote control) never
# needs it, and it is a noticeable part of the import time.

log = logging.getLogger(__name__)

__all__ = [
    "KNOWN_REVISIONS",
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "check_schema_writable",
    "current_schema_revision",
    "head_schema_revision",
    "upgrade_schema",
]

VERSION_TABLE: Final = "orchestra_alembic_version"
MIGRATIONS_DIR: Final = Path(__file__).resolve().with_name("migrations")
#: Every revision of the packaged migrations, oldest first (the last is the head). Kept here so
#: that a writer's schema check needs no Alembic import; a test checks it against the migrations.
KNOWN_REVISIONS: Final = ("0001", "0002", "0003", "0004", "0005", "0006")
#: Key of the PostgreSQL advisory lock taken while migrating (a stable 31-bit number).
_MIGRATION_LOCK_KEY: Final = zlib.crc32(b"celery_orchestra.store.migrate") & 0x7FFFFFFF


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations, optionally bound to ``connection``.

    With a connection, ``env.py`` runs the migrations on it (inside the caller's transaction).
    """
    from alembic.config import Config

    config = Config()
    # configparser interpolation would read a "%" in the install path as a placeholder.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_schema_revision() -> str:
    """The newest schema revision this version of celery-orchestra knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations have no head revision"
    return head


@contextlib.contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic's logger at WARNING meanwhile: it narrates its plugin set-up and its migration
    context at INFO (nine lines on every start); one line of our own says what matters."""
    alembic_logger = logging.getLogger("alembic")
    level = alembic_logger.level
    alembic_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_logger.setLevel(level)


def current_schema_revision(connection: Connection, *, shown_url: str) -> str | None:
    """The schema revision the database is at (``None`` when the store was never migrated).

    The version table holds one row; more than one (a hand edit, a botched restore) is refused
    with what to do, rather than guessed at (``shown_url`` names the database in the error).
    """
    # Looked up first: on PostgreSQL a query on a missing table would abort the transaction.
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    revisions = [row[0] for row in connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]
    if len(revisions) > 1:
        listed = ", ".join(repr(revision) for revision in sorted(revisions))
        raise StoreError(
            f"the version table {VERSION_TABLE} in {shown_url!r} holds {len(revisions)} rows ({listed}); it must "
            "hold exactly one: delete all but the row of the revision the schema is really at "
            f"(this celery-orchestra's newest is {KNOWN_REVISIONS[-1]!r}), or restore the database from a backup",
            shown_url,
        )
    return revisions[0] if revisions else None


def check_schema_writable(connection: Connection, shown_url: str) -> None:
    """Refuse to write to a store whose schema a newer celery-orchestra migrated (or whose version
    table is confused): its rows may mean something this version does not know.

    A store not migrated yet passes: the write itself then says to migrate.
    """
    current = current_schema_revision(connection, shown_url=shown_url)
    if current is not None and current not in KNOWN_REVISIONS:
        raise _newer_schema_error(current, shown_url)


def _newer_schema_error(current: str, shown_url: str) -> StoreError:
    return StoreError(
        f"the store at {shown_url!r} has schema revision {current!r}, newer than this celery-orchestra "
        f"(knows up to {KNOWN_REVISIONS[-1]!r}): upgrade celery-orchestra",
        shown_url,
    )


@_alembic_quiet()
def upgrade_schema(connection: Connection, *, shown_url: str) -> None:
    """Bring the schema on ``connection`` to the head revision and make sure the counter and lease rows exist.

    ``connection`` must be inside a transaction; the caller commits. A database already migrated by
    a *newer* celery-orchestra is refused (``shown_url`` names it in the error) rather than guessed at.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
    config = alembic_config(connection)
    scripts = ScriptDirectory.from_config(config)
    current = current_schema_revision(connection, shown_url=shown_url)
    if current is not None and current not in KNOWN_REVISIONS:
        raise _newer_schema_error(current, shown_url)
    head = scripts.get_current_head()
    if current != head:
        command.upgrade(config, "head")
        log.info("upgraded the celery-orchestra schema in %s from %s to %s", shown_url, current or "nothing", head)
    has_counter = connection.execute(select(META.c.id).where(META.c.id == META_ROW_ID)).first()
    if has_counter is None:
        connection.execute(insert(META).values(id=META_ROW_ID, revision=0))
    ensure_lease_row(connection)
