"""``celery_orchestra.Scheduler``: Celery beat with a durable store and an O(log n) tick.

How a tick works, and why:

* Jobs that can fire sit in a min-heap keyed by their next *nominal* fire instant (UTC). Paused,
  disabled, removed, expired and finished jobs are never in the heap, so no job can block another
  (celery#7649) and an idle tick is a peek at the heap top, whatever the number of jobs.
* Heap items carry a generation number; re-scheduling a job pushes a new item and bumps the
  generation, and stale items are dropped when they surface (lazy deletion, no O(n) removal).
* All jobs due at once are dispatched in one tick through one producer (stock beat sends one per
  tick). Each run is first *claimed* in the run ledger, whose key is (job, nominal fire instant),
  in one transaction for the whole batch; only claimed runs are sent, and the sent ones are then
  confirmed together with the jobs' progress. So two beats on one database never both send a fire
  instant. A send that fails is released again and retried later: it does not count as a run. A
  beat killed between claiming and confirming leaves unconfirmed claims: a repeating job's is
  taken over after ``CLAIM_TIMEOUT`` and sent (at least once), a one-off's never is (at most once:
  a one-off never runs twice).
* Task ids are ``uuid5(job, fire instant)``: a duplicate is recognisable downstream.
* Every ``orchestra_poll_interval`` the store's revision counter is read (one tiny query) and only
  rows changed since are loaded: pause, resume and edits by other processes arrive within about a
  second without reloading every job.
* Wall time is compared with monotonic time on every tick; a jump (NTP step, VM resume) triggers a
  re-evaluation of every next fire instant instead of a stall or a burst.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from celery import beat
from celery.schedules import schedstate
from celery.utils.time import humanize_seconds

from .codec import kind_of_data, max_runs_of_data, schedule_from_data
from .config import ConfigError, load_definitions
from .definitions import JobDefinition
from .errors import OrchestraError
from .firing import fire_after, missed_fires
from .remote import OrchestraNode
from .schedule import NEVER_SECONDS, Timing
from .settings import OrchestraSettings, SettingsError, read_settings
from .states import STATE_RUNNING, has_finished, job_state, ran_since_anchor
from .store import CLAIM_TIMEOUT, JobRecord, JobStore, RunRecord, StoreError
from .zones import resolve_zone

__all__ = ["ScheduleEntry", "Scheduler", "run_task_id"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: Namespace of the deterministic task ids (``uuid5(namespace, "job\\0fire-instant")``).
TASK_ID_NAMESPACE = uuid.UUID("6f1b0c1e-5a0e-4a4f-9c53-0c4e6b1d7a10")

#: How many next fire times one tick writes to the store at most (see _persist_next_fires).
NEXT_FIRE_WRITE_CHUNK = 5_000

#: A wall-clock jump larger than this (seconds, against monotonic time) re-evaluates the schedule.
CLOCK_JUMP_THRESHOLD = 5.0

#: Retry delays (seconds) for a job whose send failed, growing with consecutive failures.
SEND_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def run_task_id(job_name: str, fire: datetime) -> str:
    """The task id of the run of ``job_name`` meant for the nominal instant ``fire``."""
    return str(uuid.uuid5(TASK_ID_NAMESPACE, f"{job_name}\0{fire.astimezone(UTC).isoformat()}"))


class ScheduleEntry(beat.ScheduleEntry):  # type: ignore[misc]
    """A beat entry that also knows the job's orchestra state.

    Celery's ``_next_instance`` rebuilds an entry from ``vars(entry)``, so every extra attribute is
    also a keyword of ``__init__``. ``last_run_at`` keeps Celery's meaning (the reference for
    ``is_due``); ``last_fire_at`` is the nominal instant of the last run, ``None`` before the first.
    """

    def __init__(
        self,
        name: str | None = None,
        task: str | None = None,
        last_run_at: datetime | None = None,
        total_run_count: int | None = None,
        schedule: Any = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        relative: bool = False,
        app: Any = None,
        *,
        timezone: str | None = None,
        tags: Sequence[str] = (),
        enabled: bool = True,
        paused: bool = False,
        removed: bool = False,
        expired: bool = False,
        max_runs: int | None = None,
        anchor: datetime | None = None,
        last_fire_at: datetime | None = None,
        next_fire_at: datetime | None = None,
        resumed_at: datetime | None = None,
        source: str = "beat_schedule",
        kind: str = "cyclic",
        schedule_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            name=name,
            task=task,
            last_run_at=last_run_at,
            total_run_count=total_run_count,
            schedule=schedule,
            args=args,
            kwargs=kwargs,
            options=options,
            relative=relative,
            app=app,
        )
        self.timezone = timezone
        self.tags = tuple(tags)
        self.enabled = enabled
        self.paused = paused
        self.removed = removed
        self.expired = expired
        self.max_runs = max_runs
        self.anchor = anchor if anchor is not None else datetime.now(UTC)
        self.last_fire_at = last_fire_at
        self.next_fire_at = next_fire_at
        self.resumed_at = resumed_at
        self.source = source
        self.kind = kind
        self.schedule_data = dict(schedule_data or {})

    @property
    def finished(self) -> bool:
        return has_finished(self.max_runs, self.last_fire_at, self.anchor)

    @property
    def state(self) -> str:
        return job_state(
            removed=self.removed,
            enabled=self.enabled,
            paused=self.paused,
            expired=self.expired,
            finished=self.finished,
        )

    @property
    def runnable(self) -> bool:
        return self.state == STATE_RUNNING

    def is_due(self) -> schedstate:
        if not self.runnable:
            return schedstate(False, NEVER_SECONDS)
        return super().is_due()

    def __repr__(self) -> str:
        return f"<ScheduleEntry: {self.name} {self.task} {self.schedule!r} state={self.state}>"


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
        self.store: JobStore | None = None
        self._queue: list[tuple[float, int, str, int]] = []
        self._generation: dict[str, int] = {}
        self._tiebreak = itertools.count()
        self._revision = 0
        self._next_poll = 0.0
        self._clock: tuple[float, float] | None = None
        #: Since when beat has been running without a clock jump: fire instants before it were
        #: missed (catch-up policy), those after it at worst delayed.
        self._online_since = datetime.max.replace(tzinfo=UTC)
        self._send_failures: dict[str, int] = {}
        #: Runs claimed but never confirmed by another beat, and when to look at them again.
        self._orphans: dict[tuple[str, datetime], datetime] = {}
        #: Progress and confirmations whose store write failed, retried on the next tick.
        self._unsaved: tuple[dict[str, tuple[datetime | None, int, datetime | None]], list[RunRecord]] = ({}, [])
        self._node: OrchestraNode | None = None
        self._app_zone: tzinfo = UTC
        self._unsaved_next_fires: dict[str, datetime | None] = {}
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
        try:
            self._setup()
        except (ConfigError, SettingsError, StoreError, OrchestraError) as error:
            # A configuration mistake is the user's to fix: say what and where, no traceback.
            problems = getattr(error, "problems", None)
            if problems:
                for problem in problems:
                    logger.critical("%s", problem.format())
                logger.critical("celery-orchestra: %d problem(s) in the schedule; beat will not start", len(problems))
            else:
                logger.critical("celery-orchestra: %s", error)
            raise SystemExit(1) from None

    def _setup(self) -> None:
        self.settings = read_settings(self.app.conf)
        # Jobs without a zone of their own follow the app's; resolved once, not once per job.
        configured_zone = self.app.conf.timezone
        self._app_zone = resolve_zone(configured_zone) if configured_zone else UTC
        # Configuration first: a mistake in it must not leave a new, empty store behind.
        definitions = self._definitions()
        store = JobStore(self.settings.store_url(self.schedule_filename))
        self.store = store
        store.migrate()
        # Whole seconds: anchors are shown to people and interval jobs fire on the anchor's grid.
        now = self._now().replace(microsecond=0)
        self._online_since = now
        report = store.reconcile(definitions, now=now, kind_of=_kind_of, max_runs_of=_max_runs_of)
        self._revision = store.current_revision()
        self.data: dict[str, ScheduleEntry] = {}
        self._queue = []
        announce = logger.isEnabledFor(logging.INFO)
        for record in report.jobs:
            self._install(record, now, announce=announce)
        self._persist_next_fires(self.data.values())
        self._clock = (self.wall_time(), self.monotonic())
        self._next_poll = self.monotonic() + self.settings.poll_interval
        if self.settings.remote_control:
            # `celery control orchestra_pause ...` lands here; the store stays the source of truth.
            self._node = OrchestraNode(self.app, store=store, on_change=self.request_refresh)
            self._node.start()

    def _definitions(self) -> list[JobDefinition]:
        definitions = load_definitions(self.app)
        names = {d.name for d in definitions}
        # Celery's own housekeeping entry (stock beat's install_default_entries), stored like any job.
        if (
            self.app.conf.result_expires
            and not self.app.backend.supports_autoexpire
            and "celery.backend_cleanup" not in names
        ):
            definitions.append(
                JobDefinition(
                    name="celery.backend_cleanup",
                    task="celery.backend_cleanup",
                    schedule_data={
                        "type": "crontab",
                        "minute": "0",
                        "hour": "4",
                        "day_of_week": "*",
                        "day_of_month": "*",
                        "month_of_year": "*",
                    },
                    options={"expires": 12 * 3600},
                    source="celery default",
                )
            )
        return definitions

    # ------------------------------------------------------------------ entries

    def _entry_from_record(self, record: JobRecord) -> ScheduleEntry:
        zone = resolve_zone(record.timezone) if record.timezone else self._app_zone
        # The schedules read the scheduler's clock: Celery's crontab (before 5.5) compares its
        # last run with "now", and tests drive time through wall_time.
        schedule = schedule_from_data(
            record.schedule_data, tz=zone, anchor=record.anchor, app=self.app, nowfun=self._now
        )
        return ScheduleEntry(
            name=record.name,
            task=record.task,
            last_run_at=record.last_run_at or record.anchor,
            total_run_count=record.total_run_count,
            schedule=schedule,
            args=tuple(record.args),
            kwargs=dict(record.kwargs),
            options=dict(record.options),
            app=self.app,
            timezone=record.timezone,
            tags=tuple(record.tags),
            enabled=record.enabled,
            paused=record.paused,
            removed=record.removed,
            expired=record.expired,
            max_runs=record.max_runs,
            anchor=record.anchor,
            last_fire_at=record.last_run_at,
            next_fire_at=record.next_run_at,
            resumed_at=record.resumed_at,
            source=record.source,
            kind=record.kind,
            schedule_data=record.schedule_data,
        )

    def _install(self, record: JobRecord, now: datetime, *, announce: bool = False) -> None:
        """Load or reload one job from its stored row and (re)schedule it."""
        previous = self.data.get(record.name)
        try:
            entry = self._entry_from_record(record)
        except Exception as error:  # a row edited into nonsense must not stop the other jobs
            logger.error(
                "celery-orchestra: job %r cannot be loaded from the store and is skipped: %s", record.name, error
            )
            self._unschedule(record.name)
            self.data.pop(record.name, None)
            return
        if previous is not None and not previous.runnable and entry.runnable:
            # Resumed or re-enabled: what was missed meanwhile is not replayed.
            entry.resumed_at = max(now, entry.resumed_at or now)
        self.data[record.name] = entry
        self._mark_expired_if_so(entry)
        self._reschedule(entry, now)
        if announce:
            self._announce(entry, now)

    def _mark_expired_if_so(self, entry: ScheduleEntry) -> None:
        schedule = entry.schedule
        if (
            isinstance(schedule, Timing)
            and not entry.expired
            and not ran_since_anchor(entry.last_fire_at, entry.anchor)
            and schedule.is_expired
        ):
            entry.expired = True
            logger.warning(
                "celery-orchestra: job %s is expired: %r had already passed when it was registered; it will not run",
                entry.name,
                schedule.expression,
            )
            if self.store is not None:
                self.store.set_expired([entry.name])

    def _next_fire(self, entry: ScheduleEntry, now: datetime) -> datetime | None:
        if not entry.runnable:
            return None
        reference = entry.last_fire_at or entry.anchor
        if entry.resumed_at is not None and entry.resumed_at > reference:
            reference = entry.resumed_at
        # Never look for fires after a reference in the future (after a clock step backwards the
        # last run can be "later" than now); the ledger keeps a repeated instant from being resent.
        return fire_after(entry.schedule, min(reference, now))

    def _reschedule(self, entry: ScheduleEntry, now: datetime) -> None:
        entry.next_fire_at = self._next_fire(entry, now)
        if entry.next_fire_at is None:
            self._unschedule(entry.name)
            return
        self._requeue(entry, entry.next_fire_at)

    def _unschedule(self, name: str) -> None:
        # Bumping the generation turns any heap item of this job stale.
        self._generation[name] = self._generation.get(name, 0) + 1

    def _announce(self, entry: ScheduleEntry, now: datetime) -> None:
        if entry.next_fire_at is None:
            logger.info("celery-orchestra: job %s (%s) is %s; it will not be sent", entry.name, entry.task, entry.state)
            return
        local = entry.next_fire_at.astimezone(entry.schedule.tz)
        wait = max((entry.next_fire_at - now).total_seconds(), 0.0)
        logger.info(
            "celery-orchestra: job %s (%s) scheduled to run at %s (%s)",
            entry.name,
            entry.task,
            local.isoformat(sep=" ", timespec="seconds"),
            humanize_seconds(wait, prefix="in ", now="now"),
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_time(), UTC)

    def request_refresh(self) -> None:
        """Make the next tick re-read the store (called by the remote-control thread after a change)."""
        self._next_poll = 0.0

    def _persist_next_fires(self, entries: Iterable[ScheduleEntry]) -> None:
        """Queue next fire times for the store (status tables read them); written by ``tick``.

        Written a chunk per tick rather than here, so that start-up and dispatch never wait for
        100,000 row updates that nothing in scheduling depends on.
        """
        for entry in entries:
            self._unsaved_next_fires[entry.name] = entry.next_fire_at

    def _flush_next_fires(self, limit: int = NEXT_FIRE_WRITE_CHUNK) -> None:
        if not self._unsaved_next_fires or self.store is None:
            return
        chunk = dict(itertools.islice(self._unsaved_next_fires.items(), limit))
        before = self.store.current_revision()
        self.store.set_next_run(chunk)
        for name in chunk:
            if self._unsaved_next_fires.get(name) == chunk[name]:
                del self._unsaved_next_fires[name]
        if before == self._revision and self.store.current_revision() == before + 1:
            # Nobody else wrote in between: our own write need not come back through the poll.
            self._revision = before + 1

    # ------------------------------------------------------------------ the tick

    def tick(self, event_t: Any = None, min: Any = None, heappop: Any = None, heappush: Any = None) -> float:
        """One pass: notice clock jumps and store changes, send everything due, say how long to sleep.

        Never raises and never returns a negative, NaN or unbounded delay: beat would die or spin.
        """
        if self.store is None:
            return self.max_interval
        try:
            now = self._now()
            self._check_clock(now)
            if self.monotonic() >= self._next_poll:
                self._poll_changes(now)
            if self._unsaved != ({}, []):
                self._settle(failed=[], progress={}, published=[])
            if self._orphans:
                self._retry_orphans(now)
            due = self._pop_due(now)
            if due:
                self._dispatch(due, now)
            self._flush_next_fires()
        except Exception:
            logger.exception("celery-orchestra: tick failed; trying again shortly")
            return 1.0
        return self._sleep_seconds()

    def _sleep_seconds(self) -> float:
        settings = self.settings
        assert settings is not None
        limit = float(min(self.max_interval, max(self._next_poll - self.monotonic(), 0.0), settings.poll_interval))
        queue = self._queue
        while queue and self._generation.get(queue[0][2]) != queue[0][3]:
            heapq.heappop(queue)
        if not queue:
            return max(limit, 0.01)
        return max(0.0, min(queue[0][0] - self.wall_time(), limit))

    def _check_clock(self, now: datetime) -> None:
        wall, mono = now.timestamp(), self.monotonic()
        previous = self._clock
        self._clock = (wall, mono)
        if previous is None:
            return
        jump = (wall - previous[0]) - (mono - previous[1])
        if abs(jump) > CLOCK_JUMP_THRESHOLD:
            direction = "forward" if jump > 0 else "backward"
            logger.warning(
                "celery-orchestra: the wall clock jumped %s by %.1f s; re-evaluating every job", direction, abs(jump)
            )
            self._queue = []
            self._online_since = now
            for entry in self.data.values():
                self._reschedule(entry, now)

    def _poll_changes(self, now: datetime) -> None:
        assert self.store is not None and self.settings is not None
        self._next_poll = self.monotonic() + self.settings.poll_interval
        revision = self.store.current_revision()
        if revision <= self._revision:
            return
        revision, records = self.store.changes_since(self._revision)
        self._revision = revision
        reloaded: list[ScheduleEntry] = []
        for record in records:
            current = self.data.get(record.name)
            if current is not None and _same_run_state(current, record):
                continue  # our own write coming back
            self._install(record, now)
            entry = self.data.get(record.name)
            if entry is None:
                continue
            if entry.next_fire_at != record.next_run_at:
                reloaded.append(entry)
            if current is not None and current.state != entry.state:
                logger.info("celery-orchestra: job %s is now %s", entry.name, entry.state)
        # Keep the stored next fire time true (status tables read it), e.g. after a resume.
        self._persist_next_fires(reloaded)

    def _pop_due(self, now: datetime) -> list[ScheduleEntry]:
        horizon = now.timestamp()
        queue = self._queue
        due: list[ScheduleEntry] = []
        while queue and queue[0][0] <= horizon:
            _, _, name, generation = heapq.heappop(queue)
            if self._generation.get(name) != generation:
                continue
            self._generation[name] = generation + 1  # consumed; a re-push gets a fresh generation
            entry = self.data.get(name)
            if entry is not None and entry.runnable and entry.next_fire_at is not None:
                due.append(entry)
        return due

    # ------------------------------------------------------------------ dispatch

    def _plan(self, entry: ScheduleEntry, now: datetime) -> tuple[list[datetime], datetime]:
        """Which nominal instants of a due job to send now, and the latest instant dealt with.

        A backlog that built up while beat was running, none of it older than
        ``orchestra_misfire_grace``, is sent in full: beat was merely busy. Anything else (beat
        was down, the clock jumped, or a run is later than the grace) follows
        ``orchestra_catch_up``: ``once`` sends the latest instant, ``skip`` sends it only if it
        is within the grace, ``all`` sends the latest ``orchestra_catch_up_limit`` of them.
        Every run not sent is logged.
        """
        settings = self.settings
        assert settings is not None and entry.next_fire_at is not None
        first = entry.next_fire_at
        limit = settings.catch_up_limit if entry.max_runs is None else entry.max_runs
        backlog = missed_fires(entry.schedule, first, now, limit)
        latest = backlog.latest[-1] if backlog.latest else first
        grace = timedelta(seconds=settings.misfire_grace)
        if first >= self._online_since and now - first <= grace:
            if backlog.count > len(backlog.latest):
                logger.warning(
                    "celery-orchestra: job %s fell behind by %d run(s); sending the latest %d",
                    entry.name,
                    backlog.count,
                    len(backlog.latest),
                )
            return backlog.latest, latest

        if settings.catch_up == "all":
            fires = backlog.latest
        elif settings.catch_up == "skip":
            fires = [latest] if now - latest <= grace else []
        else:
            fires = [latest]
        if backlog.count == 1 and fires:
            return fires, latest  # a single run, late but sent: nothing was missed
        how_many = f"{'at least ' if backlog.at_least else ''}{backlog.count}"
        if fires:
            logger.warning(
                "celery-orchestra: job %s missed %s run(s); catch-up %r: sending %d, the last for %s",
                entry.name,
                how_many,
                settings.catch_up,
                len(fires),
                fires[-1].isoformat(),
            )
        else:
            logger.warning("celery-orchestra: job %s: skipped %s missed run(s) (catch-up 'skip')", entry.name, how_many)
        return fires, latest

    def _dispatch(self, due: list[ScheduleEntry], now: datetime) -> None:
        """Send every due run in one batch: claim in the ledger, publish, then confirm.

        Delivery across a crash: a repeating job's run is sent *at least* once (a claim left
        unconfirmed by a beat that died is taken over after ``CLAIM_TIMEOUT`` and sent with the
        same task id), a one-off's *at most* once (its claim is never taken over: a one-off never
        runs twice). A graceful stop (SIGTERM) in the middle of a batch settles the batch first.
        """
        assert self.store is not None
        plans: list[tuple[ScheduleEntry, list[datetime], datetime]] = []
        repeating: list[RunRecord] = []
        one_offs: list[RunRecord] = []
        for entry in due:
            fires, last_considered = self._plan(entry, now)
            plans.append((entry, fires, last_considered))
            batch = one_offs if entry.max_runs is not None else repeating
            batch.extend(RunRecord(entry.name, fire, now, run_task_id(entry.name, fire), None) for fire in fires)
        records = {(r.job_name, r.fire_time): r for r in repeating + one_offs}

        try:
            claimed = self._claim(repeating, take_over=True) | self._claim(one_offs, take_over=False)
            unclaimed = [r for key, r in records.items() if key not in claimed]
            unconfirmed = (
                {(r.job_name, r.fire_time) for r in self.store.unconfirmed_runs(unclaimed)} if unclaimed else set()
            )
        except Exception as error:  # the database is unreachable: keep every due job, try again soon
            logger.error(
                "celery-orchestra: cannot record runs in the store (%s); %d job(s) will be retried", error, len(due)
            )
            for entry in due:
                self._retry_later(entry, now)
            return

        sent: Counter[str] = Counter()
        published: list[RunRecord] = []
        failed: list[RunRecord] = []
        try:
            producer = self._producer_or_none(len(claimed))
            for entry, fires, _ in plans:
                for fire in fires:
                    key = (entry.name, fire)
                    record = records[key]
                    if key in claimed:
                        if producer is not None and self._send(entry, record, producer):
                            sent[entry.name] += 1
                            published.append(record)
                        else:
                            failed.append(record)
                    elif key in unconfirmed and entry.max_runs is None:
                        # Being sent by another beat right now, or by one that died: look again
                        # later, without holding back this job's newer runs.
                        self._orphans.setdefault(key, now + CLAIM_TIMEOUT + timedelta(seconds=1))
                    elif key in unconfirmed:
                        # A one-off whose claimer stopped before confirming: it most likely went
                        # out, and a one-off is never sent twice. Confirm and count it (once: the
                        # store counts only confirmations that were still missing).
                        logger.warning(
                            "celery-orchestra: one-off %s for %s was claimed but never confirmed; "
                            "counting it as sent, not sending it again",
                            entry.name,
                            fire.isoformat(),
                        )
                        sent[entry.name] += 1
                        published.append(record)
                    else:
                        logger.info(
                            "celery-orchestra: run of %s for %s was already sent (run ledger); not sending it again",
                            entry.name,
                            fire.isoformat(),
                        )
        except BaseException:
            # Interrupted mid-batch (SIGTERM, KeyboardInterrupt): release what was not sent and
            # confirm what was, so a restart neither loses nor repeats these runs.
            sent_keys = {(r.job_name, r.fire_time) for r in published}
            unsent = [r for key, r in records.items() if key in claimed and key not in sent_keys]
            self._settle(failed=unsent, progress={}, published=published)
            raise

        failed_jobs = {r.job_name for r in failed}
        progress: dict[str, tuple[datetime | None, int, datetime | None]] = {}
        for entry, _fires, last_considered in plans:
            runs = sent[entry.name]
            entry.total_run_count += runs
            if entry.name in failed_jobs:
                # What was sent is counted; the rest stays due (the ledger skips the sent ones).
                self._retry_later(entry, now)
                if runs:
                    progress[entry.name] = (entry.last_fire_at, runs, entry.next_fire_at)
                continue
            self._send_failures.pop(entry.name, None)
            entry.last_fire_at = last_considered
            entry.last_run_at = last_considered
            self._reschedule(entry, now)
            progress[entry.name] = (entry.last_fire_at, runs, entry.next_fire_at)
        self._settle(failed=failed, progress=progress, published=published)

    def _claim(self, records: list[RunRecord], *, take_over: bool) -> set[tuple[str, datetime]]:
        if not records:
            return set()
        assert self.store is not None
        abandoned_after = CLAIM_TIMEOUT if take_over else None
        return {(r.job_name, r.fire_time) for r in self.store.claim_runs(records, abandoned_after=abandoned_after)}

    def _producer_or_none(self, runs: int) -> Any:
        try:
            return self.producer
        except Exception as error:
            logger.error("celery-orchestra: cannot reach the broker (%s); %d run(s) will be retried", error, runs)
            return None

    def _settle(
        self,
        *,
        failed: list[RunRecord],
        progress: dict[str, tuple[datetime | None, int, datetime | None]],
        published: list[RunRecord],
    ) -> None:
        """Release the claims of unsent runs and confirm the sent ones with the jobs' progress.

        A write that fails is kept and retried on the next tick: an unconfirmed claim would
        otherwise be taken over, and its run sent again, by the next beat.
        """
        assert self.store is not None
        pending_progress, pending_published = self._unsaved
        for name, (last, runs, next_fire) in progress.items():
            previous = pending_progress.get(name)
            if previous is not None:
                last = max((t for t in (previous[0], last) if t is not None), default=None)
                runs += previous[1]
            pending_progress[name] = (last, runs, next_fire)
        pending_published.extend(published)
        try:
            if failed:
                self.store.release_runs(failed)
            if pending_progress or pending_published:
                self.store.save_progress(pending_progress, published=pending_published)
        except Exception as error:
            logger.error("celery-orchestra: cannot save run progress in the store (%s); retrying next tick", error)
            return
        self._unsaved = ({}, [])

    def _retry_orphans(self, now: datetime) -> None:
        """Take over runs whose claim stayed unconfirmed (their beat died) and send them late."""
        assert self.store is not None
        ready = [key for key, when in self._orphans.items() if when <= now]
        if not ready:
            return
        records = [RunRecord(name, fire, now, run_task_id(name, fire), None) for name, fire in ready]
        claimed = self._claim(records, take_over=True)
        still_unconfirmed = {(r.job_name, r.fire_time) for r in self.store.unconfirmed_runs(records)}
        producer = self._producer_or_none(len(claimed)) if claimed else None
        published: list[RunRecord] = []
        failed: list[RunRecord] = []
        for record in records:
            key = (record.job_name, record.fire_time)
            entry = self.data.get(record.job_name)
            if key in claimed:
                if entry is None or producer is None:
                    failed.append(record)  # job gone, or broker down: release, look again later
                else:
                    logger.warning(
                        "celery-orchestra: sending the run of %s for %s, claimed by a beat that stopped before "
                        "sending it",
                        record.job_name,
                        record.fire_time.isoformat(),
                    )
                    (published if self._send(entry, record, producer) else failed).append(record)
            if (key in claimed and record in published) or entry is None:
                del self._orphans[key]
            elif key in claimed or key in still_unconfirmed:
                self._orphans[key] = now + timedelta(seconds=SEND_RETRY_DELAYS[2])
            else:
                del self._orphans[key]  # its first claimer confirmed it after all
        progress: dict[str, tuple[datetime | None, int, datetime | None]] = {}
        for record in published:
            entry = self.data[record.job_name]
            entry.total_run_count += 1
            runs = progress.get(entry.name, (None, 0, None))[1] + 1
            progress[entry.name] = (None, runs, entry.next_fire_at)
        self._settle(failed=failed, progress=progress, published=published)

    def _retry_later(self, entry: ScheduleEntry, now: datetime) -> None:
        attempts = self._send_failures.get(entry.name, 0)
        self._send_failures[entry.name] = attempts + 1
        delay = SEND_RETRY_DELAYS[min(attempts, len(SEND_RETRY_DELAYS) - 1)]
        self._requeue(entry, now + timedelta(seconds=delay))

    def _requeue(self, entry: ScheduleEntry, when: datetime) -> None:
        generation = self._generation.get(entry.name, 0) + 1
        self._generation[entry.name] = generation
        heapq.heappush(self._queue, (when.timestamp(), next(self._tiebreak), entry.name, generation))

    def _send(self, entry: ScheduleEntry, record: RunRecord, producer: Any) -> bool:
        options = dict(entry.options)
        headers = dict(options.pop("headers", None) or {})
        headers["celery_beat_task"] = True
        task = self.app.tasks.get(entry.task)
        try:
            if task is not None:
                task.apply_async(
                    entry.args, entry.kwargs, producer=producer, task_id=record.task_id, headers=headers, **options
                )
            else:
                self.app.send_task(
                    entry.task,
                    entry.args,
                    entry.kwargs,
                    producer=producer,
                    task_id=record.task_id,
                    headers=headers,
                    **options,
                )
        except Exception as error:
            logger.error(
                "celery-orchestra: sending %s (%s) for %s failed: %s; it will be retried",
                entry.name,
                entry.task,
                record.fire_time.isoformat(),
                error,
            )
            return False
        logger.info(
            "celery-orchestra: sent %s (%s) for %s, task id %s",
            entry.name,
            entry.task,
            record.fire_time.isoformat(),
            record.task_id,
        )
        return True

    # ------------------------------------------------------------------ Celery's API

    def get_schedule(self) -> dict[str, ScheduleEntry]:
        return self.data

    def set_schedule(self, schedule: dict[str, ScheduleEntry]) -> None:
        self.data = schedule

    schedule = property(get_schedule, set_schedule)

    def sync(self) -> None:
        """Write the queued next fire times; every run itself is written when it is sent."""
        if self.store is None or self._closed:
            return
        try:
            self._flush_next_fires(limit=max(len(self._unsaved_next_fires), 1))
        except Exception as error:
            logger.error("celery-orchestra: cannot save next fire times in the store (%s)", error)

    def close(self) -> None:
        """Release the broker connection and the database; safe to call twice (beat does on SIGTERM)."""
        if self._closed:
            return
        try:
            if self._node is not None:
                self._node.stop()
            super().close()  # calls sync(): the queued next fire times are written
        finally:
            self._closed = True
            if self.store is not None:
                self.store.close()

    @property
    def info(self) -> str:
        try:
            settings = self.settings or read_settings(self.app.conf)
            url = settings.store_url(self.schedule_filename)
        except SettingsError as error:
            return f"invalid settings: {error}"
        return f"    . store -> {JobStore.mask_url(url)}"


def _same_run_state(entry: ScheduleEntry, record: JobRecord) -> bool:
    """True when a changed row only reflects what this scheduler already knows (its own write)."""
    return (
        entry.total_run_count == record.total_run_count
        and entry.last_fire_at == record.last_run_at
        and entry.paused == record.paused
        and entry.enabled == record.enabled
        and entry.removed == record.removed
        and entry.expired == record.expired
        and entry.task == record.task
        and entry.schedule_data == record.schedule_data
        and entry.timezone == record.timezone
        and entry.anchor == record.anchor
        and list(entry.args) == list(record.args)
        and entry.kwargs == record.kwargs
        and entry.options == record.options
        and entry.tags == tuple(record.tags)
    )


def _kind_of(definition: JobDefinition) -> str:
    return kind_of_data(definition.schedule_data)


def _max_runs_of(definition: JobDefinition) -> int | None:
    return max_runs_of_data(definition.schedule_data)
