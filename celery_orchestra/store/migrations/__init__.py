"""Alembic migrations of the store's schema, run by :func:`celery_orchestra.store.schema.upgrade_schema`.

To add a revision after changing :mod:`celery_orchestra.store.tables` (developers only)::

    python -c "from alembic import command; from celery_orchestra.store.schema import alembic_config; \
command.revision(alembic_config(), message='what changed', rev_id='0002')"

then write its ``upgrade()``/``downgrade()`` by hand (operations on ``orchestra_*`` tables only,
``batch_alter_table`` for anything SQLite cannot ``ALTER``); ``tests/test_store_schema.py`` checks
that the migrated schema equals the ORM's.
"""
