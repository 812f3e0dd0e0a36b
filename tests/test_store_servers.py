"""The throwaway servers themselves: they start on loopback, answer, and are gone after stop()."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from servers import LOOPBACK, PostgresServer, RedisServer, find_binary, in_ci, missing_binary


@pytest.mark.postgres
def test_postgres_server_accepts_the_password_and_listens_on_loopback_only(
    postgres: PostgresServer, fresh_postgres_url: str
) -> None:
    engine = sa.create_engine(fresh_postgres_url)
    try:
        with engine.connect() as connection:
            listen = connection.exec_driver_sql("SHOW listen_addresses").scalar()
            fsync = connection.exec_driver_sql("SHOW fsync").scalar()
            database = connection.exec_driver_sql("SELECT current_database()").scalar()
    finally:
        engine.dispose()
    assert listen == LOOPBACK
    assert fsync == "off"
    assert database == fresh_postgres_url.rsplit("/", 1)[1]
    assert postgres.process.poll() is None


@pytest.mark.postgres
def test_postgres_refuses_a_wrong_password(postgres: PostgresServer) -> None:
    engine = sa.create_engine(postgres.url().replace(postgres.password, "wrong"))
    try:
        with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
            engine.connect()
    finally:
        engine.dispose()


@pytest.mark.redis
def test_redis_server_answers_ping_and_has_no_persistence(redis: RedisServer) -> None:
    assert redis.ping()
    with socket.create_connection((LOOPBACK, redis.port), timeout=2) as connection:
        connection.sendall(b"CONFIG GET save\r\n")
        reply = connection.recv(256)
    # *2 $4 save $0 <empty>: no snapshot rules.
    assert reply.replace(b"\r\n", b"|") == b"*2|$4|save|$0||"
    assert redis.url() == f"redis://{LOOPBACK}:{redis.port}/0"


def test_find_binary_looks_beyond_path(tmp_path: Path) -> None:
    older = tmp_path / "9" / "bin"
    newer = tmp_path / "15" / "bin"
    for folder in (older, newer):
        folder.mkdir(parents=True)
        binary = folder / "orchestra-test-binary"
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    found = find_binary("orchestra-test-binary-not-on-path", f"{tmp_path}/*/bin/orchestra-test-binary")
    assert found == str(newer / "orchestra-test-binary")
    assert find_binary("orchestra-test-binary-not-on-path", f"{tmp_path}/none/*") is None


def test_missing_binary_skips_outside_ci_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="no such server"):
        missing_binary("no such server")
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match=r"no such server.*CI=true"):
        missing_binary("no such server")
