"""The moving parts of a fault-injection run: servers, proxies, beat processes, the collector.

A :class:`Run` owns one scenario's world: a Redis database and a store (an SQLite file or a fresh
PostgreSQL database), a :class:`~tests.faults.proxy.ProxyHub` with a broker proxy (and, on
PostgreSQL, a database proxy) per beat slot, the beat processes, and the :class:`Collector` that
takes every task message off the broker. It records what the harness did (events, pauses, clock
offsets) with real timestamps; :mod:`tests.faults.analysis` turns all of it into figures.

Every process is started by us, on loopback, and stopped by its pid in :meth:`Run.close`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis as redis_client
import sqlalchemy

from tests.servers import LOOPBACK, PostgresServer, RedisServer, postgres_server, redis_server, unique_database_name

from .proxy import Proxy, ProxyHub

__all__ = [
    "REPO",
    "BeatSlot",
    "Collector",
    "Event",
    "Incarnation",
    "PauseWindow",
    "Run",
    "Seen",
    "Servers",
    "Store",
]

logger = logging.getLogger("faults")

#: The worktree whose code the beats run (``PYTHONPATH`` and cwd of every process we start).
REPO = Path(__file__).resolve().parents[2]
APP_MODULE = "tests.faults.app"
DEFAULT_SCHEDULER = "celery_orchestra.Scheduler"
CLOCK_SCHEDULER = "tests.faults.app:ClockScheduler"

#: A beat that has not sent anything this long after starting is reported (a loaded machine
#: takes a few seconds to import Celery).
START_DEADLINE = 45.0
#: How long a SIGTERM may take before the beat is called stuck and killed.
STOP_DEADLINE = 15.0


def now() -> float:
    return time.time()


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


# ---------------------------------------------------------------------------------------------- servers


@dataclass
class Servers:
    """Redis, and PostgreSQL when a scenario needs it, shared by the scenarios of one session."""

    redis: RedisServer
    postgres: PostgresServer | None = None
    _next_db: int = 0

    def redis_db(self) -> int:
        """A Redis database number of its own for each scenario (0-15)."""
        number = self._next_db % 16
        self._next_db += 1
        client = redis_client.Redis(host=LOOPBACK, port=self.redis.port, db=number)
        try:
            client.flushdb()
        finally:
            client.close()
        return number

    @classmethod
    @contextlib.contextmanager
    def started(cls, postgres: bool) -> Iterator[Servers]:
        """Start redis-server (and PostgreSQL); skips (fails under CI=true) when a binary is absent."""
        with redis_server() as redis:
            if not postgres:
                yield cls(redis)
                return
            with postgres_server() as pg:
                yield cls(redis, pg)


@dataclass
class Store:
    """The scenario's store: how the harness reaches it, and how each beat does (maybe proxied)."""

    kind: str  # "postgresql" or "sqlite"
    url: str
    postgres: PostgresServer | None = None
    database: str | None = None

    def beat_url(self, proxy: Proxy | None) -> str:
        if proxy is None or self.postgres is None or self.database is None:
            return self.url
        pg = self.postgres
        return f"postgresql+psycopg2://{pg.user}:{pg.password}@{LOOPBACK}:{proxy.port}/{self.database}"

    @classmethod
    def create(cls, kind: str, servers: Servers, folder: Path) -> Store:
        if kind == "sqlite":
            return cls("sqlite", f"sqlite:///{folder / 'orchestra.db'}")
        if servers.postgres is None:
            raise RuntimeError("this scenario needs PostgreSQL but none was started")
        name = unique_database_name()
        return cls("postgresql", servers.postgres.create_database(name), servers.postgres, name)

    def drop(self) -> None:
        if self.postgres is not None and self.database is not None:
            with contextlib.suppress(Exception):
                self.postgres.drop_database(self.database)


# ---------------------------------------------------------------------------------------------- collector


@dataclass(frozen=True)
class Seen:
    """One task message taken off the broker."""

    task_id: str
    task: str
    #: When the collector took it off the list (real time; adds the collector's polling delay).
    seen_at: float
    #: Real time just before the publish, stamped by the sending beat (``faults_published_at``).
    published_at: float | None
    #: The sending beat's scheduler clock at that moment (differs in the clock-jump scenario).
    clock_at: float | None
    pid: int | None

    @property
    def sent_at(self) -> float:
        return self.published_at if self.published_at is not None else self.seen_at


class Collector:
    """Takes every message off Celery's queue lists in Redis (BRPOP: seen within milliseconds).

    No worker runs: the collector is the only consumer. It talks to Redis directly, never through
    a beat's proxy, so it keeps collecting during broker faults.
    """

    #: The default queue and kombu's priority sub-lists of it.
    QUEUES = ("celery", *(f"celery\x06\x16{priority}" for priority in (3, 6, 9)))

    def __init__(self, port: int, db: int) -> None:
        self._client = redis_client.Redis(host=LOOPBACK, port=port, db=db, socket_timeout=10)
        self.seen: list[Seen] = []
        self.undecodable = 0
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="fault-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.drain(block=0.05)
            except redis_client.RedisError as error:
                self.errors.append(f"{now():.3f} {error}")
                time.sleep(0.2)

    def drain(self, block: float = 0.0) -> int:
        """Take everything queued now (after waiting up to ``block`` seconds for a first message)."""
        raw: list[bytes | str] = []
        if block:
            item: Any = self._client.brpop(list(self.QUEUES), timeout=block)
            if item is None:
                return 0
            raw.append(item[1])
        for queue in self.QUEUES:
            while True:
                items: Any = self._client.rpop(queue, 100)
                if not items:
                    break
                raw.extend(items)
        seen_at = now()
        decoded = [message for message in (self._decode(body, seen_at) for body in raw) if message is not None]
        if decoded:
            with self._changed:
                self.seen.extend(decoded)
                self._changed.notify_all()
        return len(raw)

    def _decode(self, body: bytes | str, seen_at: float) -> Seen | None:
        try:
            headers = json.loads(body).get("headers") or {}
            return Seen(
                task_id=str(headers["id"]),
                task=str(headers["task"]),
                seen_at=seen_at,
                published_at=_float(headers.get("faults_published_at")),
                clock_at=_float(headers.get("faults_clock_at")),
                pid=int(headers["faults_pid"]) if "faults_pid" in headers else None,
            )
        except (ValueError, KeyError, TypeError):
            self.undecodable += 1
            return None

    def snapshot(self) -> list[Seen]:
        with self._changed:
            return list(self.seen)

    def wait(self, condition: Callable[[list[Seen]], bool], timeout: float) -> bool:
        """Wait until ``condition(all messages so far)`` holds; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self.seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.2))
            return True

    def stop(self) -> None:
        """Stop polling, then take whatever is still queued (the beats must be stopped first)."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._thread.join(timeout=15)
        with contextlib.suppress(redis_client.RedisError):
            while self.drain():
                pass
        self._client.close()


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# ---------------------------------------------------------------------------------------------- beats


@dataclass
class Incarnation:
    """One beat process: its pid, log, and how it ended."""

    slot: int
    pid: int
    log: Path
    started_at: float
    ended_at: float | None = None
    #: "SIGKILL", "SIGTERM" (exited by itself after it), "SIGTERM ignored" (killed after the
    #: deadline), "exited N" (died by itself), or None while running.
    end: str | None = None
    returncode: int | None = None


class BeatSlot:
    """One beat "machine": its proxies, and the successive processes started in it."""

    def __init__(self, run: Run, index: int) -> None:
        self.run = run
        self.index = index
        self.broker_proxy = run.hub.add(f"broker-{index}", run.servers.redis.port)
        self.db_proxy = run.hub.add(f"db-{index}", run.store.postgres.port) if run.store.postgres is not None else None
        self.incarnations: list[Incarnation] = []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def current(self) -> Incarnation | None:
        return self.incarnations[-1] if self.incarnations else None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def start(self) -> Incarnation:
        run = self.run
        assert self.process is None or self.process.poll() is not None, "slot already has a running beat"
        log = run.folder / f"beat-{self.index}-{len(self.incarnations) + 1}.log"
        environment = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "FAULTS_BROKER_URL": f"redis://{LOOPBACK}:{self.broker_proxy.port}/{run.redis_db}",
            "FAULTS_STORE_URL": run.store.beat_url(self.db_proxy),
            "FAULTS_JOBS": json.dumps(run.jobs),
            "FAULTS_LEASE_TTL": str(run.lease_ttl),
            "FAULTS_CLOCK_FILE": str(run.clock_file),
        }
        for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            environment.pop(name, None)
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            APP_MODULE,
            "beat",
            "-S",
            run.scheduler,
            "-s",
            str(run.folder / f"beat-{self.index}-schedule"),
            "-l",
            "info",
        ]
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        incarnation = Incarnation(self.index, self.process.pid, log, now())
        self.incarnations.append(incarnation)
        run.event("start", slot=self.index, pid=incarnation.pid)
        return incarnation

    def kill(self) -> float:
        """kill -9; returns when it was sent."""
        process, incarnation = self._running()
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a stopped process dies too, but be explicit
        process.send_signal(signal.SIGKILL)
        at = now()
        process.wait(timeout=STOP_DEADLINE)
        self._ended(incarnation, "SIGKILL", at, process.returncode)
        self.run.event("kill", slot=self.index, pid=process.pid, at=at)
        return at

    def terminate(self, deadline: float = STOP_DEADLINE) -> tuple[float, float | None]:
        """SIGTERM; (when sent, seconds until it exited or None if it had to be killed)."""
        process, incarnation = self._running()
        at = now()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE)
            self._ended(incarnation, "SIGTERM ignored", at, process.returncode)
            self.run.event("sigterm", slot=self.index, pid=process.pid, at=at, exited_after=None)
            return at, None
        took = now() - at
        self._ended(incarnation, "SIGTERM", at, process.returncode)
        self.run.event("sigterm", slot=self.index, pid=process.pid, at=at, exited_after=round(took, 3))
        return at, took

    def send(self, sig: signal.Signals) -> float:
        process, _ = self._running()
        process.send_signal(sig)
        at = now()
        self.run.event(sig.name.lower(), slot=self.index, pid=process.pid, at=at)
        return at

    def _running(self) -> tuple[subprocess.Popen[bytes], Incarnation]:
        process, incarnation = self.process, self.current
        if process is None or incarnation is None or process.poll() is not None:
            raise RuntimeError(f"beat slot {self.index} has no running process:\n{self.log_tail()}")
        return process, incarnation

    def _ended(self, incarnation: Incarnation, how: str, at: float, returncode: int | None) -> None:
        incarnation.ended_at, incarnation.end, incarnation.returncode = at, how, returncode

    def check(self) -> None:
        """Record a process that died by itself."""
        process, incarnation = self.process, self.current
        if process is not None and incarnation is not None and incarnation.end is None:
            code = process.poll()
            if code is not None:
                self._ended(incarnation, f"exited {code}", now(), code)
                self.run.event("died", slot=self.index, pid=process.pid, returncode=code)

    def cleanup(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            self.check()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        try:
            self.terminate()
        except (RuntimeError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=STOP_DEADLINE)

    def log_tail(self, lines: int = 40) -> str:
        incarnation = self.current
        if incarnation is None or not incarnation.log.exists():
            return ""
        return "\n".join(incarnation.log.read_text(errors="replace").splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the harness dies without cleaning up (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class Event:
    at: float
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class PauseWindow:
    job: str
    pause_called: float
    pause_done: float
    resume_called: float | None = None
    resume_done: float | None = None


@dataclass
class Disturbance:
    """A fault the harness injected, from its start to its end (real time)."""

    kind: str
    start: float
    end: float
    #: The pid of the beat that was active when it started (kills, stalls, frozen links), if any.
    active_pid: int | None = None


class Run:
    """One scenario's world; use as a context manager (everything is stopped on exit)."""

    def __init__(
        self,
        name: str,
        servers: Servers,
        folder: Path,
        *,
        backend: str,
        jobs: dict[str, float],
        one_offs: dict[str, float],
        scheduler: str = DEFAULT_SCHEDULER,
        lease_ttl: float = 10.0,
        seed: int | None = None,
    ) -> None:
        """``jobs``: interval jobs, name -> seconds; ``one_offs``: name -> seconds after now."""
        self.name = name
        self.servers = servers
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.scheduler = scheduler
        self.lease_ttl = lease_ttl
        self.random = random.Random(seed)
        self.started_at = now()
        self.events: list[Event] = []
        self.pauses: list[PauseWindow] = []
        self.disturbances: list[Disturbance] = []
        self.clock_file = folder / "clock-offset"
        self.clock_file.write_text("0")
        #: (real time, offset in seconds) from then on: the beats' wall clock is real time + offset.
        self.clock: list[tuple[float, float]] = [(0.0, 0.0)]
        self.intervals = dict(jobs)
        # One-offs at whole seconds, far enough ahead that the first beat registers them in time.
        base = int(self.started_at)
        self.one_off_times = {name: float(base + round(delay)) for name, delay in one_offs.items()}
        self.jobs: dict[str, str] = {name: f"every {seconds:g} seconds" for name, seconds in jobs.items()}
        for name, at in self.one_off_times.items():
            self.jobs[name] = f"once at {utc(at):%Y-%m-%d %H:%M:%S}"
        self.redis_db = servers.redis_db()
        self.store = Store.create(backend, servers, folder)
        self.engine = sqlalchemy.create_engine(self.store.url, poolclass=sqlalchemy.pool.NullPool)
        self.hub = ProxyHub()
        self.beats: list[BeatSlot] = []
        self.collector = Collector(servers.redis.port, self.redis_db)
        self.settled_at: float | None = None
        self.window_end: float | None = None
        self.notes: list[str] = []

    # ---- lifecycle

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            for beat in self.beats:
                beat.cleanup()
        finally:
            self.collector.stop()
            self.hub.close()
            self.engine.dispose()
            self._write_journal()
            if os.environ.get("FAULTS_KEEP_DB") != "1":  # keep the PostgreSQL database to look at
                self.store.drop()

    def _write_journal(self) -> None:
        journal = {
            "scenario": self.name,
            "jobs": self.jobs,
            "events": [{"at": e.at, "kind": e.kind, **e.detail} for e in self.events],
            "pauses": [vars(p) for p in self.pauses],
            "clock": self.clock,
        }
        (self.folder / "journal.json").write_text(json.dumps(journal, indent=1, default=str))
        with open(self.folder / "messages.jsonl", "w") as messages:
            for message in self.collector.snapshot():
                messages.write(json.dumps(vars(message)) + "\n")

    # ---- bookkeeping

    def event(self, kind: str, **detail: Any) -> None:
        at = detail.pop("at", now())
        self.events.append(Event(at, kind, detail))
        logger.info("%s %s %s", self.name, kind, " ".join(f"{k}={v}" for k, v in detail.items()))

    def disturbance(self, kind: str, start: float, end: float, active_pid: int | None = None) -> Disturbance:
        found = Disturbance(kind, start, end, active_pid)
        self.disturbances.append(found)
        return found

    # ---- beats

    def add_beat(self, start: bool = True) -> BeatSlot:
        slot = BeatSlot(self, len(self.beats))
        self.beats.append(slot)
        if start:
            slot.start()
        return slot

    def live_pids(self) -> set[int]:
        for beat in self.beats:
            beat.check()
        return {pid for pid in (beat.pid for beat in self.beats) if pid is not None}

    def slot_of(self, pid: int) -> BeatSlot | None:
        for beat in self.beats:
            if beat.pid == pid:
                return beat
        return None

    def wait_for_send(
        self, *, after: float, by: int | None = None, not_by: int | None = None, timeout: float = START_DEADLINE
    ) -> Seen | None:
        """The first message published after ``after`` (by/not by a pid), waiting up to ``timeout``."""
        found: list[Seen] = []

        def match(seen: list[Seen]) -> bool:
            for message in seen:
                if message.sent_at <= after or (by is not None and message.pid != by):
                    continue
                if not_by is not None and message.pid == not_by:
                    continue
                found.append(message)
                return True
            return False

        self.collector.wait(match, timeout)
        return min(found, key=lambda m: m.sent_at) if found else None

    def wait_until_sending(self, beat: BeatSlot, timeout: float = START_DEADLINE) -> Seen:
        """Wait for the first send of ``beat``'s current process (fails the run if none)."""
        incarnation = beat.current
        assert incarnation is not None
        message = self.wait_for_send(after=incarnation.started_at, by=incarnation.pid, timeout=timeout)
        if message is None:
            raise RuntimeError(
                f"beat {beat.index} (pid {incarnation.pid}) sent nothing within {timeout} s of starting:\n"
                f"{beat.log_tail()}"
            )
        return message

    def active_pid(self, before: float | None = None) -> int | None:
        """The pid of the live beat that published most recently (with a lease: the active one)."""
        live = self.live_pids()
        latest = [m for m in self.collector.snapshot() if m.pid in live and (before is None or m.sent_at <= before)]
        return max(latest, key=lambda m: m.sent_at).pid if latest else None

    def start_first(self, count: int) -> None:
        """Start ``count`` beats: the first alone (it creates the store), the others once it sends."""
        first = self.add_beat()
        self.wait_until_sending(first)
        for _ in range(count - 1):
            self.add_beat()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))
        self.live_pids()

    # ---- operator actions

    def pause(self, job: str) -> PauseWindow:
        from celery_orchestra import pause_job
        from celery_orchestra.store import JobStore

        called = now()
        store = JobStore(self.store.url)
        try:
            pause_job(store, job)
        finally:
            store.close()
        window = PauseWindow(job, called, now())
        self.pauses.append(window)
        self.event("pause", job=job, at=called)
        return window

    def resume(self, window: PauseWindow) -> None:
        from celery_orchestra import resume_job
        from celery_orchestra.store import JobStore

        window.resume_called = now()
        store = JobStore(self.store.url)
        try:
            resume_job(store, window.job)
        finally:
            store.close()
        window.resume_done = now()
        self.event("resume", job=window.job, at=window.resume_called)

    def set_clock_offset(self, offset: float) -> None:
        """Shift the beats' wall clock (``ClockScheduler`` only) to real time + ``offset`` seconds."""
        self.clock_file.write_text(repr(offset))
        at = now()
        self.clock.append((at, offset))
        self.event("clock", offset=offset, at=at)

    def offset_at(self, real: float) -> float:
        offset = 0.0
        for since, value in self.clock:
            if since <= real:
                offset = value
        return offset

    # ---- the end

    def settle(self, missing: Callable[[float], int], timeout: float, margin: float) -> None:
        """Close the observed window now, give the beats up to ``timeout`` s to send every fire time
        owed up to it (``missing(window_end)`` says how many are not yet seen), then stop them
        (SIGTERM) and collect the last messages."""
        self.settled_at = now()
        self.window_end = self.settled_at - margin
        deadline = time.monotonic() + timeout
        left = missing(self.window_end)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = missing(self.window_end)
        self.event("settled", missing=left, waited=round(now() - self.settled_at, 1))
        for beat in self.beats:
            beat.check()
            if beat.pid is not None:
                with contextlib.suppress(RuntimeError):
                    beat.terminate()
        self.collector.stop()

    def read(self, query: str) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(sqlalchemy.text(query)))


def stored_datetime(value: Any) -> datetime:
    """A datetime column read with plain SQL (naive UTC, or an ISO string on SQLite) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime), value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
