"""Alembic environment: run the store's migrations on the connection the store hands over.

There is no ``alembic.ini`` and no URL here on purpose: :func:`celery_orchestra.store.schema.upgrade_schema`
passes an open connection (inside its own transaction and lock) through ``config.attributes``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from celery_orchestra.store.schema import VERSION_TABLE
from celery_orchestra.store.tables import METADATA


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # Never look at, or propose changes to, tables that are not the store's own.
    return type_ != "table" or (name is not None and name.startswith("orchestra_"))


def _run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError(
        "celery-orchestra migrations run online only: call JobStore(url).migrate() "
        "(offline SQL generation is not supported)"
    )

_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "celery-orchestra migrations need a connection in config.attributes['connection']; "
        "run them through JobStore.migrate() or celery_orchestra.store.schema.upgrade_schema()"
    )
_run_online(_connection)
