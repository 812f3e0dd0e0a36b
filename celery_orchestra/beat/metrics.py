"""The beat process's own Prometheus metrics, served when ``orchestra_metrics_port`` is set.

What only the beat process can measure: how long each tick and each store poll takes, and each
send as it happens (published or refused, and how late). Everything that is in the store (jobs by
state, run counts, the lease) is served by the HTTP API's ``/metrics`` instead, read at scrape
time (:mod:`celery_orchestra.web.metrics`): one source for each number.

prometheus-client comes with the ``web`` extra; setting the port without it stops beat at start
with a message saying what to install. Metrics live in a registry of their own (not the
process-wide default), served by prometheus-client's small HTTP server on a daemon thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final, Literal

from ..errors import BrokerUnavailableError, SettingsError
from ..settings import OrchestraSettings

__all__ = ["LAG_BUCKETS", "BeatMetrics", "counted_send", "start_metrics", "timed"]

#: Seconds; a tick is usually well under a millisecond, a poll a few.
DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Seconds between a run's fire time and its publish (the API's gauge histogram uses the same).
LAG_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class BeatMetrics:
    """The beat's instruments, in their own registry."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        #: Beat's clock (tests drive it): a send's lag is measured on it.
        self.now = now
        self.registry = CollectorRegistry(auto_describe=True)
        self.tick = Histogram(
            "orchestra_beat_tick_seconds", "Duration of beat's ticks.", buckets=DURATION_BUCKETS, registry=self.registry
        )
        self.poll = Histogram(
            "orchestra_beat_store_poll_seconds",
            "Duration of beat's looks at the store for changes made elsewhere.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.sent = Counter("orchestra_beat_runs_sent", "Runs published, per job.", ["job"], registry=self.registry)
        self.failed = Counter(
            "orchestra_beat_runs_send_failed",
            "Runs the broker refused or could not take (each is tried again), per job.",
            ["job"],
            registry=self.registry,
        )
        self.lag = Histogram(
            "orchestra_beat_send_lag_seconds",
            "Publish time minus fire time of each run sent (a run-now request: its request time).",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._server: Any = None

    def sent_run(self, job: str, fire_time: datetime) -> None:
        self.sent.labels(job).inc()
        self.lag.observe(max((self.now() - fire_time).total_seconds(), 0.0))

    def failed_run(self, job: str) -> None:
        self.failed.labels(job).inc()

    def serve(self, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise SettingsError(
                f"setting orchestra_metrics_port: cannot listen on {host}:{port} ({error.strerror or error})"
            ) from None

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def start_metrics(settings: OrchestraSettings | None, *, now: Callable[[], datetime]) -> BeatMetrics | None:
    """Beat's metrics, served on ``orchestra_metrics_host:orchestra_metrics_port`` (``None``: not set)."""
    if settings is None or settings.metrics_port is None:
        return None
    try:
        metrics = BeatMetrics(now)
    except ImportError:
        raise SettingsError(
            "setting orchestra_metrics_port needs prometheus-client: pip install 'celery-orchestra[web]'"
        ) from None
    metrics.serve(settings.metrics_host, settings.metrics_port)
    return metrics


@contextlib.contextmanager
def timed(metrics: BeatMetrics | None, what: Literal["tick", "poll"]) -> Iterator[None]:
    """Time the block into the tick or poll histogram (nothing without metrics)."""
    if metrics is None:
        yield
        return
    with (metrics.tick if what == "tick" else metrics.poll).time():
        yield


def counted_send(metrics: BeatMetrics | None, send: Callable[..., bool], entry: Any, run: Any, producer: Any) -> bool:
    """``send(entry, run, producer)`` (beat's ``send_run``, a subclass's too), counted when there are metrics."""
    if metrics is None:
        return send(entry, run, producer)
    try:
        sent = send(entry, run, producer)
    except BrokerUnavailableError:
        metrics.failed_run(run.job_name)
        raise
    if sent:
        metrics.sent_run(run.job_name, run.fire_time)
    else:
        metrics.failed_run(run.job_name)
    return sent
