"""``celery_orchestra.Scheduler``: Celery beat with a durable store and an O(log n) tick.

This module is Celery's hooks (``setup_schedule``, ``tick``, ``sync``, ``close``, ``info``) and the
glue between beat's parts, each in its own module:

* :mod:`.queue`: jobs that can fire, in a heap keyed by their next *nominal* fire instant; paused,
  disabled, removed, expired and finished jobs are never in it, so no job can block another
  (celery#7649) and an idle tick is a peek at the heap top, whatever the number of jobs;
* :mod:`.catchup`: which instants of a due job to send (a busy beat sends its backlog, a beat
  that was down follows ``orchestra_catch_up``);
* :mod:`.dispatch`: all jobs due at once are sent in one tick through one producer (stock beat
  sends one per tick): claimed in the run ledger, published, then confirmed;
* :mod:`.clock`: a wall-clock jump (NTP step, VM resume) re-evaluates every next fire instant
  instead of stalling or bursting;
* :mod:`.entry`: one job as beat holds it; :mod:`.loading` builds entries from stored rows;
* :mod:`.next_fires`: the store's ``next_run_at`` kept true by a thread of its own.

Every ``orchestra_poll_interval`` the store's revision counter is read (one tiny query) and only
rows changed since are loaded: pause, resume and edits by other processes arrive within about a
second without reloading every job.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from celery import beat

from ..errors import OrchestraError
from ..interfaces import SchedulerStore
from ..jobs.config import celery_default_definitions, load_definitions
from ..ops.remote import OrchestraNode
from ..settings import OrchestraSettings, read_settings
from ..store import JobRecord, JobStore, Progress, RunRecord
from ..store.job_columns import JobColumns
from ..timing.zones import app_zone
from .clock import ClockWatch
from .dispatch import Dispatcher, Planned, publish_run
from .entries import Entries
from .entry import ScheduleEntry
from .loading import EntryLoader
from .next_fires import NextFireWriter
from .queue import FireQueue

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
        self.data: MutableMapping[str, ScheduleEntry] = {}
        self._queue = FireQueue()
        self._clock = ClockWatch()
        self._dispatcher: Dispatcher | None = None
        self._loader = EntryLoader(app, app_zone=UTC, nowfun=self._now)
        self._revision = 0
        self._next_poll = 0.0
        #: Since when beat has been running without a clock jump: fire instants before it were
        #: missed (catch-up policy), those after it at worst delayed.
        self._online_since = datetime.max.replace(tzinfo=UTC)
        self._node: OrchestraNode | None = None
        self._app_zone: tzinfo = UTC
        self._next_fires: NextFireWriter | None = None
        self._closed = False
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
        try:
            self._setup()
        except OrchestraError as error:
            # A configuration mistake is the user's to fix: say what and where, no traceback.
            problems = getattr(error, "problems", None)
            if problems:
                for problem in problems:
                    logger.critical("%s", problem.format())
                logger.critical("celery-orchestra: %d problem(s) in the schedule; beat will not start", len(problems))
            else:
                logger.critical("celery-orchestra: %s", error)
            raise SystemExit(1) from None
        finally:
            gc.freeze()
            if collecting:
                gc.enable()

    def _setup(self) -> None:
        self.settings = read_settings(self.app.conf)
        # Jobs without a zone of their own follow the app's; resolved once, not once per job.
        self._app_zone = app_zone(self.app)
        # Configuration first: a mistake in it must not leave a new, empty store behind.
        definitions = load_definitions(self.app)
        definitions += celery_default_definitions(self.app, definitions)
        store = JobStore(self.settings.store_url(self.schedule_filename))
        self.store = store
        self._dispatcher = Dispatcher(store, send=self.send_run, producer=lambda: self.producer)
        self._next_fires = NextFireWriter(store)
        store.migrate()
        # Whole seconds: anchors are shown to people and interval jobs fire on the anchor's grid.
        now = self._now().replace(microsecond=0)
        self._online_since = now
        self._loader = EntryLoader(self.app, app_zone=self._app_zone, nowfun=self._now)
        self._loader.start_batch()
        # New jobs' first fire times go into their rows: nothing to write for them afterwards.
        report = store.reconcile(definitions, now=now, first_fire=self._loader.first_fire)
        self._revision = store.current_revision()
        self._load_all(report.jobs, now)
        self._loader.end_batch()
        self._next_fires.start()
        self._clock.reset(self.wall_time(), self.monotonic())
        self._next_poll = self.monotonic() + self.settings.poll_interval
        if self.settings.remote_control:
            # `celery control orchestra_pause ...` lands here; the store stays the source of truth.
            self._node = OrchestraNode(self.app, store=store, on_change=self.request_refresh)
            self._node.start()

    # ------------------------------------------------------------------ entries

    def _load_all(self, records: Sequence[JobRecord], now: datetime) -> None:
        """Every stored job, at start-up: each entry left to build when first used (see
        :mod:`.entries`), the queue filled in one go."""
        assert self._next_fires is not None
        entries = Entries(self._loader.build)
        expired: list[str] = []
        pending = self._loader.pending_entries(JobColumns.of(records), now, expired)
        entries.extend_pending(pending)
        self.data = entries
        self._queue.reset((job.name, job.next_fire_at) for job in pending if job.next_fire_at)
        self._next_fires.queue(pending)
        if expired and self.store is not None:
            self.store.set_expired(expired)
        if logger.isEnabledFor(logging.INFO):
            for entry in entries.values():
                logger.info("%s", entry.describe_next_fire(now))

    def _install(self, record: JobRecord, now: datetime) -> None:
        """Load or reload one job from its stored row and (re)schedule it."""
        previous = self.data.get(record.name)
        expired: list[str] = []
        entry = self._loader.load(record, expired)
        if entry is None:
            self._queue.discard(record.name)
            self.data.pop(record.name, None)
            return
        if previous is not None and not previous.runnable and entry.runnable:
            # Resumed or re-enabled: what was missed meanwhile is not replayed.
            entry.resumed_at = max(now, entry.resumed_at or now)
        self.data[record.name] = entry
        if expired and self.store is not None:
            self.store.set_expired(expired)
        self._reschedule(entry, now)

    def _reschedule(self, entry: ScheduleEntry, now: datetime) -> None:
        entry.next_fire_at = self._loader.next_fire(entry, now)
        if entry.next_fire_at is None:
            self._queue.discard(entry.name)
        else:
            self._queue.push(entry.name, entry.next_fire_at)

    def _retry_later(self, entry: ScheduleEntry, now: datetime) -> None:
        assert self._dispatcher is not None
        self._queue.push(entry.name, now + self._dispatcher.retry_delay(entry.name))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_time(), UTC)

    @property
    def unwritten_next_fires(self) -> int:
        """Next fire times still waiting to be written to the store (status tables read them)."""
        return len(self._next_fires) if self._next_fires is not None else 0

    def request_refresh(self) -> None:
        """Make the next tick re-read the store (called by the remote-control thread after a change)."""
        self._next_poll = 0.0

    # ------------------------------------------------------------------ the tick

    def tick(self, event_t: Any = None, min: Any = None, heappop: Any = None, heappush: Any = None) -> float:
        """One pass: notice clock jumps and store changes, send everything due, say how long to sleep.

        Never raises and never returns a negative, NaN or unbounded delay: beat would die or spin.
        """
        dispatcher = self._dispatcher
        if self.store is None or dispatcher is None:
            return self.max_interval
        try:
            now = self._now()
            self._check_clock(now)
            if self.monotonic() >= self._next_poll:
                self._poll_changes(now)
            dispatcher.settle_pending()
            if dispatcher.has_orphans:
                dispatcher.retry_orphans(now, self.data)
            due = self._pop_due(now)
            if due:
                self._dispatch(due, now)
        except Exception:
            logger.exception("celery-orchestra: tick failed; trying again shortly")
            return 1.0
        return self._sleep_seconds()

    def _sleep_seconds(self) -> float:
        settings = self.settings
        assert settings is not None
        limit = float(min(self.max_interval, max(self._next_poll - self.monotonic(), 0.0), settings.poll_interval))
        when = self._queue.next_when()
        if when is None:
            return max(limit, 0.01)
        return max(0.0, min(when - self.wall_time(), limit))

    def _check_clock(self, now: datetime) -> None:
        jump = self._clock.jump(now.timestamp(), self.monotonic())
        if not jump:
            return
        direction = "forward" if jump > 0 else "backward"
        logger.warning(
            "celery-orchestra: the wall clock jumped %s by %.1f s; re-evaluating every job", direction, abs(jump)
        )
        self._queue.clear()
        self._online_since = now
        for entry in self.data.values():
            self._reschedule(entry, now)

    def _poll_changes(self, now: datetime) -> None:
        assert self.store is not None and self.settings is not None
        self._next_poll = self.monotonic() + self.settings.poll_interval
        revision = self.store.current_revision()
        if revision <= self._revision:
            return
        writer = self._next_fires
        if writer is not None:
            if writer.writing.is_set():
                # A chunk of our own is being written: look once it is known to be ours.
                self._next_poll = self.monotonic() + 0.05
                return
            own = writer.own_revisions()
            if all(seen in own for seen in range(self._revision + 1, revision + 1)):
                self._revision = revision  # only our own next-fire writes: nothing to read back
                return
        revision, records = self.store.changes_since(self._revision)
        self._revision = revision
        reloaded: list[ScheduleEntry] = []
        for record in records:
            current = self.data.get(record.name)
            if current is not None and current.reflects(record):
                continue  # our own write coming back
            self._install(record, now)
            entry = self.data.get(record.name)
            if entry is None:
                continue
            reloaded.append(entry)
            if current is not None and current.state != entry.state:
                logger.info("celery-orchestra: job %s is now %s", entry.name, entry.state)
        # Keep the stored next fire time true (status tables read it), e.g. after a resume.
        if self._next_fires is not None:
            self._next_fires.queue(reloaded)

    def _pop_due(self, now: datetime) -> list[ScheduleEntry]:
        due: list[ScheduleEntry] = []
        for name in self._queue.pop_due(now.timestamp()):
            entry = self.data.get(name)
            if entry is not None and entry.runnable and entry.next_fire_at is not None:
                due.append(entry)
        return due

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, due: list[ScheduleEntry], now: datetime) -> None:
        """Send every due run in one batch (see :mod:`.dispatch`), then move each job on."""
        dispatcher = self._dispatcher
        assert dispatcher is not None
        assert self.settings is not None
        planned = [Planned.of(entry, now, online_since=self._online_since, settings=self.settings) for entry in due]
        publication = dispatcher.publish(planned, now)
        if publication is None:  # the database is unreachable: keep every due job, try again soon
            for entry in due:
                self._retry_later(entry, now)
            return
        failed_jobs = publication.failed_jobs
        progress: dict[str, Progress] = {}
        for plan in planned:
            entry = plan.entry
            runs = publication.sent[entry.name]
            entry.total_run_count += runs
            if entry.name in failed_jobs:
                # What was sent is counted; the rest stays due (the ledger skips the sent ones).
                self._retry_later(entry, now)
                if runs:
                    progress[entry.name] = Progress(entry.last_fire_at, runs, entry.next_fire_at)
                continue
            dispatcher.succeeded(entry.name)
            entry.last_fire_at = entry.last_run_at = plan.latest
            self._reschedule(entry, now)
            progress[entry.name] = Progress(entry.last_fire_at, runs, entry.next_fire_at)
        dispatcher.settle(failed=publication.failed, progress=progress, published=publication.published)

    def send_run(self, entry: ScheduleEntry, run: RunRecord, producer: Any) -> bool:
        """Publish one run of ``entry`` with its deterministic task id; False (logged) if the broker refused.

        The one place a message leaves beat: subclasses may wrap it (to trace or count sends).
        """
        return publish_run(self.app, entry, run, producer)

    # ------------------------------------------------------------------ Celery's API

    def get_schedule(self) -> MutableMapping[str, ScheduleEntry]:
        return self.data

    def set_schedule(self, schedule: MutableMapping[str, ScheduleEntry]) -> None:
        self.data = schedule

    schedule = property(get_schedule, set_schedule)

    def sync(self) -> None:
        """Write the queued next fire times; every run itself is written when it is sent."""
        if self._next_fires is None or self._closed:
            return
        try:
            self._next_fires.flush()
        except Exception as error:
            logger.error("celery-orchestra: cannot save next fire times in the store (%s)", error)

    def close(self) -> None:
        """Release the broker connection and the database; safe to call twice (beat does on SIGTERM)."""
        if self._closed:
            return
        try:
            if self._node is not None:
                self._node.stop()
            if self._next_fires is not None:
                self._next_fires.stop()  # writes what is left
            super().close()
        finally:
            self._closed = True
            if self.store is not None:
                self.store.close()

    @property
    def info(self) -> str:
        try:
            settings = self.settings or read_settings(self.app.conf)
            url = settings.store_url(self.schedule_filename)
        except OrchestraError as error:
            return f"invalid settings: {error}"
        return f"    . store -> {JobStore.mask_url(url)}"
