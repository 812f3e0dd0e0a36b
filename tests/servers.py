"""Throwaway PostgreSQL and Redis servers for the tests.

Each server runs from a fresh temporary directory, listens on 127.0.0.1 on a free port, keeps no
data worth keeping (fsync off, no snapshots) and is stopped by the pid we started. Nothing here
talks to anything but loopback.

When a binary is missing the tests that need it are skipped with the reason, except under
``CI=true``, where a missing binary is a failure: CI installs them, so their absence means the
suite silently stopped testing the real backends.

PostgreSQL refuses to run as root; when the tests run as root the cluster is created and run as an
unprivileged user (``postgres`` if it exists, else ``nobody``) through ``subprocess``'s
``user=``/``group=``, so the pid we hold is the postmaster's own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def missing_binary(reason: str) -> None:
    """Skip the test (or fail it under ``CI=true``) because a server binary is absent."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the CI machine must provide it)", pytrace=False)
    pytest.skip(reason)


def find_binary(name: str, *extra_globs: str) -> str | None:
    """``name`` on PATH, else the newest match of ``extra_globs`` (e.g. Debian's versioned dirs)."""
    found = shutil.which(name)
    if found:
        return found
    candidates: list[str] = []
    for pattern in extra_globs:
        candidates.extend(path for path in glob.glob(pattern) if os.access(path, os.X_OK))
    return max(candidates, key=_version_key) if candidates else None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in Path(path).parts if part.isdigit())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _wait_for_exit(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@dataclass
class _RunAs:
    """Who runs the server: ourselves, or an unprivileged user when we are root."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_postgres(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        for name in ("postgres", "nobody"):
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return cls(entry.pw_uid, entry.pw_gid)
        raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")

    def own(self, *paths: Path) -> None:
        if self.uid is None or self.gid is None:
            return
        for path in paths:
            os.chown(path, self.uid, self.gid)

    def popen_options(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


# -- PostgreSQL ----------------------------------------------------------------------------------


def find_postgres_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (PATH, then /usr/lib/postgresql/*/bin)."""
    initdb = find_binary("initdb", "/usr/lib/postgresql/*/bin/initdb", "/usr/pgsql-*/bin/initdb")
    if initdb is None:
        return None
    folder = Path(os.path.realpath(initdb)).parent
    return folder if (folder / "postgres").exists() else None


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL cluster; superuser ``orchestra`` with a password."""

    bin_dir: Path
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    user: str = "orchestra"
    password: str = field(default_factory=lambda: uuid.uuid4().hex)

    def url(self, database: str = "orchestra") -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@{LOOPBACK}:{self.port}/{database}"

    def admin_connection(self) -> Any:
        """An autocommit psycopg2 connection to the ``postgres`` database (for CREATE DATABASE)."""
        import psycopg2

        connection = psycopg2.connect(
            host=LOOPBACK, port=self.port, user=self.user, password=self.password, dbname="postgres", connect_timeout=5
        )
        connection.autocommit = True
        return connection

    def create_database(self, name: str) -> str:
        connection = self.admin_connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)

    def drop_database(self, name: str) -> None:
        connection = self.admin_connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            connection.close()

    def stop(self) -> None:
        """Immediate shutdown (SIGQUIT) of the postmaster we started, then delete its files."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            _wait_for_exit(self.process, STOP_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def log_text(self) -> str:
        log = self.root / "postgres.log"
        return log.read_text(errors="replace") if log.exists() else ""


def start_postgres(bin_dir: Path) -> PostgresServer:
    """initdb + postgres on a free loopback port; raises RuntimeError with the server log on failure."""
    run_as = _RunAs.for_postgres()
    root = Path(tempfile.mkdtemp(prefix="orchestra-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    password = uuid.uuid4().hex
    password_file = root / "password"
    password_file.write_text(password + "\n")
    run_as.own(root, sockets, password_file)
    initdb = subprocess.run(
        [
            str(bin_dir / "initdb"),
            "--pgdata",
            str(data),
            "--username",
            "orchestra",
            "--pwfile",
            str(password_file),
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ],
        capture_output=True,
        cwd=root,
        check=False,
        **run_as.popen_options(),
    )
    if initdb.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout.decode()}\n{initdb.stderr.decode()}")
    last_error = ""
    for _ in range(3):  # the free port can be taken between probing and binding
        port = free_port()
        with open(root / "postgres.log", "ab") as log:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-c",
                    f"listen_addresses={LOOPBACK}",
                    "-c",
                    f"unix_socket_directories={sockets}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=60",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                **run_as.popen_options(),
            )
        server = PostgresServer(bin_dir=bin_dir, root=root, port=port, process=process, password=password)
        if _wait_for_postgres(server):
            server.create_database("orchestra")
            return server
        last_error = server.log_text[-4000:]
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            _wait_for_exit(process, STOP_TIMEOUT)
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start on {LOOPBACK}; server log:\n{last_error}")


def _wait_for_postgres(server: PostgresServer) -> bool:
    import psycopg2

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            connection = server.admin_connection()
        except psycopg2.OperationalError:
            time.sleep(0.1)
            continue
        connection.close()
        return True
    return False


# -- Redis ---------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A running throwaway ``redis-server`` without persistence."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, db: int = 0) -> str:
        return f"redis://{LOOPBACK}:{self.port}/{db}"

    def ping(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1.0) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            _wait_for_exit(self.process, STOP_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)


def start_redis(binary: str) -> RedisServer:
    root = Path(tempfile.mkdtemp(prefix="orchestra-redis-"))
    last_log = ""
    for _ in range(3):
        port = free_port()
        with open(root / "redis.log", "ab") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "--bind",
                    LOOPBACK,
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(root),
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
        server = RedisServer(root=root, port=port, process=process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if server.ping():
                return server
            time.sleep(0.05)
        if process.poll() is None:
            process.terminate()
            _wait_for_exit(process, STOP_TIMEOUT)
        last_log = (root / "redis.log").read_text(errors="replace")[-4000:]
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"redis-server did not start on {LOOPBACK}; log:\n{last_log}")


# -- pytest helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL (skip/fail if absent), yield it, stop it by pid."""
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        missing_binary(
            "PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin"
        )
    assert bin_dir is not None
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start a throwaway redis-server (skip/fail if absent), yield it, stop it by pid."""
    binary = find_binary("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server")
    if binary is None:
        missing_binary("redis-server not found on PATH")
    assert binary is not None
    server = start_redis(binary)
    try:
        yield server
    finally:
        server.stop()


def unique_database_name() -> str:
    return f"test_{uuid.uuid4().hex[:16]}"
