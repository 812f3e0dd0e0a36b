"""Beat's own Prometheus metrics (``orchestra_metrics_port``): ticks, store polls and sends, measured
by the real Scheduler on a fake clock and read over HTTP from the server beat starts."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery import Celery

from celery_orchestra.beat.metrics import BeatMetrics
from celery_orchestra.errors import SettingsError
from celery_orchestra.settings import read_settings
from tests.test_scheduler import FakeClock, Harness, every


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(f"sqlite:///{tmp_path / 'orchestra.db'}", FakeClock(), tmp_path)
    try:
        yield h
    finally:
        h.close()


def scrape(metrics: BeatMetrics) -> dict[str, float]:
    assert metrics.port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_beat_serves_its_tick_poll_and_send_metrics(harness: Harness) -> None:
    scheduler = harness.start({"fast": every(10), "slow": every(60)}, orchestra_metrics_port=0)
    metrics = scheduler._metrics
    assert metrics is not None
    harness.run_for(125, scheduler)
    values = scrape(metrics)
    assert values['orchestra_beat_runs_sent_total{job="fast"}'] == len(harness.outbox.fires("fast")) == 12
    assert values['orchestra_beat_runs_sent_total{job="slow"}'] == len(harness.outbox.fires("slow")) == 2
    assert values["orchestra_beat_send_lag_seconds_count"] == 14
    assert values['orchestra_beat_send_lag_seconds_bucket{le="0.1"}'] == 14  # the fake clock sends on time
    assert values["orchestra_beat_tick_seconds_count"] >= 14
    assert values["orchestra_beat_store_poll_seconds_count"] >= 100  # about once a second
    assert "orchestra_beat_runs_send_failed_total" not in " ".join(values)
    port = metrics.port
    scheduler.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_refused_send_is_counted_as_failed(harness: Harness) -> None:
    scheduler = harness.start({"fast": every(10)}, orchestra_metrics_port=0)
    scheduler.app.send_task = lambda *args, **kwargs: (_ for _ in ()).throw(ValueError("refused"))  # type: ignore[method-assign]
    harness.run_for(15, scheduler)
    assert scheduler._metrics is not None
    values = scrape(scheduler._metrics)
    assert values['orchestra_beat_runs_send_failed_total{job="fast"}'] >= 1
    assert 'orchestra_beat_runs_sent_total{job="fast"}' not in values


def test_without_the_setting_nothing_is_served(harness: Harness) -> None:
    scheduler = harness.start({"fast": every(10)})
    harness.run_for(15, scheduler)
    assert scheduler._metrics is None
    assert harness.outbox.fires("fast")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"orchestra_metrics_port": "9100"},
            "orchestra_metrics_port must be a port number from 0 to 65535, got '9100'",
        ),
        ({"orchestra_metrics_port": 70000}, "orchestra_metrics_port must be a port number"),
        ({"orchestra_metrics_port": 9100, "orchestra_metrics_host": ""}, "orchestra_metrics_host must be an address"),
    ],
)
def test_bad_metrics_settings_are_refused(settings: dict[str, object], message: str) -> None:
    app = Celery("metrics_settings", set_as_current=False)
    app.conf.update(settings)
    with pytest.raises(SettingsError, match=message):
        read_settings(app.conf)


def test_a_taken_port_is_a_clear_error() -> None:
    first = BeatMetrics(lambda: datetime.now(UTC))
    first.serve("127.0.0.1", 0)
    try:
        with pytest.raises(SettingsError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            BeatMetrics(lambda: datetime.now(UTC)).serve("127.0.0.1", first.port or 0)
    finally:
        first.stop()
