"""Shared fixtures: throwaway database and broker servers, and a fresh store per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import PostgresServer, RedisServer, postgres_server, redis_server, unique_database_name

from celery_orchestra.store import JobStore


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole session (skipped, or failed under CI, if absent)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """URL of the session server's ``orchestra`` database (shared: prefer ``fresh_postgres_url``)."""
    return postgres.url()


@pytest.fixture
def fresh_postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """URL of a new, empty database on the session server, dropped after the test."""
    name = unique_database_name()
    url = postgres.create_database(name)
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """One throwaway redis-server for the whole session (skipped, or failed under CI, if absent)."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis: RedisServer) -> str:
    return redis.url()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty database URL: an SQLite file in a temp folder, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'orchestra.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[JobStore]:
    """A migrated, empty store on each backend of ``store_url``, closed after the test."""
    job_store = JobStore(store_url)
    job_store.migrate()
    try:
        yield job_store
    finally:
        job_store.close()
