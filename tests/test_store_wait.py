"""Beat waits for a store that is not up yet (beat/startup.py), and gives up with one line."""

from __future__ import annotations

import logging

import pytest

from celery_orchestra.beat.startup import wait_for_store
from celery_orchestra.errors import StoreError

URL = "postgresql://orchestra:***@db:5432/orchestra"


class FlakyStore:
    """A store whose first ``failures`` migrations fail the way an unreachable server does."""

    safe_url = URL

    def __init__(self, failures: int, *, transient: bool = True) -> None:
        self.failures = failures
        self.transient = transient
        self.migrations = 0

    def check_integrity(self) -> None:
        pass

    def migrate(self) -> None:
        self.migrations += 1
        if self.migrations <= self.failures:
            raise StoreError(
                f"cannot migrate in {URL!r}: connection refused (gave up after 4 attempts)",
                URL,
                transient=self.transient,
            )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def test_an_unreachable_store_is_retried_with_growing_pauses_until_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="celery_orchestra.scheduler")
    store, clock = FlakyStore(5), Clock()
    wait_for_store(store, 60, sleep=clock.sleep, monotonic=clock.monotonic)  # type: ignore[arg-type]
    assert store.migrations == 6
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 8.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5
    assert warnings[0] == (
        f"celery-orchestra: the store is not reachable yet (cannot migrate in {URL!r}: connection refused "
        "(gave up after 4 attempts)); trying again in 1 s (for 60 s more)"
    )
    assert caplog.records[-1].getMessage() == f"celery-orchestra: the store {URL} is reachable now"


def test_beat_gives_up_after_the_wait_saying_how_long_it_waited() -> None:
    store, clock = FlakyStore(1000), Clock()
    with pytest.raises(StoreError) as raised:
        wait_for_store(store, 10, sleep=clock.sleep, monotonic=clock.monotonic)  # type: ignore[arg-type]
    assert clock.now == 10.0
    assert str(raised.value).endswith("(waited 10 s for the store: orchestra_store_wait)")
    assert "\n" not in str(raised.value)


def test_a_mistake_that_waiting_cannot_fix_ends_start_up_at_once() -> None:
    store, clock = FlakyStore(1000, transient=False), Clock()
    with pytest.raises(StoreError):
        wait_for_store(store, 60, sleep=clock.sleep, monotonic=clock.monotonic)  # type: ignore[arg-type]
    assert (store.migrations, clock.sleeps) == (1, [])


def test_no_wait_at_all_with_a_zero_setting() -> None:
    store, clock = FlakyStore(1), Clock()
    with pytest.raises(StoreError):
        wait_for_store(store, 0, sleep=clock.sleep, monotonic=clock.monotonic)  # type: ignore[arg-type]
    assert clock.sleeps == []
