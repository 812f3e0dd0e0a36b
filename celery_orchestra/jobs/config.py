"""Every configured job, from Celery's ``beat_schedule`` and the YAML schedule files, merged by name.

Everything is checked before anything is stored: every problem in every source is collected and
raised together as one :class:`~celery_orchestra.errors.ConfigError`, each with the file, line,
column and job it belongs to, because fixing a schedule one error per restart is miserable and a
half-loaded configuration must never reach the store. The readers are :mod:`.beat_schedule` and
:mod:`.yaml_files`; what every job must be whatever its source is :mod:`.checks`.
:func:`check_configuration` is the one door: ``celery orchestra check`` and beat's start-up both
go through it.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from celery.schedules import crontab

from ..errors import ConfigError, ConfigProblem, SettingsError, TimeZoneError
from ..settings import (
    DEFAULT_MIN_INTERVAL,
    MAX_LOOP_INTERVAL_SETTING,
    SCHEDULE_FILES_SETTING,
    read_max_loop_interval,
    read_schedule_files,
    read_settings,
)
from ..timing.zones import app_zone
from .beat_schedule import definitions_from_beat_schedule
from .checks import definition_problems, split_source
from .codec import schedule_to_data
from .definitions import JobDefinition
from .yaml_files import definitions_from_yaml

__all__ = ["celery_default_definitions", "check_configuration", "collect_definitions", "load_definitions"]


def load_definitions(app: Any) -> list[JobDefinition]:
    """Every job configured for ``app``: its ``beat_schedule`` plus its YAML schedule files.

    Raises :class:`~celery_orchestra.errors.ConfigError` listing every problem found in any
    source; on success the list holds each job once, ``beat_schedule`` jobs first, then each
    file's jobs in file order.
    """
    definitions, problems = check_configuration(app)
    if problems:
        raise ConfigError(problems)
    return definitions


def check_configuration(
    app: Any, *, extra_files: Sequence[str] = ()
) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    """Everything beat checks before it touches the store, every problem at once: the
    ``orchestra_*`` settings, the app's ``timezone``, and every job of every source (see
    :func:`collect_definitions`). ``celery orchestra check`` and beat's start-up both call this,
    so that what the one accepts the other starts with.
    """
    conf = app.conf
    problems: list[ConfigProblem] = []
    # With a bad setting the default stands in, so the jobs are still checked.
    min_interval = DEFAULT_MIN_INTERVAL
    try:
        # The schedule files setting is reported with the files themselves, once.
        min_interval = read_settings(ChainMap({SCHEDULE_FILES_SETTING: None}, conf)).min_interval
    except SettingsError as error:
        problems.append(ConfigProblem("settings", None, None, None, str(error)))
    try:
        if conf.get(MAX_LOOP_INTERVAL_SETTING):  # Celery takes 0 (its default) and None as "not set"
            read_max_loop_interval(conf.get(MAX_LOOP_INTERVAL_SETTING))
    except SettingsError as error:
        problems.append(ConfigProblem("settings", None, None, None, str(error)))
    try:
        app_zone(app)
    except TimeZoneError as error:
        problems.append(ConfigProblem("settings", None, None, None, f"setting timezone: {error}"))
    definitions, found = collect_definitions(
        conf.get("beat_schedule"), conf.get(SCHEDULE_FILES_SETTING), extra_files=extra_files, min_interval=min_interval
    )
    return definitions, problems + found


def celery_default_definitions(app: Any, configured: Sequence[JobDefinition]) -> list[JobDefinition]:
    """Celery's own housekeeping job, as stock beat installs it, unless configured already.

    ``celery.backend_cleanup`` runs daily at 04:00 when results expire and the result backend does
    not expire them itself (stock beat's ``install_default_entries``); it is stored like any job.
    """
    if not app.conf.result_expires or app.backend.supports_autoexpire:
        return []
    if any(definition.name == "celery.backend_cleanup" for definition in configured):
        return []
    return [
        JobDefinition(
            name="celery.backend_cleanup",
            task="celery.backend_cleanup",
            schedule_data=schedule_to_data(crontab(minute="0", hour="4")),
            options={"expires": 12 * 3600},
            source="celery default",
        )
    ]


def collect_definitions(
    beat_schedule: object,
    schedule_files: object,
    *,
    extra_files: Sequence[str] = (),
    min_interval: float = DEFAULT_MIN_INTERVAL,
) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    """The jobs and every problem in ``beat_schedule``, the ``orchestra_schedule_files`` setting's
    files and ``extra_files`` (read once each, after the listed ones: what ``celery orchestra check``
    is given). A job repeating more often than every ``min_interval`` seconds is a problem."""
    groups: list[list[JobDefinition]] = []
    problems: list[ConfigProblem] = []
    if beat_schedule is not None:
        # Any value is accepted here: definitions_from_beat_schedule reports a non-mapping itself.
        found, found_problems = definitions_from_beat_schedule(cast("Mapping[str, Any]", beat_schedule))
        groups.append(found)
        problems.extend(found_problems)
    files = read_schedule_files(schedule_files)
    problems.extend(ConfigProblem(SCHEDULE_FILES_SETTING, None, None, None, message) for message in files.problems)
    for path in _once_each([*files.paths, *extra_files]):
        found, found_problems = definitions_from_yaml(path)
        groups.append(found)
        problems.extend(found_problems)
    merged, duplicate_problems = _merge_by_name(groups)
    return merged, problems + duplicate_problems + definition_problems(merged, min_interval=min_interval)


def _once_each(paths: Sequence[str]) -> list[str]:
    """``paths`` without a second mention of a file (by its resolved path, ``~`` expanded)."""
    seen: set[Path] = set()
    unique: list[str] = []
    for path in paths:
        resolved = Path(os.path.expanduser(path)).resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(path)
    return unique


def _merge_by_name(groups: Iterable[list[JobDefinition]]) -> tuple[list[JobDefinition], list[ConfigProblem]]:
    """Concatenate the groups, reporting each name that appears again at its second place."""
    # One dict operation per job: start-up merges every configured job, and there may be 100,000.
    first: dict[str, JobDefinition] = {}
    problems: list[ConfigProblem] = []
    for group in groups:
        for definition in group:
            kept = first.setdefault(definition.name, definition)
            if kept is definition:
                continue
            source, line = split_source(definition.source)
            problems.append(
                ConfigProblem(
                    source,
                    line,
                    None,
                    definition.name,
                    f"job name defined twice: here and at {kept.source} (job names must be unique)",
                )
            )
    return list(first.values()), problems
