"""``celery_orchestra.Scheduler``: Celery beat with a durable store and an O(log n) tick.

This module is Celery's hooks (``setup_schedule``, ``tick``, ``sync``, ``close``, ``info``) and the
glue between beat's parts, each in its own module:

* :mod:`.queue`: jobs that can fire, in a heap keyed by their next *nominal* fire instant; paused,
  disabled, removed, expired and finished jobs are never in it, so no job can block another
  (celery#7649) and an idle tick is a peek at the heap top, whatever the number of jobs;
* :mod:`.catchup`: which instants of a due job to send (a busy beat sends its backlog, a beat
  that was down follows ``orchestra_catch_up``);
* :mod:`.dispatch`: all jobs due at once are sent in one tick through one producer (stock beat
  sends one per tick): claimed in the run ledger, published, then confirmed; "run now" requests
  go out the same way (:mod:`.manual_runs`), looked for when the poll sees the store change;
* :mod:`.clock`: a wall-clock jump (NTP step, VM resume) re-evaluates every next fire instant
  instead of stalling or bursting;
* :mod:`.entry`: one job as beat holds it; :mod:`.loading` builds entries from stored rows;
* :mod:`.next_fires`: the store's ``next_run_at`` kept true by a thread of its own;
* :mod:`.lease`: one beat per store is active and sends; the others are standbys that keep their
  view of the jobs fresh and take over within ``orchestra_lease_ttl`` of the active one's death;
* :mod:`.stopping`: SIGTERM and SIGINT let the batch in flight finish and settle before beat exits.

* :mod:`.polling`: every ``orchestra_poll_interval`` the store's change counter is read and only
  rows changed since are loaded: pause, resume and edits by other processes arrive within about
  a second without reloading every job.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from celery import beat

from ..errors import OrchestraError, StoreError
from ..interfaces import SchedulerStore
from ..jobs.config import celery_default_definitions, load_definitions
from ..ops.remote import OrchestraNode
from ..settings import MAX_LOOP_INTERVAL_SETTING, OrchestraSettings, read_max_loop_interval, read_settings
from ..store import JobRecord, JobStore, RunRecord
from ..timing.zones import app_zone
from .broker import forget_connection, publish_run
from .celery_api import GivenJobs
from .clock import ClockWatch
from .dispatch import Dispatcher
from .entry import ScheduleEntry
from .housekeeping import Housekeeper
from .lease import LeaseKeeper, beat_identity
from .loading import EntryLoader, log_broken, log_next_fires
from .metrics import BeatMetrics, counted_send, start_metrics, timed
from .next_fires import NextFireWriter
from .outages import store_watch
from .polling import StorePoller
from .startup import refuse_to_start, store_banner, wait_for_store
from .stopping import GracefulStop
from .table import JobTable

__all__ = ["Scheduler"]

logger = logging.getLogger("celery_orchestra.scheduler")


class Scheduler(beat.Scheduler):  # type: ignore[misc]
    """Celery beat scheduler backed by a SQLAlchemy store; see the module docstring."""

    Entry = ScheduleEntry

    #: The clocks, as attributes so that tests can drive time (wall time jumps; monotonic never does).
    wall_time: Callable[[], float] = staticmethod(time.time)
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

    #: Upper bound of one sleep of beat's loop when nothing is due sooner (``beat_max_loop_interval``
    #: and ``--max-interval`` override it). Store changes are looked for more often than this.
    max_interval = 5.0

    def __init__(
        self,
        app: Any,
        schedule: Any = None,
        max_interval: float | None = None,
        Producer: Any = None,
        lazy: bool = False,
        sync_every_tasks: int | None = None,
        **kwargs: Any,
    ) -> None:
        # Nothing here may touch the database, the broker or a thread: beat builds a throw-away
        # lazy instance just to print its banner and never closes it.
        self.schedule_filename: str | None = kwargs.pop("schedule_filename", None)
        self.settings: OrchestraSettings | None = None
        self.store: SchedulerStore | None = None
        self._jobs = JobTable(EntryLoader(app, app_zone=UTC, nowfun=self._now))
        self._clock = ClockWatch()
        self._dispatcher: Dispatcher | None = None
        self._poller: StorePoller | None = None
        #: Since when beat has been running without a clock jump: fire instants before it were
        #: missed (catch-up policy), those after it at worst delayed.
        self._online_since = datetime.max.replace(tzinfo=UTC)
        self._node: OrchestraNode | None = None
        self._app_zone: tzinfo = UTC
        self._next_fires: NextFireWriter | None = None
        self._lease: LeaseKeeper | None = None
        self._housekeeper: Housekeeper | None = None
        self._stop = GracefulStop()
        self._closed = False
        #: The beat's own Prometheus metrics, when ``orchestra_metrics_port`` is set.
        self._metrics: BeatMetrics | None = None
        self._given = GivenJobs(app)  # Celery's add() and update_from_dict(), see .celery_api
        super().__init__(
            app,
            schedule=None,
            max_interval=max_interval,
            Producer=Producer,
            lazy=lazy,
            sync_every_tasks=sync_every_tasks,
            **kwargs,
        )

    # ------------------------------------------------------------------ start-up

    def setup_schedule(self) -> None:
        # Start-up makes a few objects per job and frees almost none: the cyclic collector would
        # walk every one of them again and again (a third of start-up at 100,000 jobs). Off while
        # loading; afterwards the loaded jobs are moved out of its sight (gc.freeze), so no tick
        # later pays for a full collection over them either.
        collecting = gc.isenabled()
        gc.disable()
        self._stop.install()
        try:
            with self._stop.starting():
                self._setup()
                self._metrics = start_metrics(self.settings, now=self._now)
            # From now on add() and update_from_dict() write to the store (see .celery_api).
            first_fire = self._jobs.loader.first_fire
            self._given.started(self.store, first_fire=first_fire, install=self._install_changed, now=self._now)
        except BaseException as error:
            self.close()  # a lease taken, threads started, connections: given back before leaving
            if isinstance(error, OrchestraError):
                refuse_to_start(error)
            raise
        finally:
            gc.freeze()
            if collecting:
                gc.enable()

    def _setup(self) -> None:
        # Configuration first, all of it as `celery orchestra check` sees it (settings, zone, every
        # job): a mistake in it must not leave a new, empty store behind.
        definitions = self._given.with_configured(load_definitions(self.app))
        self.settings = read_settings(self.app.conf)
        self.max_interval = read_max_loop_interval(
            self.max_interval, name=f"{MAX_LOOP_INTERVAL_SETTING} (or --max-interval)"
        )
        # Jobs without a zone of their own follow the app's; resolved once, not once per job.
        self._app_zone = app_zone(self.app)
        definitions += celery_default_definitions(self.app, definitions)
        # Stalled inside a write, this beat's session ends well before its lease would expire.
        store = JobStore(self.settings.store_url(self.schedule_filename), transaction_limit=self.settings.lease_ttl / 2)
        self.store = store
        self._next_fires = NextFireWriter(store)
        outage = store_watch(self.monotonic)  # told once, whichever part notices it first
        self._lease = lease = LeaseKeeper(
            store,
            beat_identity(),
            self.settings.lease_ttl,
            monotonic=self.monotonic,
            lease_now=self.lease_time,
            on_acquired=self._become_active,
            on_lost=self._next_fires.halt,  # a standby writes nothing
            outage=outage,
        )
        self._dispatcher = Dispatcher(
            store,
            send=lambda entry, run, producer: counted_send(self._metrics, self.send_run, entry, run, producer),
            producer=lambda: self.producer,
            lease=lease,
            broker_lost=lambda: forget_connection(self),
        )
        self._housekeeper = Housekeeper(store, self.settings.run_retention, active=lambda: self.active, now=self._now)
        wait_for_store(store, self.settings.store_wait)
        # Whole seconds: anchors are shown to people and interval jobs fire on the anchor's grid.
        now = self._now().replace(microsecond=0)
        self._online_since = now
        loader = self._jobs.loader = EntryLoader(self.app, app_zone=self._app_zone, nowfun=self._now)
        loader.start_batch()
        # New jobs' first fire times go into their rows: nothing to write for them afterwards.
        report = store.reconcile(definitions, now=now, first_fire=loader.first_fire)
        log_broken(report.broken)
        self._poller = StorePoller(
            store,
            self._next_fires,
            interval=self.settings.poll_interval,
            revision=store.current_revision(),
            monotonic=self.monotonic,
            outage=outage,
        )
        self._load_all(report.jobs, now)
        loader.end_batch()
        self._clock.reset(self.wall_time(), self.monotonic())
        lease.tend()
        self._housekeeper.start()
        if self.settings.remote_control:
            # `celery control orchestra_pause ...` lands here; the store stays the source of truth.
            self._node = OrchestraNode(self.app, store=store, on_change=self.request_refresh)
            self._node.start()

    # ------------------------------------------------------------------ entries

    def _load_all(self, records: Sequence[JobRecord], now: datetime) -> None:
        """Every stored job, at start-up: each entry left to build when first used (see
        :mod:`.entries`), the queue filled in one go."""
        assert self._next_fires is not None
        loaded = self._jobs.load_all(records, now)
        self._next_fires.queue(loaded.pending)
        if loaded.expired and self.store is not None:
            self.store.set_expired(loaded.expired)
        log_next_fires(loaded.entries, now)

    def _install(self, record: JobRecord, now: datetime) -> ScheduleEntry | None:
        """Load or reload one job from its stored row and (re)schedule it."""
        entry, expired = self._jobs.install(record, now)
        if expired and self.store is not None and self.active:  # a standby writes nothing
            try:
                self.store.set_expired(expired)
            except Exception as error:  # the rest of the poll's changes must still be installed
                logger.error("celery-orchestra: cannot mark %s expired in the store (%s)", record.name, error)
        return entry

    def _ensure_connected(self) -> Any:
        # Celery's retries up to broker_connection_max_retries times: the pass would stop for minutes
        # (no lease renewal). Fail fast: the dispatcher holds the due runs and tries again in a second.
        return self.connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=5)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_time(), UTC)

    def lease_time(self) -> datetime | None:
        """The clock the lease is stamped with: ``None``, the database's (tests return their fake clock)."""
        return None

    @property
    def active(self) -> bool:
        """This beat holds the store's lease: it is the one that sends."""
        return self._lease is not None and self._lease.active

    def _become_active(self) -> None:
        """Took the lease over: read what the previous holder wrote, recover its claims, keep next fires."""
        assert self._poller is not None and self._dispatcher is not None and self._next_fires is not None
        self._poller.request()
        self._dispatcher.recover_soon()
        self._next_fires.start()

    @property
    def unwritten_next_fires(self) -> int:
        """Next fire times still waiting to be written to the store (status tables read them)."""
        return len(self._next_fires) if self._next_fires is not None else 0

    def request_refresh(self) -> None:
        """Make the next tick re-read the store (called by the remote-control thread after a change)."""
        if self._poller is not None:
            self._poller.request()

    # ------------------------------------------------------------------ the tick

    def tick(self, event_t: Any = None, min: Any = None, heappop: Any = None, heappush: Any = None) -> float:
        """One pass: look after the lease, notice clock jumps and store changes, send everything due.

        Never raises (but for a stop asked for during the pass, once the pass is done) and never
        returns a negative, NaN or unbounded delay: beat would die or spin.
        """
        with timed(self._metrics, "tick"):
            return self._tick()

    def _tick(self) -> float:
        dispatcher = self._dispatcher
        lease = self._lease
        if self.store is None or dispatcher is None or lease is None:
            return self.max_interval
        with self._stop.deferred():
            try:
                now = self._now()
                self._check_clock(now)
                lease.tend()
                if self._poller is not None and self._poller.due:
                    self._poll_changes(now)
                if lease.active:
                    self._send_due(dispatcher, now)
                else:
                    dispatcher.settle_pending()  # what it had in flight when it lost the lease
            except StoreError as error:  # its message says it all (the database, what, what to do)
                logger.error("celery-orchestra: tick failed: %s; trying again shortly", error)
                return 1.0
            except Exception:
                logger.exception("celery-orchestra: tick failed; trying again shortly")
                return 1.0
            return self._sleep_seconds()

    def _send_due(self, dispatcher: Dispatcher, now: datetime) -> None:
        dispatcher.settle_pending()
        dispatcher.recover_when_due(now, self.data, self.monotonic())
        if self._poller is not None:  # "run now" requests, looked for when the poll saw the store change
            dispatcher.manual.send_requested(self.data, now, revision=self._poller.others_revision)
        due = self._jobs.take_due(now)
        if due:
            assert self.settings is not None
            with self._jobs.sending(due):
                dispatcher.dispatch(due, online_since=self._online_since, settings=self.settings)

    def _sleep_seconds(self) -> float:
        assert self._poller is not None and self._lease is not None
        limit = float(min(self.max_interval, self._poller.sleep_limit(), self._lease.sleep_limit()))
        when = self._jobs.next_when()
        if when is None or not self._lease.active:
            return max(limit, 0.01)
        return max(0.0, min(when - self.wall_time(), limit))

    def _check_clock(self, now: datetime) -> None:
        if not self._clock.jumped(now.timestamp(), self.monotonic()):
            return
        self._online_since = now
        self._jobs.reschedule_all(now)

    def _poll_changes(self, now: datetime) -> None:
        assert self._poller is not None
        with timed(self._metrics, "poll"):
            changes = self._poller.changes()
        self._install_changed(changes, now)

    def _install_changed(self, records: Sequence[JobRecord], now: datetime) -> None:
        reloaded: list[ScheduleEntry] = []
        for record in records:
            current = self.data.get(record.name)
            if current is not None and current.reflects(record):
                continue  # our own write coming back
            entry = self._install(record, now)
            if entry is None:
                continue
            reloaded.append(entry)
            if current is not None and current.state != entry.state:
                logger.info("celery-orchestra: job %s is now %s", entry.name, entry.state)
        # Keep the stored next fire time true (status tables read it), e.g. after a resume.
        if self._next_fires is not None:
            self._next_fires.queue(reloaded)

    def send_run(self, entry: ScheduleEntry, run: RunRecord, producer: Any) -> bool:
        """Publish one run of ``entry`` with its deterministic task id; False (logged) if the broker refused.

        The one place a message leaves beat: subclasses may wrap it (to trace or count sends).
        Raises :class:`~celery_orchestra.errors.BrokerUnavailableError` when the broker cannot be
        reached (the run is held and sent once it answers again).
        """
        return publish_run(self.app, entry, run, producer)

    # ------------------------------------------------------------------ Celery's API

    def get_schedule(self) -> MutableMapping[str, ScheduleEntry]:
        return self._jobs.entries

    def set_schedule(self, schedule: MutableMapping[str, ScheduleEntry]) -> None:
        self._jobs.entries = schedule

    schedule = data = property(get_schedule, set_schedule)

    def add(self, **kwargs: Any) -> ScheduleEntry | None:
        """Celery's: one job, stored and scheduled like a ``beat_schedule`` entry (see :mod:`.celery_api`);
        its entry (``None`` before start-up: it joins the configured jobs then)."""
        return self._jobs.entries.get(self._given.add(kwargs))

    def update_from_dict(self, dict_: Mapping[str, Any]) -> None:
        """Celery's: the jobs of a ``beat_schedule``-like mapping, stored and scheduled as ``add`` does."""
        self._given.update_from_dict(dict_)

    def sync(self) -> None:
        """Write the queued next fire times (the active beat's); every run itself is written when it is sent."""
        if self._next_fires is None or self._closed or not self.active:
            return
        with self._stop.deferred():  # Celery calls this between passes: no stop under the write
            try:
                self._next_fires.flush()
            except Exception as error:
                logger.error("celery-orchestra: cannot save next fire times in the store (%s)", error)

    def close(self) -> None:
        """Settle, hand the lease over, release the broker and the database; safe to call twice (beat does)."""
        if self._closed:
            return
        try:
            for thread in (self._node, self._housekeeper):
                if thread is not None:
                    thread.stop()
            if self._next_fires is not None:
                self._next_fires.stop(write_pending=self.active)
            if self._dispatcher is not None:
                self._dispatcher.settle_pending()  # late, if this beat lost the lease meanwhile
            if self._lease is not None:
                self._lease.release()  # a standby takes over now, not a lease's time later
            if self._metrics is not None:
                self._metrics.stop()
            super().close()
        finally:
            self._closed = True
            self._stop.uninstall()
            if self.store is not None:
                self.store.close()

    @property
    def info(self) -> str:
        return store_banner(self.app, self.settings, self.schedule_filename)
