"""Quick checks of the fault harness itself (no servers, a second or two): it must not lie."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

import pytest

from celery_orchestra import run_task_id

from .analysis import Analysis, Fire, LedgerRow, task_id
from .harness import PauseWindow, Run
from .proxy import LOOPBACK, ProxyHub


def test_task_ids_are_computed_like_the_scheduler_does() -> None:
    fire = datetime(2026, 12, 3, 12, 0, 7, tzinfo=UTC)
    for job, moment in (("every1", fire), ("once0_1", fire + timedelta(seconds=3)), ("x", fire.replace(microsecond=5))):
        assert task_id(job, moment) == run_task_id(job, moment)


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback echo server (one thread per connection)."""
    server = socket.create_server((LOOPBACK, 0))
    server.settimeout(0.2)
    stopping = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(4096):
                connection.sendall(data)

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stopping.set()
        thread.join(timeout=5)
        server.close()


def _roundtrip(connection: socket.socket, payload: bytes, timeout: float) -> bytes:
    connection.settimeout(timeout)
    connection.sendall(payload)
    try:
        return connection.recv(4096)
    except TimeoutError:
        return b""


def test_proxy_forwards_freezes_drops_and_comes_back(echo_port: int) -> None:
    hub = ProxyHub()
    try:
        proxy = hub.add("echo", echo_port)
        with socket.create_connection((LOOPBACK, proxy.port), timeout=5) as first:
            assert _roundtrip(first, b"one", 5) == b"one"

            proxy.set_mode("freeze")
            assert _roundtrip(first, b"two", 0.5) == b"", "a frozen link must not deliver"
            proxy.set_mode("forward")
            first.settimeout(5)
            assert first.recv(4096) == b"two", "what was held is delivered after the thaw, once"

            proxy.set_mode("drop")
            first.settimeout(5)
            assert first.recv(4096) == b"", "a drop closes open connections"
        with pytest.raises(OSError):
            socket.create_connection((LOOPBACK, proxy.port), timeout=2).close()

        proxy.set_mode("forward")
        deadline = time.monotonic() + 5
        while True:
            try:
                again = socket.create_connection((LOOPBACK, proxy.port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with again:
            assert _roundtrip(again, b"three", 5) == b"three"
    finally:
        hub.close()


def _analysis(clock: list[tuple[float, float]], pauses: list[PauseWindow]) -> tuple[Analysis, float]:
    anchor = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    start = anchor.timestamp() - 5
    run = SimpleNamespace(
        jobs={"two": "every 2 seconds", "once": "once at ..."},
        intervals={"two": 2.0},
        one_off_times={"once": anchor.timestamp() + 9},
        clock=clock,
        started_at=start,
        pauses=pauses,
    )
    analysis = Analysis(cast(Run, run), end_margin=3.0)
    analysis._anchors = {"two": anchor, "once": anchor}
    return analysis, anchor.timestamp()


def _seconds(fires: set[Fire], zero: float) -> list[float]:
    return sorted(fire.at.timestamp() - zero for fire in fires)


def test_owed_fire_times_follow_the_anchor_the_window_and_pauses() -> None:
    analysis, zero = _analysis([(0.0, 0.0)], [])
    pause = PauseWindow("two", pause_called=zero + 6.5, pause_done=zero + 6.6, resume_called=zero + 13.0)
    pause.resume_done = zero + 13.1
    analysis.run.pauses.append(pause)
    owed, forbidden, one_offs = analysis.owed(zero + 20)
    # k x 2 s after the anchor, up to the window's end; nothing from the pause to 2 s after the resume.
    assert _seconds(owed, zero) == [2, 4, 6, 16, 18, 20]
    # Forbidden: from 2 s after the pause returned to the resume call.
    assert _seconds(forbidden, zero) == [10, 12]
    assert _seconds(set(one_offs.values()), zero) == [9]


def test_owed_fire_times_follow_the_shifted_clock() -> None:
    analysis, zero = _analysis([], [])
    # Real time zero+4: +10 s (skips 5..14), zero+8: -10 s (passes 18..-2 again), then no shift.
    analysis.run.clock.extend([(0.0, 0.0), (zero + 4, 10.0), (zero + 8, -10.0), (zero + 12, 0.0)])
    owed, _, one_offs = analysis.owed(zero + 16)
    assert _seconds(owed, zero) == [2, 4, 12, 14, 16, 18]
    assert _seconds(set(one_offs.values()), zero) == [9]  # skipped by the jump, still owed once


def test_a_one_off_is_given_up_only_when_abandoned_right_after_a_kill_in_its_second() -> None:
    analysis, zero = _analysis([(0.0, 0.0)], [])
    once = Fire("once", datetime.fromtimestamp(zero + 9, UTC))
    abandoned = LedgerRow("id", published=False, abandoned=True)
    unconfirmed = LedgerRow("id", published=False, abandoned=False)
    kill_in_its_batch = {101: zero + 9.04}
    assert analysis._given_up_after_a_kill(once, abandoned, kill_in_its_batch)
    # A kill long after the claim, a claim left unconfirmed, a send confirmed, no ledger row: lost.
    assert not analysis._given_up_after_a_kill(once, abandoned, {101: zero + 12.0})
    assert not analysis._given_up_after_a_kill(once, unconfirmed, kill_in_its_batch)
    assert not analysis._given_up_after_a_kill(once, LedgerRow("id", True, False), kill_in_its_batch)
    assert not analysis._given_up_after_a_kill(once, None, kill_in_its_batch)
