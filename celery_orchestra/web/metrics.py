"""Prometheus metrics of a store, read at each scrape of ``GET /metrics``.

The API process sends nothing and ticks nothing, but everything an operator alerts on is in the
store, where every beat writes it: so each scrape reads it afresh (no state kept between scrapes,
any number of API processes agree, and the numbers survive beat restarts):

* ``orchestra_jobs{state}``: jobs by state (Running, Paused, Disabled...);
* ``orchestra_job_runs_total{job}``: runs sent per job (the job's run count: it only grows);
* ``orchestra_job_last_run_failed{job}``: 1 when the job's newest run failed (needs a result backend);
* ``orchestra_send_lag_seconds``: publish time minus fire time of the scheduled runs sent in the last
  :data:`LAG_WINDOW` (a gauge histogram: the distribution now, not a running total);
* ``orchestra_lease_epoch``, ``orchestra_lease_holder_info{beat,host,pid}``,
  ``orchestra_beat_last_tick_age_seconds{beat,host,role}``: who holds the lease, and how alive each beat is.

Beat's own timings (tick and store-poll durations) exist only inside the beat process: it serves
them itself when ``orchestra_metrics_port`` is set (:mod:`celery_orchestra.beat.metrics`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ..ops import api
from ..ops.liveness import beat_liveness
from ..store import JobStore

__all__ = ["LAG_BUCKETS", "LAG_WINDOW", "ApiMetrics", "lag_buckets"]

#: The send lags shown are of runs fired this recently.
LAG_WINDOW: Final = timedelta(minutes=10)
#: Upper bounds of the send-lag buckets, in seconds: beat sends within its tick (about a second).
LAG_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class ApiMetrics:
    """A registry whose one collector reads ``store`` at every scrape."""

    def __init__(self, store: JobStore, *, celery_app: Any = None, default_timezone: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StoreCollector(store, celery_app, default_timezone))

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format, and its content type (0.0.4: every Prometheus version reads it)."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


def lag_buckets(lags: Sequence[float]) -> list[tuple[str, float]]:
    """Cumulative bucket counts of ``lags`` (seconds) over :data:`LAG_BUCKETS`, ending with ``+Inf``."""
    counts = [(f"{bound:g}", float(sum(1 for lag in lags if lag <= bound))) for bound in LAG_BUCKETS]
    return [*counts, ("+Inf", float(len(lags)))]


class _StoreCollector:
    def __init__(self, store: JobStore, celery_app: Any, default_timezone: str | None) -> None:
        self.store = store
        self.celery_app = celery_app
        self.default_timezone = default_timezone

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only: registering must not read the store

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        jobs = api.list_jobs(
            self.store, include_removed=True, default_timezone=self.default_timezone, now=now, app=self.celery_app
        )
        by_state = GaugeMetricFamily("orchestra_jobs", "Jobs by state.", labels=["state"])
        counts = {state: 0 for state in api.STATES}
        for job in jobs:
            counts[job.state] = counts.get(job.state, 0) + 1
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state

        runs = CounterMetricFamily("orchestra_job_runs", "Runs sent per job (its run count).", labels=["job"])
        for job in jobs:
            runs.add_metric([job.name], job.runs)
        yield runs

        failed = GaugeMetricFamily(
            "orchestra_job_last_run_failed",
            "1 when the job's newest run failed (FAILURE in the result backend), else 0.",
            labels=["job"],
        )
        if self.celery_app is not None:
            for job in jobs:
                outcome = None if job.last_run is None else job.last_run.outcome
                failed.add_metric([job.name], 1 if outcome is not None and outcome.state == "FAILURE" else 0)
        yield failed

        yield self._lag(now)
        yield from self._lease()

    def _lag(self, now: datetime) -> Metric:
        lags = [lag.total_seconds() for lag in self.store.recent_send_lags(now - LAG_WINDOW)]
        family = GaugeHistogramMetricFamily(
            "orchestra_send_lag_seconds",
            f"Publish time minus fire time of the scheduled runs fired in the last {LAG_WINDOW.seconds // 60} minutes.",
        )
        family.add_metric([], lag_buckets(lags), gsum_value=sum(lags))
        return family

    def _lease(self) -> Iterator[Metric]:
        liveness = beat_liveness(self.store)
        epoch = GaugeMetricFamily("orchestra_lease_epoch", "The lease's epoch: it grows at every change of holder.")
        epoch.add_metric([], liveness.epoch)
        yield epoch
        holder = GaugeMetricFamily(
            "orchestra_lease_holder_info", "The beat holding the lease (1), if any.", labels=["beat", "host", "pid"]
        )
        if liveness.active is not None:
            active = liveness.active
            holder.add_metric([active.id, active.host, str(active.pid)], 1)
        yield holder
        ages = GaugeMetricFamily(
            "orchestra_beat_last_tick_age_seconds",
            "Seconds since each beat last recorded a tick.",
            labels=["beat", "host", "role"],
        )
        for beat in liveness.beats:
            ages.add_metric([beat.id, beat.host, beat.role], beat.ticked_ago.total_seconds())
        yield ages
