"""The store's schema, connections and failure modes: migrations, WAL, bad URLs, retries, datetimes."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import PostgresServer, free_port

from celery_orchestra.beat.startup import refuse_to_start, wait_for_store
from celery_orchestra.jobs.definitions import JobDefinition
from celery_orchestra.store import JobStore, RunRecord, StoreError
from celery_orchestra.store.columns import UTCDateTime
from celery_orchestra.store.schema import KNOWN_REVISIONS, VERSION_TABLE, alembic_config, head_schema_revision
from celery_orchestra.store.tables import METADATA
from tests.ledger import record_runs

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STORE_TABLES = {"orchestra_jobs", "orchestra_runs", "orchestra_meta", "orchestra_lease", "orchestra_beats"}


def add_jobs(store: JobStore, *names: str) -> None:
    store.reconcile(
        [
            JobDefinition(name, f"tasks.{name}", {"type": "interval", "seconds": 60, "relative": False})
            for name in names
        ],
        now=T0,
    )


# -- migrations ----------------------------------------------------------------------------------


def test_migrating_an_empty_database_gives_exactly_the_orm_schema(store_url: str) -> None:
    store = JobStore(store_url)
    try:
        assert store.schema_revision() is None
        store.migrate()
        assert store.schema_revision() == head_schema_revision()
        engine = sa.create_engine(store_url)
        try:
            with engine.connect() as connection:
                assert set(sa.inspect(connection).get_table_names()) == STORE_TABLES | {VERSION_TABLE}
                context = MigrationContext.configure(
                    connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
                )
                assert compare_metadata(context, METADATA) == []
        finally:
            engine.dispose()
    finally:
        store.close()


def test_migrate_is_idempotent_and_keeps_the_data(store: JobStore) -> None:
    add_jobs(store, "a")
    store.set_paused(["a"], True)
    revision = store.current_revision()

    store.migrate()
    store.migrate()

    assert store.schema_revision() == head_schema_revision()
    assert store.current_revision() == revision
    record = store.get_job("a")
    assert record is not None and record.paused


def test_migrating_logs_one_line_of_ours_and_nothing_of_alembics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = JobStore(f"sqlite:///{tmp_path / 'quiet.db'}")
    try:
        store.migrate()
        store.migrate()  # a restart: the schema is current
    finally:
        store.close()
    infos = [(record.name, record.getMessage()) for record in caplog.records if record.levelno >= logging.INFO]
    assert [name for name, _ in infos if name.startswith("alembic")] == []
    assert [message for _, message in infos if "schema" in message] == [
        f"upgraded the celery-orchestra schema in sqlite:///{tmp_path / 'quiet.db'} from nothing to "
        f"{head_schema_revision()}"
    ]


def test_two_stores_migrating_at_once_both_succeed(store_url: str) -> None:
    stores = [JobStore(store_url), JobStore(store_url)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def migrate(job_store: JobStore) -> None:
        start.wait()
        try:
            job_store.migrate()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=migrate, args=(job_store,)) for job_store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert stores[0].schema_revision() == head_schema_revision()
        assert stores[1].current_revision() == 0
    finally:
        for job_store in stores:
            job_store.close()


def test_the_applications_own_tables_and_alembic_history_are_left_alone(store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('app_head_1234')")
            connection.exec_driver_sql("CREATE TABLE app_things (id INTEGER PRIMARY KEY)")
        store = JobStore(store_url)
        try:
            store.migrate()
        finally:
            store.close()
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        assert tables == STORE_TABLES | {VERSION_TABLE, "alembic_version", "app_things"}
        assert version == "app_head_1234"
    finally:
        engine.dispose()


def test_downgrading_to_base_drops_only_the_store_tables(store: JobStore, store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE app_things (id INTEGER PRIMARY KEY)")
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        with engine.connect() as connection:
            assert set(sa.inspect(connection).get_table_names()) == {VERSION_TABLE, "app_things"}
    finally:
        engine.dispose()
    store.migrate()
    assert store.current_revision() == 0


def test_a_schema_from_a_newer_version_is_refused(store: JobStore, store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'")
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match=r"has schema revision '9999_future', newer than this celery-orchestra"):
        store.migrate()


def test_two_rows_in_the_version_table_are_refused_naming_the_table(store: JobStore, store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('0002')")
    finally:
        engine.dispose()
    expected = (
        rf"the version table {VERSION_TABLE} in '.*' holds 2 rows \('0002', '{head_schema_revision()}'\); "
        "it must hold exactly one: delete all but the row"
    )
    with pytest.raises(StoreError, match=expected):
        store.migrate()
    with pytest.raises(StoreError, match=expected):
        store.schema_revision()
    fresh = JobStore(store_url)
    try:
        with pytest.raises(StoreError, match=expected):
            fresh.set_paused(["a"], True)
    finally:
        fresh.close()


def test_every_writer_refuses_a_schema_newer_than_it_knows_and_writes_nothing(store_url: str) -> None:
    setup = JobStore(store_url)
    setup.migrate()
    add_jobs(setup, "a")
    setup.close()
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'")
    finally:
        engine.dispose()
    newer = (
        r"the store at '.*' has schema revision '9999_future', newer than this celery-orchestra "
        rf"\(knows up to '{head_schema_revision()}'\): upgrade celery-orchestra"
    )
    writer = JobStore(store_url)  # as the CLI, the API and a remote-control node open it: no migrate()
    try:
        for write in (
            lambda: writer.set_paused(["a"], True),
            lambda: writer.set_enabled(["a"], False),
            lambda: writer.touch(["a"]),
            lambda: add_jobs(writer, "b"),
        ):
            with pytest.raises(StoreError, match=newer):
                write()
        with pytest.raises(StoreError, match=newer):
            writer.migrate()
        record = writer.get_job("a")  # reading is still allowed
        assert record is not None and not record.paused and record.enabled
        assert [job.name for job in writer.all_jobs()] == ["a"]
    finally:
        writer.close()


def test_the_known_revisions_are_the_packaged_migrations_in_order() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    assert tuple(reversed([script.revision for script in scripts.walk_revisions()])) == KNOWN_REVISIONS
    assert KNOWN_REVISIONS[-1] == head_schema_revision()


def test_using_the_store_before_migrating_says_to_migrate(store_url: str) -> None:
    store = JobStore(store_url)
    try:
        with pytest.raises(StoreError, match=r"has no celery-orchestra tables .*JobStore.migrate\(\)"):
            store.all_jobs()
        with pytest.raises(StoreError, match=r"JobStore.migrate\(\)"):
            store.set_paused(["a"], True)
    finally:
        store.close()


# -- construction, URLs and connections ----------------------------------------------------------


def test_constructing_a_store_neither_connects_nor_creates_files(tmp_path: Path) -> None:
    path = tmp_path / "orchestra.db"
    store = JobStore(f"sqlite:///{path}")
    unreachable = JobStore(f"postgresql+psycopg2://user:secret@127.0.0.1:{free_port()}/db")
    assert list(tmp_path.iterdir()) == []
    store.close()
    unreachable.close()
    assert list(tmp_path.iterdir()) == []
    assert "secret" not in unreachable.safe_url + repr(unreachable)
    assert unreachable.safe_url.startswith("postgresql+psycopg2://user:***@127.0.0.1:")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuchdriver://x", r"unknown database driver 'nosuchdriver' in URL 'nosuchdriver://x'"),
        ("not a url", r"invalid database URL 'not a url'"),
        ("postgresql+nosuchdbapi://u:pw@h/db", r"unknown database driver 'postgresql\+nosuchdbapi' .*u:\*\*\*@h"),
        ("mysql+pymysql://u:secret@h/db", None),
        ("postgresql://u:secret@[::1/db", r"invalid database URL 'postgresql://u:\*\*\*@\[::1/db': its host and port"),
        ("postgresql://u:secret@h:abc/db", r"invalid database URL .*h:abc/db': its host and port cannot be read"),
        ("postgresql://u:secret@h:99999/db", r"u:\*\*\*@h:99999/db': port 99999 is out of range \(1 to 65535\)"),
        ("sqlite:////x.db?timeout=abc", r"'sqlite:////x.db\?timeout=abc': a query argument cannot be read .*'abc'"),
        ("sqlite:////x.db?cached_statements=many", r"x.db\?cached_statements=many': a query argument cannot be read"),
        ("", r"invalid database URL '': expected a SQLAlchemy URL"),
    ],
    ids=[
        "unknown-driver",
        "malformed",
        "unknown-dbapi",
        "unsupported-backend",
        "unclosed-ipv6-host",
        "port-not-a-number",
        "port-out-of-range",
        "sqlite-timeout-not-a-number",
        "sqlite-argument-not-a-number",
        "empty",
    ],
)
def test_bad_urls_are_refused_at_construction(url: str, message: str | None) -> None:
    with pytest.raises(StoreError) as raised:
        JobStore(url)
    if message is not None:
        assert raised.match(message)
    assert "secret" not in str(raised.value)
    assert "pw@" not in str(raised.value)


def test_a_sqlite_file_in_a_missing_folder_is_refused_naming_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    store = JobStore(f"sqlite:///{missing}/orchestra.db")
    with pytest.raises(StoreError, match=rf"the folder '{missing}' does not exist"):
        store.migrate()
    assert not (tmp_path / "no").exists()


def test_an_unreachable_server_is_retried_then_reported_with_the_password_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    store = JobStore(f"postgresql+psycopg2://orchestra:s3cret@127.0.0.1:{port}/db", retries=2, retry_backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="celery_orchestra.store"), pytest.raises(StoreError) as raised:
        store.current_revision()
    message = str(raised.value)
    assert f"postgresql+psycopg2://orchestra:***@127.0.0.1:{port}/db" in message
    assert "gave up after 3 attempts" in message
    assert "s3cret" not in message + caplog.text
    assert caplog.text.count("retrying in") == 2
    assert isinstance(raised.value.__cause__, sa.exc.OperationalError)


@pytest.mark.postgres
def test_a_wrong_password_is_not_retried(postgres: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    store = JobStore(postgres.url().replace(postgres.password, "wrong-password"), retry_backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="celery_orchestra.store"), pytest.raises(StoreError) as raised:
        store.migrate()
    assert "password authentication failed" in str(raised.value)
    assert "wrong-password" not in str(raised.value)
    assert "retrying" not in caplog.text


@pytest.mark.postgres
def test_a_dropped_postgres_connection_is_replaced_transparently(fresh_postgres_url: str) -> None:
    store = JobStore(fresh_postgres_url)
    try:
        store.migrate()
        add_jobs(store, "a")
        engine = sa.create_engine(fresh_postgres_url)
        try:
            with engine.connect() as connection:
                killed = connection.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'celery-orchestra' AND pid <> pg_backend_pid()"
                ).scalar()
        finally:
            engine.dispose()
        assert killed and killed >= 1
        assert store.set_paused(["a"], True) == ["a"]
    finally:
        store.close()


def test_close_is_idempotent_and_the_store_reconnects_after_it(store: JobStore) -> None:
    add_jobs(store, "a")
    store.close()
    store.close()
    assert [record.name for record in store.all_jobs()] == ["a"]


def test_an_in_memory_store_is_shared_by_every_thread() -> None:
    store = JobStore("sqlite://")
    try:
        store.migrate()
        add_jobs(store, "a")
        seen: list[list[str]] = []
        thread = threading.Thread(target=lambda: seen.append([r.name for r in store.all_jobs()]))
        thread.start()
        thread.join(timeout=30)
        assert seen == [["a"]]
    finally:
        store.close()


# -- SQLite: a damaged file ------------------------------------------------------------------------


def _sqlite_pages(path: Path) -> tuple[int, int]:
    """The page size and page count of a SQLite file, its WAL checkpointed into it."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        count = connection.execute("PRAGMA page_count").fetchone()[0]
    finally:
        connection.close()
    return size, count


def _damage_table_leaves(path: Path, damage: Callable[[bytearray, int], None]) -> int:
    """Apply ``damage(file, page_offset)`` to every leaf page of a table b-tree but the first; how many."""
    size, count = _sqlite_pages(path)
    data = bytearray(path.read_bytes())
    damaged = 0
    for page in range(1, count):  # page 1 (the schema) is left whole
        offset = page * size
        if data[offset] == 0x0D:  # a leaf page of a table b-tree
            damage(data, offset)
            damaged += 1
    path.write_bytes(bytes(data))
    return damaged


def _many_jobs_store(path: Path) -> None:
    store = JobStore(f"sqlite:///{path}")
    store.migrate()
    add_jobs(store, *(f"job-{index:04d}" for index in range(400)))
    store.close()


def test_a_damaged_sqlite_file_is_refused_at_start_up_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "orchestra.db"
    _many_jobs_store(path)

    def bad_free_block(data: bytearray, offset: int) -> None:
        data[offset + 1 : offset + 3] = (5).to_bytes(2, "big")  # a free block inside the page header

    assert _damage_table_leaves(path, bad_free_block) > 1
    store = JobStore(f"sqlite:///{path}")
    try:
        with pytest.raises(StoreError) as raised:
            wait_for_store(store, 0)
    finally:
        store.close()
    message = str(raised.value)
    assert message.startswith(f"the SQLite store '{path}' is damaged (PRAGMA quick_check found: ")
    assert "free space corruption" in message
    assert f"restore it from a backup or salvage what is left with `sqlite3 {path} .recover" in message
    assert "\n" not in message
    assert not raised.value.transient
    with pytest.raises(SystemExit), caplog.at_level(logging.CRITICAL, logger="celery_orchestra.scheduler"):
        refuse_to_start(raised.value)
    assert [record.getMessage() for record in caplog.records] == [f"celery-orchestra: {message}"]


def test_a_page_damaged_while_running_is_a_store_error_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "orchestra.db"
    _many_jobs_store(path)
    store = JobStore(f"sqlite:///{path}", retries=0)
    try:
        store.check_integrity()  # whole, so far
        store.migrate()
        page_size, _ = _sqlite_pages(path)

        def garbage(data: bytearray, offset: int) -> None:
            data[offset + 8 : offset + page_size] = b"\xde" * (page_size - 8)

        assert _damage_table_leaves(path, garbage) > 1
        with pytest.raises(StoreError, match=rf"^the SQLite store '{path}' is damaged \(.*malformed\): restore it"):
            store.all_jobs()
        with pytest.raises(StoreError, match=rf"^the SQLite store '{path}' is damaged"):
            store.check_integrity()
    finally:
        store.close()


# -- SQLite: WAL, pragmas, lock contention -------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[JobStore, Path]]:
    path = tmp_path / "orchestra.db"
    store = JobStore(f"sqlite:///{path}", sqlite_busy_timeout=0.05, retries=1, retry_backoff=0.01)
    store.migrate()
    add_jobs(store, "a", "b")
    try:
        yield store, path
    finally:
        store.close()


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(sqlite_store: tuple[JobStore, Path]) -> None:
    store, _ = sqlite_store
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 50
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_readers_are_not_blocked_by_an_open_write_transaction(sqlite_store: tuple[JobStore, Path]) -> None:
    store, path = sqlite_store
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        # EXCLUSIVE: with a rollback journal this shuts every reader out until COMMIT; in WAL it does not.
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("UPDATE orchestra_jobs SET task = 'tasks.uncommitted' WHERE name = 'a'")
        record = store.get_job("a")
        assert record is not None and record.task == "tasks.a"
        assert [r.name for r in store.all_jobs()] == ["a", "b"]
        writer.execute("COMMIT")
    finally:
        writer.close()
    record = store.get_job("a")
    assert record is not None and record.task == "tasks.uncommitted"


def test_a_locked_sqlite_database_is_retried_then_reported_and_nothing_is_half_written(
    sqlite_store: tuple[JobStore, Path], caplog: pytest.LogCaptureFixture
) -> None:
    store, path = sqlite_store
    revision = store.current_revision()
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        with caplog.at_level(logging.WARNING, logger="celery_orchestra.store"), pytest.raises(StoreError) as raised:
            store.set_paused(["a", "b"], True)
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    assert "database is locked" in str(raised.value)
    assert "gave up after 2 attempts" in str(raised.value)
    assert "pause 2 jobs" in caplog.text and "attempt 1 of 2" in caplog.text
    assert store.current_revision() == revision
    assert [r.paused for r in store.all_jobs()] == [False, False]


def test_a_write_waits_out_a_short_lock_with_retries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "orchestra.db"
    store = JobStore(f"sqlite:///{path}", sqlite_busy_timeout=0.05, retries=6, retry_backoff=0.05)
    try:
        store.migrate()
        add_jobs(store, "a")
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        writer.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
        release.start()
        with caplog.at_level(logging.WARNING, logger="celery_orchestra.store"):
            assert store.set_paused(["a"], True) == ["a"]
        release.join()
        writer.close()
        assert "retrying in" in caplog.text
        record = store.get_job("a")
        assert record is not None and record.paused
    finally:
        store.close()


# -- datetimes -----------------------------------------------------------------------------------


def test_naive_datetimes_are_refused_by_the_column_type() -> None:
    column = UTCDateTime()
    dialect = sa.create_engine("sqlite://").dialect
    with pytest.raises(ValueError, match="naive datetime"):
        column.process_bind_param(datetime(2026, 1, 1, 12), dialect)
    stored = column.process_bind_param(datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5))), dialect)
    assert stored == datetime(2026, 1, 1, 17)
    assert column.process_result_value(stored, dialect) == datetime(2026, 1, 1, 17, tzinfo=UTC)


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets, allow_imaginary=False
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(when=instants)
def test_datetimes_round_trip_as_the_same_instant_in_utc(store: JobStore, when: datetime) -> None:
    add_jobs(store, "a")
    store.set_next_run({"a": when})
    record_runs(store, [RunRecord("a", when, when, "t", when)])
    record = store.get_job("a")
    assert record is not None
    assert record.next_run_at == when
    assert record.next_run_at is not None and record.next_run_at.tzinfo is UTC
    assert record.next_run_at.utcoffset() == timedelta(0)
    assert [entry.fire_time for entry in store.history("a")][:1] == [when]
    store.prune_runs(datetime.max.replace(tzinfo=UTC))
