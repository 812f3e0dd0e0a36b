"""The ``orchestra_*`` Celery settings, read and validated in one place.

Celery keeps unknown lowercase settings as-is, so ours live in ``app.conf`` beside Celery's own.
Reading them through :func:`read_settings` gives typed values and one clear error for a bad one,
instead of a failure deep inside the scheduler later.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from .errors import SettingsError, quoted

CatchUp = Literal["once", "skip", "all"]
CATCH_UP_POLICIES: tuple[CatchUp, ...] = ("once", "skip", "all")

#: ``orchestra_min_interval``'s default: shorter than Celery's half-second examples, far longer than a typo's 1e-6.
DEFAULT_MIN_INTERVAL = 0.1

#: Suffix of the SQLite store created beside stock beat's schedule file (``beat -s``).
DEFAULT_DB_SUFFIX = ".orchestra.db"


@dataclass(frozen=True, slots=True)
class OrchestraSettings:
    """Typed view of the ``orchestra_*`` settings (see README "Settings")."""

    #: SQLAlchemy URL of the store; ``None`` means "an SQLite file beside beat's schedule file".
    database_url: str | None = None
    schedule_files: tuple[str, ...] = ()
    #: What to do with fire times missed while beat was down: run once, skip, or run all (bounded).
    catch_up: CatchUp = "once"
    #: Upper bound of missed runs sent per job with ``catch_up="all"``.
    catch_up_limit: int = 100
    #: A fire time this late (seconds) or less is on time, not missed (matters for ``skip``).
    misfire_grace: float = 60.0
    #: Celery's ``beat_cron_starting_deadline``: a missed crontab instant older than this (seconds)
    #: is never sent, whatever the catch-up policy; ``None``: no such bound.
    cron_starting_deadline: float | None = None
    #: How often (seconds) the running beat looks for changes made to the store by others.
    poll_interval: float = 1.0
    #: Answer ``celery control orchestra_*`` commands from the beat process (needs a fanout broker).
    remote_control: bool = True
    #: Seconds the active beat's lease lasts without renewal: a standby takes over this long after
    #: the active beat dies (a clean stop hands over at once).
    lease_ttl: float = 10.0
    #: Seconds beat keeps trying to reach a store that is not up yet (compose, Kubernetes) before it exits.
    store_wait: float = 60.0
    #: Seconds settled runs stay in the ledger before the active beat deletes them; ``None`` keeps all.
    run_retention: float | None = 30 * 86400.0
    #: The shortest interval (seconds) a job may repeat at; shorter ones are refused (a flood guard).
    min_interval: float = DEFAULT_MIN_INTERVAL
    #: Serve the beat process's own Prometheus metrics on this port (``None``: not served).
    metrics_port: int | None = None
    #: The address those metrics are served on.
    metrics_host: str = "127.0.0.1"

    def store_url(self, schedule_filename: str | None) -> str:
        """The store URL: the setting, else an SQLite file beside stock beat's ``-s`` file."""
        if self.database_url:
            return self.database_url
        base = os.path.abspath(schedule_filename or "celerybeat-schedule")
        return f"sqlite:///{base}{DEFAULT_DB_SUFFIX}"


#: The setting that lists YAML schedule files.
SCHEDULE_FILES_SETTING = "orchestra_schedule_files"


@dataclass(frozen=True, slots=True)
class ScheduleFiles:
    """The ``orchestra_schedule_files`` setting read: the paths (``~`` expanded), and what is wrong with it."""

    paths: tuple[str, ...]
    problems: tuple[str, ...] = ()


def read_schedule_files(setting: object) -> ScheduleFiles:
    """One path or a list of paths; each problem is a message to show after the setting's name."""
    if setting is None:
        return ScheduleFiles(())
    if isinstance(setting, str | os.PathLike):
        items: list[object] = [setting]
    elif isinstance(setting, list | tuple):
        items = list(setting)
    else:
        return ScheduleFiles((), (f"must be a path or a list of paths, got {python_value(setting)}",))
    paths: list[str] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for item in items:
        if not isinstance(item, str | os.PathLike) or not os.fspath(item):
            problems.append(f"each entry must be a file path, got {python_value(item)}")
            continue
        path = os.path.expanduser(os.fspath(item))
        resolved = Path(path).resolve()
        if resolved in seen:
            problems.append(f"{quoted(path)} is listed more than once")
            continue
        seen.add(resolved)
        paths.append(path)
    return ScheduleFiles(tuple(paths), tuple(problems))


def python_value(value: object) -> str:
    """``str ('cpu')``: the type first, because that is usually what is wrong."""
    return f"{type(value).__name__} ({quoted(value)})"


def _number(conf: Any, name: str, default: float, *, minimum: float, maximum: float = 10**9) -> float:
    value = conf.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or not minimum <= value <= maximum
    ):
        if not isinstance(value, int | float) or isinstance(value, bool):
            shown = python_value(value)
        elif isinstance(value, int) and value.bit_length() > 64:
            shown = f"a number of {value.bit_length()} bits"  # repr() refuses past 4,300 digits
        else:
            shown = repr(value)
        raise SettingsError(f"setting {name} must be a number from {minimum:g} to {maximum:g}, got {shown}")
    return float(value)


#: The setting that bounds how often a job may repeat.
MIN_INTERVAL_SETTING = "orchestra_min_interval"


def read_min_interval(conf: Any) -> float:
    """``orchestra_min_interval``: seconds (0 to a day); the default lets Celery's half-second examples run."""
    return _number(conf, MIN_INTERVAL_SETTING, DEFAULT_MIN_INTERVAL, minimum=0.0, maximum=86400.0)


#: Celery's own setting for beat's longest sleep; ``--max-interval`` overrides it.
MAX_LOOP_INTERVAL_SETTING = "beat_max_loop_interval"


def read_max_loop_interval(value: object, *, name: str = MAX_LOOP_INTERVAL_SETTING) -> float:
    """Beat's longest sleep in seconds, as Celery handed it to the scheduler (setting or ``--max-interval``).

    A text, a negative number (beat would spin at full CPU) or NaN is refused in one line.
    """
    return _number({name: value}, name, 5.0, minimum=0.01, maximum=86400.0)


def _retention(conf: Any) -> float | None:
    """``orchestra_run_retention``: seconds or a ``timedelta`` (at least an hour), or ``None`` to keep everything."""
    name = "orchestra_run_retention"
    value = conf.get(name, timedelta(days=30))
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
        conf = {name: value}
    try:
        return _number(conf, name, 0.0, minimum=3600.0, maximum=100 * 365 * 86400.0)
    except SettingsError:
        shown = python_value(value) if not isinstance(value, int | float) or isinstance(value, bool) else repr(value)
        raise SettingsError(
            f"setting {name} must be a number of seconds (at least 3600) or a timedelta, or None to keep every "
            f"run, got {shown[:80]}"
        ) from None


#: Celery's own setting (5.3+) bounding how far back a missed crontab run may be sent.
CRON_STARTING_DEADLINE_SETTING = "beat_cron_starting_deadline"


def read_cron_starting_deadline(conf: Any) -> float | None:
    """``beat_cron_starting_deadline``: ``None`` (Celery's default) or seconds, 0 or more."""
    if conf.get(CRON_STARTING_DEADLINE_SETTING) is None:
        return None
    return _number(conf, CRON_STARTING_DEADLINE_SETTING, 0.0, minimum=0.0)


def read_settings(conf: Any) -> OrchestraSettings:
    """Read and validate the ``orchestra_*`` settings from a Celery ``app.conf``."""
    url = conf.get("orchestra_database_url")
    if url is not None and (not isinstance(url, str) or not url.strip()):
        raise SettingsError(f"setting orchestra_database_url must be a database URL string, got {url!r}")

    files = read_schedule_files(conf.get(SCHEDULE_FILES_SETTING))
    if files.problems:
        raise SettingsError(f"setting {SCHEDULE_FILES_SETTING} {files.problems[0]}")

    catch_up = conf.get("orchestra_catch_up", "once")
    if catch_up not in CATCH_UP_POLICIES:
        raise SettingsError(
            f"setting orchestra_catch_up must be one of {', '.join(CATCH_UP_POLICIES)}, got {catch_up!r}"
        )
    limit = conf.get("orchestra_catch_up_limit", 100)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SettingsError(f"setting orchestra_catch_up_limit must be a whole number >= 1, got {limit!r}")

    remote = conf.get("orchestra_remote_control", True)
    if not isinstance(remote, bool):
        raise SettingsError(f"setting orchestra_remote_control must be true or false, got {remote!r}")

    port = conf.get("orchestra_metrics_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise SettingsError(f"setting orchestra_metrics_port must be a port number from 0 to 65535, got {quoted(port)}")
    host = conf.get("orchestra_metrics_host", "127.0.0.1")
    if not isinstance(host, str) or not host.strip():
        raise SettingsError(
            f"setting orchestra_metrics_host must be an address such as '127.0.0.1', got {quoted(host)}"
        )

    return OrchestraSettings(
        database_url=url,
        schedule_files=files.paths,
        catch_up=catch_up,
        catch_up_limit=limit,
        misfire_grace=_number(conf, "orchestra_misfire_grace", 60.0, minimum=0.0),
        cron_starting_deadline=read_cron_starting_deadline(conf),
        poll_interval=_number(conf, "orchestra_poll_interval", 1.0, minimum=0.05, maximum=3600.0),
        remote_control=remote,
        lease_ttl=_number(conf, "orchestra_lease_ttl", 10.0, minimum=1.0, maximum=3600.0),
        store_wait=_number(conf, "orchestra_store_wait", 60.0, minimum=0.0, maximum=86400.0),
        run_retention=_retention(conf),
        min_interval=read_min_interval(conf),
        metrics_port=port,
        metrics_host=host.strip(),
    )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The ``orchestra_api_*`` settings of ``celery orchestra serve`` (see README "HTTP API")."""

    #: The bearer token every API request needs (``None``: no token, loopback only).
    token: str | None = None
    #: A second token that may only read (GET).
    read_only_token: str | None = None
    #: Browser origins allowed to call the API (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    #: Request bodies larger than this many bytes are refused with 413.
    max_body: int = 1024 * 1024
    #: ``/api/health`` is healthy when the active beat ticked at most this many seconds ago.
    health_max_age: float = 30.0


def read_api_settings(conf: Any) -> ApiSettings:
    """Read and validate the ``orchestra_api_*`` settings from a Celery ``app.conf``."""
    tokens = []
    for name in ("orchestra_api_token", "orchestra_api_read_only_token"):
        value = conf.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            # The value is a secret: its type is named, never the value.
            raise SettingsError(f"setting {name} must be a non-empty string, got a {type(value).__name__}")
        tokens.append(value.strip() if isinstance(value, str) else None)
    origins = conf.get("orchestra_api_cors_origins") or ()
    if isinstance(origins, str):
        origins = (origins,)
    if not isinstance(origins, list | tuple) or not all(isinstance(o, str) and o.strip() for o in origins):
        raise SettingsError(
            f"setting orchestra_api_cors_origins must be a list of origins such as "
            f"['https://ops.example.com'], got {python_value(origins)}"
        )
    max_body = _number(conf, "orchestra_api_max_body", 1024 * 1024, minimum=1024, maximum=1024**3)
    return ApiSettings(
        token=tokens[0],
        read_only_token=tokens[1],
        cors_origins=tuple(origin.strip() for origin in origins),
        max_body=int(max_body),
        health_max_age=_number(conf, "orchestra_api_health_max_age", 30.0, minimum=0.0, maximum=86400.0),
    )
