"""Writing jobs as a YAML schedule file, in the format :mod:`.yaml_files` reads.

What ``celery orchestra export`` prints: the file re-creates the same jobs when listed in
``orchestra_schedule_files`` (and ``celery orchestra check`` accepts it). The format knows timings
only (``schedule: {timing: ...}``): a fixed interval is written as the timing ``every N seconds``,
which fires on the same grid; a crontab, a solar schedule, a relative or fractional interval have
no spelling in it and are refused, named, rather than left out silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import yaml

from ..errors import ScheduleDataError
from .codec import describe_data
from .definitions import JobDefinition

__all__ = ["definitions_to_yaml", "yaml_timing"]

#: At most this many jobs that cannot be written are named in the error; the rest are counted.
_LISTED: Final = 5


def yaml_timing(data: dict[str, Any]) -> str | None:
    """The timing expression that writes schedule ``data`` in a YAML file, or ``None`` if none can."""
    kind = data.get("type")
    if kind == "timing":
        return str(data["expression"])
    if kind == "interval" and not data.get("relative"):
        seconds = float(data["seconds"])
        if seconds.is_integer() and seconds > 0:
            return f"every {int(seconds)} seconds"
    return None


def definitions_to_yaml(definitions: Sequence[JobDefinition], *, header: str = "") -> str:
    """``definitions`` as one YAML schedule file (one block, jobs in the order given).

    ``header`` becomes comment lines at the top. Raises :class:`ScheduleDataError` naming the jobs
    whose schedule the format cannot hold.
    """
    unwritable = [d for d in definitions if yaml_timing(d.schedule_data) is None]
    if unwritable:
        named = ", ".join(f"{d.name!r} ({describe_data(d.schedule_data)})" for d in unwritable[:_LISTED])
        more = f" and {len(unwritable) - _LISTED} more" if len(unwritable) > _LISTED else ""
        raise ScheduleDataError(
            "a YAML schedule file holds timings only (crontab, solar and relative intervals have no spelling in "
            f"it); cannot export {named}{more}"
        )
    jobs = [_job(definition) for definition in definitions]
    body = yaml.safe_dump([{"schedules": jobs}], sort_keys=False, allow_unicode=True, width=120) if jobs else "[]\n"
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    return comments + body


def _job(definition: JobDefinition) -> dict[str, Any]:
    schedule: dict[str, Any] = {"timing": yaml_timing(definition.schedule_data)}
    if definition.timezone is not None:
        schedule["timezone"] = definition.timezone
    job: dict[str, Any] = {"name": definition.name, "task": definition.task}
    if not definition.enabled:
        job["enabled"] = False
    job["schedule"] = schedule
    if definition.args:
        job["args"] = list(definition.args)
    if definition.kwargs:
        job["kwargs"] = dict(definition.kwargs)
    if definition.options:
        job["additional_options"] = dict(definition.options)
    if definition.tags:
        job["tags"] = list(definition.tags)
    return job
