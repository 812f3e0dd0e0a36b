"""From what the collector saw to the figures: expected fire times, matching, the report.

Expected fire times are computed here from the jobs' stored ``anchor`` (read with plain SQL) and
the intervals the harness configured, never from the scheduler's own computation:

* an interval job owes ``anchor + k * interval`` (k >= 1) for every such instant inside the
  observed window: from the anchor (the job was registered by the first beat while the collector
  was already listening, and ``orchestra_catch_up = "all"`` owes every instant after it) up to
  the window's end, which is the moment the harness stopped injecting faults minus an edge margin;
* a pause removes ``[pause called, resume returned + grace]`` from what the job owes, and forbids
  a send for a fire time in ``[pause returned + grace, resume called]``; ``grace`` is how long a
  running beat may take to notice a change (its poll interval, 1 s, plus a margin);
* in the clock-jump scenario the window is the set of instants the beats' shifted clock passed
  through (a forward jump skips some, which are then not owed; a backward jump passes some twice,
  which are owed once);
* a one-off is owed exactly once if its instant is inside the window and it was registered before
  its instant (otherwise it is expired by design: a harness timing problem, reported as a note).

Each message's task id is matched back to (job, fire time) by recomputing
``uuid5(TASK_ID_NAMESPACE, f"{job}\\0{fire.isoformat()}")`` for every grid instant of the job.
"""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

from .harness import Run, Seen, stored_datetime

__all__ = ["TASK_ID_NAMESPACE", "Analysis", "Report", "task_id"]

#: Copied from ``celery_orchestra/beat/dispatch.py`` on purpose: the harness does not ask the code
#: under test how to name a run. If the scheduler changes its ids, nothing matches any more and the
#: report shows every message as unknown.
TASK_ID_NAMESPACE: Final = uuid.UUID("6f1b0c1e-5a0e-4a4f-9c53-0c4e6b1d7a10")

#: How long after a pause/resume returned a running beat may still act on the old state.
PAUSE_GRACE = 2.0
#: Sends this long after a fault ended (or before it began) are not "steady state" for the lag.
STEADY_AFTER = 5.0


def task_id(job: str, fire: datetime) -> str:
    return str(uuid.uuid5(TASK_ID_NAMESPACE, f"{job}\0{fire.astimezone(UTC).isoformat()}"))


def ts(moment: datetime) -> float:
    return moment.timestamp()


#: A one-off claimed in the second after its fire time was claimed while its beat sent that batch.
KILL_WINDOW: Final = 1.0


class LedgerRow(NamedTuple):
    """One ``orchestra_runs`` row, as the harness reads it with plain SQL."""

    task_id: str
    published: bool
    abandoned: bool


@dataclass(frozen=True)
class Fire:
    job: str
    at: datetime

    def __str__(self) -> str:
        return f"{self.job}@{self.at:%H:%M:%S}"


@dataclass
class Report:
    """The figures of one scenario run (see the package docstring for what each means)."""

    scenario: str
    backend: str
    beats: int
    faults: str
    seconds: float
    expected: int = 0
    sent: int = 0
    lost: list[tuple[Fire, str]] = field(default_factory=list)
    #: Fire times sent more than once: (fire, number of sends, pids, why: see ``Analysis._resend_reason``).
    duplicates: list[tuple[Fire, int, list[int | None], str]] = field(default_factory=list)
    paused_sent: list[Fire] = field(default_factory=list)
    paused_transition: int = 0
    one_offs_expected: int = 0
    one_offs_once: int = 0
    one_offs_twice: list[Fire] = field(default_factory=list)
    one_offs_lost: list[tuple[Fire, str]] = field(default_factory=list)
    #: One-offs not sent because a kill -9 landed between their claim and its confirmation: the
    #: next beat cannot tell whether they reached the broker, and gives them up (at most once).
    one_offs_given_up: list[Fire] = field(default_factory=list)
    #: Sends for fire times outside the window (after its end, or skipped by a clock jump).
    outside_window: int = 0
    unknown: list[Seen] = field(default_factory=list)
    failovers: list[tuple[str, float | None]] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    #: The latest first sends: (lag in seconds, fire time).
    slowest: list[tuple[float, Fire]] = field(default_factory=list)
    steady_lags: list[float] = field(default_factory=list)
    collector_delays: list[float] = field(default_factory=list)
    ledger_unconfirmed: list[Fire] = field(default_factory=list)
    ledger_counted_not_sent: list[Fire] = field(default_factory=list)
    sigterm_ignored: int = 0
    sigterm_seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folder: str = ""

    # ---- derived

    def resends(self, reason: str) -> int:
        """Extra sends of fire times sent more than once, for one reason (``kill``, ``stall``, ``other``)."""
        return sum(count - 1 for _, count, _, why in self.duplicates if why == reason)

    @property
    def failover_max(self) -> float | None:
        values = [value for _, value in self.failovers]
        if not values:
            return None
        return None if any(value is None for value in values) else max(v for v in values if v is not None)

    # ---- output

    HEADER: Final = (
        "| scenario | store | beats | faults | repeating expected / sent / lost | sent twice (kill / stall / other) "
        "| sent while paused | one-offs exactly once | failover max (n) | lag p50 / p99 / max (steady p99) "
        "| ledger: unconfirmed / counted not sent |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )

    def row(self) -> str:
        failover = "—"
        if self.failovers:
            worst = self.failover_max
            failover = (
                f"{worst:.1f} s ({len(self.failovers)})" if worst is not None else f"never ({len(self.failovers)})"
            )
        one_offs = f"{self.one_offs_once}/{self.one_offs_expected}"
        if self.one_offs_given_up:
            one_offs += f" (+{len(self.one_offs_given_up)} given up after a kill)"
        if self.one_offs_twice:
            one_offs += f", {len(self.one_offs_twice)} twice"
        lag = (
            f"{_ms(_pct(self.lags, 50))} / {_ms(_pct(self.lags, 99))} / {_ms(max(self.lags, default=None))} "
            f"({_ms(_pct(self.steady_lags, 99))})"
        )
        return (
            f"| {self.scenario} | {self.backend} | {self.beats} | {self.faults} "
            f"| {self.expected} / {self.sent} / {len(self.lost)} "
            f"| {self.resends('kill')} / {self.resends('stall')} / {self.resends('other')} | {len(self.paused_sent)} "
            f"| {one_offs} | {failover} | {lag} "
            f"| {len(self.ledger_unconfirmed)} / {len(self.ledger_counted_not_sent)} |"
        )

    def details(self) -> str:
        lines = [f"### {self.scenario} ({self.backend}, {self.seconds:.0f} s; files in {self.folder})"]

        def listed(title: str, items: Iterable[object], limit: int = 12) -> None:
            items = list(items)
            if items:
                shown = ", ".join(str(item) for item in items[:limit])
                more = f" … (+{len(items) - limit})" if len(items) > limit else ""
                lines.append(f"- {title} ({len(items)}): {shown}{more}")

        listed("lost (ledger state)", (f"{fire} [{state}]" for fire, state in self.lost))
        listed(
            "sent twice (sends, pids, first sender was)",
            (f"{fire} x{n} pids {pids} {_WHY[why]}" for fire, n, pids, why in self.duplicates),
        )
        listed("sent while paused", self.paused_sent)
        if self.paused_transition:
            lines.append(f"- sent within {PAUSE_GRACE:g} s of a pause/resume (allowed): {self.paused_transition}")
        listed("one-offs sent twice", self.one_offs_twice)
        listed("one-offs lost (ledger state)", (f"{fire} [{state}]" for fire, state in self.one_offs_lost))
        listed("one-offs given up: a kill -9 between their claim and its confirmation", self.one_offs_given_up)
        listed("unknown task ids", (f"{m.task} {m.task_id}" for m in self.unknown))
        listed(
            "failovers (fault: seconds to the first send by another beat)",
            (f"{kind}: {'never' if value is None else f'{value:.2f}'}" for kind, value in self.failovers),
            limit=20,
        )
        listed("ledger rows left unconfirmed", self.ledger_unconfirmed)
        listed("ledger rows confirmed but never on the broker", self.ledger_counted_not_sent)
        if self.sigterm_seconds or self.sigterm_ignored:
            lines.append(
                f"- SIGTERM: exited after p50 {_pct(self.sigterm_seconds, 50) or 0:.2f} s, "
                f"max {max(self.sigterm_seconds, default=0):.2f} s; ignored (killed after 15 s): {self.sigterm_ignored}"
            )
        if self.outside_window:
            lines.append(
                f"- sends for fire times outside the window (after its end, or skipped by a clock jump): "
                f"{self.outside_window}"
            )
        listed("slowest first sends (lag s, fire time)", (f"{lag:.1f} {fire}" for lag, fire in self.slowest), 5)
        if self.collector_delays:
            lines.append(
                f"- collector delay (seen minus published) p50 {_ms(_pct(self.collector_delays, 50))}, "
                f"p99 {_ms(_pct(self.collector_delays, 99))} ms: lags above use the publish stamp, not this"
            )
        lines.extend(f"- note: {note}" for note in self.notes)
        return "\n".join(lines)


_WHY: Final = {
    "kill": "killed before the re-send",
    "stall": "stopped or cut off (SIGSTOP, frozen link) when it sent",
    "other": "alive and well",
}


def _pct(values: list[float], percentile: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(percentile) - 1]
        if percentile < 100
        else max(values)
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f}"


class Analysis:
    """Expected fire times and matching for one :class:`~tests.faults.harness.Run`."""

    def __init__(self, run: Run, *, end_margin: float) -> None:
        self.run = run
        self.end_margin = end_margin
        self._anchors: dict[str, datetime] = {}

    # ---- the store, read with plain SQL

    def anchors(self) -> dict[str, datetime]:
        if len(self._anchors) < len(self.run.jobs):
            rows = self.run.read("SELECT name, anchor FROM orchestra_jobs")
            self._anchors = {row[0]: stored_datetime(row[1]) for row in rows if row[0] in self.run.jobs}
        return self._anchors

    def ledger(self) -> dict[Fire, LedgerRow]:
        rows = self.run.read("SELECT job_name, fire_time, task_id, published, abandoned FROM orchestra_runs")
        return {
            Fire(row[0], stored_datetime(row[1])): LedgerRow(str(row[2]), bool(row[3]), bool(row[4])) for row in rows
        }

    # ---- the window, in the beats' (maybe shifted) clock

    def segments(self, window_end: float) -> list[tuple[float, float]]:
        """The instants the beats' clock passed through between the run's start and ``window_end``."""
        run = self.run
        points = [(max(since, run.started_at), offset) for since, offset in run.clock if since < window_end]
        out: list[tuple[float, float]] = []
        for index, (since, offset) in enumerate(points):
            until = points[index + 1][0] if index + 1 < len(points) else window_end
            if until > since:
                out.append((since + offset, until + offset))
        return out

    def owed(self, window_end: float) -> tuple[set[Fire], set[Fire], dict[str, Fire]]:
        """(repeating fire times owed, fire times that must not be sent (paused), one-offs owed)."""
        run = self.run
        anchors = self.anchors()
        segments = self.segments(window_end)
        top = max((end for _, end in segments), default=window_end)
        owed: set[Fire] = set()
        forbidden: set[Fire] = set()
        for job, interval in run.intervals.items():
            anchor = anchors.get(job)
            if anchor is None:
                continue
            step = timedelta(seconds=interval)
            fire = anchor + step
            while ts(fire) <= top:
                moment = ts(fire)
                if any(start <= moment <= end for start, end in segments):
                    owed.add(Fire(job, fire))
                fire += step
            for window in run.pauses:
                if window.job != job:
                    continue
                resumed = window.resume_done if window.resume_done is not None else float("inf")
                owed = {
                    f for f in owed if not (f.job == job and window.pause_called <= ts(f.at) <= resumed + PAUSE_GRACE)
                }
                allowed_until = window.resume_called if window.resume_called is not None else float("inf")
                fire = anchor + step
                while ts(fire) <= min(top, allowed_until):
                    if ts(fire) >= window.pause_done + PAUSE_GRACE:
                        forbidden.add(Fire(job, fire))
                    fire += step
        one_offs: dict[str, Fire] = {}
        for job, at in run.one_off_times.items():
            anchor = anchors.get(job)
            instant = datetime.fromtimestamp(at, UTC)
            if anchor is None or anchor >= instant or at > top:
                continue
            one_offs[job] = Fire(job, instant)
        return owed, forbidden, one_offs

    def candidates(self, horizon: float) -> dict[str, Fire]:
        """task id -> fire time for every grid instant of every job up to ``horizon`` (beats' clock)."""
        found: dict[str, Fire] = {}
        for job, interval in self.run.intervals.items():
            anchor = self.anchors().get(job)
            if anchor is None:
                continue
            step = timedelta(seconds=interval)
            fire = anchor + step
            while ts(fire) <= horizon:
                found[task_id(job, fire)] = Fire(job, fire)
                fire += step
        for job, at in self.run.one_off_times.items():
            instant = datetime.fromtimestamp(at, UTC)
            found[task_id(job, instant)] = Fire(job, instant)
        return found

    def sends(self, messages: list[Seen]) -> tuple[dict[Fire, list[Seen]], list[Seen]]:
        horizon = max((m.clock_at or m.sent_at for m in messages), default=self.run.started_at) + 300
        horizon = max(horizon, max((abs(o) for _, o in self.run.clock), default=0) + horizon)
        candidates = self.candidates(horizon)
        by_fire: dict[Fire, list[Seen]] = defaultdict(list)
        unknown: list[Seen] = []
        for message in messages:
            fire = candidates.get(message.task_id)
            if fire is None or message.task != f"faults.{fire.job}":
                unknown.append(message)
            else:
                by_fire[fire].append(message)
        for sent in by_fire.values():
            sent.sort(key=lambda m: m.sent_at)
        return by_fire, unknown

    def missing_now(self, window_end: float) -> int:
        """How many owed fire times (repeating and one-offs) have not been seen yet (for settling)."""
        owed, _, one_offs = self.owed(window_end)
        by_fire, _ = self.sends(self.run.collector.snapshot())
        return sum(1 for fire in owed | set(one_offs.values()) if fire not in by_fire)

    # ---- the report

    def report(self, *, faults: str, beats: int) -> Report:
        run = self.run
        window_end = run.window_end if run.window_end is not None else run.settled_at or 0.0
        messages = run.collector.snapshot()
        owed, forbidden, one_offs = self.owed(window_end)
        by_fire, unknown = self.sends(messages)
        ledger = self.ledger()
        report = Report(
            scenario=run.name,
            backend=run.store.kind,
            beats=beats,
            faults=faults,
            seconds=(run.settled_at or window_end) - run.started_at,
            folder=str(run.folder),
        )
        report.notes.extend(run.notes)
        report.unknown = unknown
        report.expected = len(owed)
        report.sent = sum(1 for fire in owed if fire in by_fire)
        report.lost = sorted(((f, _ledger_state(ledger.get(f))) for f in owed if f not in by_fire), key=_fire_key)
        killed = {i.pid: i.ended_at or 0.0 for beat in run.beats for i in beat.incarnations if i.end == "SIGKILL"}
        one_off_fires = set(one_offs.values())
        for fire, sent in sorted(by_fire.items(), key=lambda item: _fire_key((item[0], ""))):
            if fire in forbidden:
                report.paused_sent.append(fire)
            elif fire not in owed and fire.job in run.intervals and self._in_transition(fire):
                report.paused_transition += 1
            if fire not in owed and fire not in one_off_fires and fire not in forbidden:
                report.outside_window += 1
            if len(sent) > 1:
                if fire.job in run.one_off_times:
                    report.one_offs_twice.append(fire)
                report.duplicates.append((fire, len(sent), [m.pid for m in sent], self._resend_reason(sent, killed)))
        report.one_offs_expected = len(one_offs)
        for fire in one_offs.values():
            count = len(by_fire.get(fire, []))
            if count == 1:
                report.one_offs_once += 1
            elif count == 0 and self._given_up_after_a_kill(fire, ledger.get(fire), killed):
                report.one_offs_given_up.append(fire)
            elif count == 0:
                report.one_offs_lost.append((fire, _ledger_state(ledger.get(fire))))
        for job, at in run.one_off_times.items():
            anchor = self.anchors().get(job)
            if anchor is not None and anchor.timestamp() >= at:
                report.notes.append(f"one-off {job} was registered after its instant (start-up too slow): not counted")
        self._lags(report, owed | one_off_fires, by_fire)
        report.collector_delays = [m.seen_at - m.published_at for m in messages if m.published_at is not None]
        seen_ids = {m.task_id for m in messages}
        for fire, (run_id, published, _) in sorted(ledger.items(), key=lambda item: _fire_key((item[0], ""))):
            if not published:
                report.ledger_unconfirmed.append(fire)
            elif run_id not in seen_ids:
                report.ledger_counted_not_sent.append(fire)
        self._failovers(report, messages)
        for beat in run.beats:
            for incarnation in beat.incarnations:
                if incarnation.end == "SIGTERM ignored":
                    report.sigterm_ignored += 1
        report.sigterm_seconds = [
            float(e.detail["exited_after"]) for e in run.events if e.kind == "sigterm" and e.detail.get("exited_after")
        ]
        return report

    def _given_up_after_a_kill(self, fire: Fire, entry: LedgerRow | None, killed: dict[int, float]) -> bool:
        """Whether a one-off never sent was abandoned by the ledger's recovery because a kill -9
        landed in the second after its fire time (when its beat claims, publishes and confirms it)."""
        if entry is None or entry.published or not entry.abandoned:
            return False
        instant = fire.at.timestamp()  # kills happen in scenarios that leave the beats' clock alone
        return any(0.0 <= at - instant <= KILL_WINDOW for at in killed.values())

    def _resend_reason(self, sent: list[Seen], killed: dict[int, float]) -> str:
        """Why a fire time was sent again.

        ``kill``: every earlier sender was killed -9 before the last send (a re-send of an
        unconfirmed claim: allowed in the kill scenarios). ``stall``: one of the senders was the
        beat stopped (SIGSTOP) or cut off (frozen link) at the time, sending before the fault ended
        or in the flush right after it (within 5 s), and another beat sent it too (nothing fenced
        the stalled beat). ``other``: anything else.
        """
        last = sent[-1]
        if all(m.pid in killed and killed[m.pid] < last.sent_at for m in sent[:-1]):
            return "kill"
        for fault in self.run.disturbances:
            if fault.kind not in ("SIGSTOP", "frozen link"):
                continue
            stalled = [m for m in sent if m.pid == fault.active_pid and m.sent_at <= fault.end + 5.0]
            others = [m for m in sent if m.pid != fault.active_pid and m.sent_at >= fault.start]
            if stalled and others:
                return "stall"
        return "other"

    def _in_transition(self, fire: Fire) -> bool:
        moment = ts(fire.at)
        for window in self.run.pauses:
            if window.job != fire.job:
                continue
            if window.pause_called <= moment < window.pause_done + PAUSE_GRACE:
                return True
            if (
                window.resume_called is not None
                and window.resume_done is not None
                and window.resume_called <= moment <= window.resume_done + PAUSE_GRACE
            ):
                return True
        return False

    def _lags(self, report: Report, owed: set[Fire], by_fire: dict[Fire, list[Seen]]) -> None:
        run = self.run
        for fire in owed:
            sent = by_fire.get(fire)
            if not sent:
                continue
            first = sent[0]
            clock = first.clock_at if first.clock_at is not None else first.sent_at + run.offset_at(first.sent_at)
            lag = clock - ts(fire.at)
            report.lags.append(lag)
            report.slowest.append((lag, fire))
            moment = ts(fire.at) - run.offset_at(first.sent_at)
            disturbed = any(d.start - 1.0 <= moment <= d.end + STEADY_AFTER for d in run.disturbances)
            if not disturbed and len(run.clock) == 1:
                report.steady_lags.append(lag)

        report.slowest = sorted(report.slowest, key=lambda item: -item[0])[:5]

    def _failovers(self, report: Report, messages: list[Seen]) -> None:
        ordered = sorted(messages, key=lambda m: m.sent_at)
        for disturbance in self.run.disturbances:
            if disturbance.active_pid is None:
                continue
            first = next(
                (m for m in ordered if m.sent_at > disturbance.start and m.pid not in (None, disturbance.active_pid)),
                None,
            )
            report.failovers.append((disturbance.kind, None if first is None else first.sent_at - disturbance.start))


def _ledger_state(entry: LedgerRow | None) -> str:
    if entry is None:
        return "not in ledger"
    if entry.published:
        return "confirmed"
    return "claimed, abandoned" if entry.abandoned else "claimed, unconfirmed"


def _fire_key(item: tuple[Fire, str]) -> tuple[datetime, str]:
    return item[0].at, item[0].job
