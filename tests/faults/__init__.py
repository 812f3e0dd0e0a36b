"""Fault-injection suite (issue 8, item 7): real beats, real Redis and PostgreSQL, every message checked.

How to run
==========

From the repository root (every process must import this checkout, hence ``PYTHONPATH``)::

    # the short set, held to issue 8's targets (about 4-5 minutes on 2 cores)
    PYTHONPATH=$PWD python -m pytest -m faults tests/faults -s

    # one scenario, or all, with the long settings (100 kill cycles for kill3, ...)
    PYTHONPATH=$PWD python -m tests.faults --scenario kill3
    PYTHONPATH=$PWD python -m tests.faults --scenario all --out /tmp/faults   # ~30 minutes
    PYTHONPATH=$PWD python -m tests.faults --scenario sigterm --cycles 5 --backend postgresql
    PYTHONPATH=$PWD python -m tests.faults --scenario all --short            # what pytest runs

The command prints a Markdown table (one row per scenario), then per scenario the details
(which fire times were lost and what the ledger says about them, which were sent twice and by
which pids, failovers, the slowest sends) and the targets missed; it writes the same to
``report.md`` in ``--out`` (default: a new temporary folder), beside every beat's log
(``<scenario>/beat-<slot>-<n>.log``), ``journal.json`` (what the harness did, when) and
``messages.jsonl`` (every message collected: task id, task, pid, publish and seen times). Exit
status 1 when a target was missed, 2 when a server binary is missing. ``redis-server`` is
needed, and ``initdb``/``postgres`` for the PostgreSQL scenarios; without them the tests skip
(fail under ``CI=true``), like the rest of the suite (``tests/servers.py``).

Scenarios (:mod:`.scenarios`)
=============================

========== ============ ===== ===========================================================================
name       store        beats faults (short / long)
========== ============ ===== ===========================================================================
kill3      PostgreSQL   3     kill -9 the active beat, restart it, 3 / 100 times; pause ``paused2`` a
                              third of the way through, resume it two thirds through
kill-sqlite SQLite      1     kill -9 and restart, 3 / 50 times
sigterm    SQLite       1     SIGTERM (a deploy), restart at once, 3 / 20 times
broker-down PostgreSQL  2     every beat's broker proxy drops (connections closed, new ones refused)
                              for 20 s; 1 / 3 times
db-down    PostgreSQL   2     every beat's database proxy drops for 20 s; 1 / 3 times
freeze     PostgreSQL   2     the active beat's broker link frozen (nothing flows, nothing closes)
                              25 s / 2 x 40 s: longer than the lease (10 s), and in the long run longer
                              than the current 30 s claim take-over
stall      PostgreSQL   2     the active beat SIGSTOPped right after it published, SIGCONT 25 s / 40 s
                              later
clock      PostgreSQL   2     the beats' wall clock (``ClockScheduler``, :mod:`.app`) jumps +20 s, -35 s,
                              +15 s; 1 / 5 times. The machine's clock is never touched.
========== ============ ===== ===========================================================================

The jobs are ``every1``, ``every2``, ``every3``, ``paused2`` (intervals of 1, 2, 3, 2 s) and
a few one-offs (``once at <UTC date> <time>``) placed before, during and after the faults.
``orchestra_catch_up = "all"``, ``orchestra_lease_ttl = 10`` (harmless while the scheduler
ignores it). "The active beat" is the live beat that published most recently.

How it works
============

* **Servers** come from ``tests/servers.py``: throwaway ``redis-server`` and PostgreSQL on
  127.0.0.1 (one Redis database and one fresh PostgreSQL database per scenario); the SQLite store
  is a file in the scenario's folder.
* **Proxy** (:mod:`.proxy`): each beat slot has its own loopback TCP proxy to Redis (and to
  PostgreSQL), with modes ``forward``, ``freeze`` and ``drop``; one beat's link can be cut alone.
* **Beats** are real ``celery -A tests.faults.app beat -S celery_orchestra.Scheduler`` processes
  (:mod:`.app` reads its configuration from environment variables), started with
  ``PYTHONPATH`` = this checkout, stopped by pid. They die with the harness (``PR_SET_PDEATHSIG``).
* **Collector**: the only consumer of the ``celery`` list in Redis (BRPOP, straight to Redis, not
  through a proxy), decoding kombu's JSON envelope. A ``before_task_publish`` handler in the app
  stamps each message with the sender's pid and publish time, so lags do not include the
  collector's polling delay (which is reported separately, usually a few ms), and the harness
  knows which beat sent what.
* **Matching**: every message's task id is looked up among ``uuid5(namespace, "job\\0fire")`` for
  every grid instant of every job (the namespace is copied from ``dispatch.py``, not imported).
* **Expected fire times** are computed from the ``anchor`` column of ``orchestra_jobs`` read with
  plain SQL plus k x interval, within the observed window; see :mod:`.analysis` for the rules
  (edge margins, pause grace, clock segments, one-offs).
* **Kills and SIGTERMs** land a few ms after a whole second, when the beat is claiming,
  publishing or confirming the batch due then (every job fires on whole seconds): the moment a
  crash or stop hurts most.
* **The end**: the harness closes the window, waits (up to 40-45 s, longer than the current 30 s
  take-over of unconfirmed claims) until every owed fire time has been seen, so a late re-send or
  a slow catch-up counts as lag rather than as a loss; then SIGTERMs the beats and drains the list.

What each figure means
======================

repeating expected / sent / lost
    Fire times of the interval jobs owed in the window; how many of them were seen on the broker
    at least once; how many never were (each listed with its ledger row: not in the ledger,
    claimed but unconfirmed, or confirmed).
sent twice (kill / stall / other)
    Extra messages for fire times seen more than once (always with the same task id: the id *is*
    the fire time). ``kill``: every earlier sender had been killed -9 before the later send (a
    re-send of an unconfirmed claim, allowed by the kill targets). ``stall``: an earlier sender
    was the beat stopped or cut off at the time. ``other``: both senders were healthy.
sent while paused
    Messages for fire times of a paused job between the pause returning (plus 2 s: a beat notices
    changes within its 1 s poll) and the resume being called. Sends inside those 2 s are counted
    apart ("within 2 s of a pause/resume") and allowed.
one-offs exactly once
    One-offs sent exactly once / one-offs owed; one-offs sent twice are shown after it.
failover max (n)
    For each fault that took the active beat out (kill -9, SIGTERM, SIGSTOP, frozen link): seconds
    from the fault to the first message published by another process (another beat, or with one
    beat its replacement); the worst of n. Held to lease TTL + 2 s for kill3 and stall.
lag p50 / p99 / max (steady p99)
    Publish time (the sender's stamp, in the sender's clock) minus fire time, over the first send
    of every owed fire time, in ms; ``steady`` leaves out fire times from 1 s before a fault to
    5 s after it (none in the clock scenario).
ledger: unconfirmed / counted not sent
    At the end, ``orchestra_runs`` rows still unconfirmed (claimed, maybe published, never
    confirmed), and rows confirmed whose task id never reached the broker ("counted as sent").

Targets (:func:`.scenarios.failed_targets`): 0 repeating fires lost; no one-off sent twice;
every one-off exactly once; nothing sent while paused; a fire time sent twice only as a re-send
after a kill, and only in the kill scenarios; no unknown task id; no SIGTERM ignored; failover
within lease TTL + 2 s where the active beat dies or stalls with a standby present.
"""
