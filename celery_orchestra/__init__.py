"""celery-orchestra: a drop-in replacement for Celery beat.

The public API is re-exported here. Importing the package stays cheap (no SQLAlchemy, no
database, no broker): ``celery`` imports it for its CLI plugin in every process, so the
scheduler, the store and the operator API are loaded on first use (:data:`_LAZY`).
``tests/test_exported_members.py`` checks that ``__all__`` is exactly what is public here.
"""

import importlib
import typing

from .beat import stock_guard
from .errors import (
    BrokerUnavailableError,
    CommandError,
    ConfigError,
    ConfigProblem,
    ControlError,
    InvalidJobError,
    JobConflictError,
    JobNotFound,
    JobSpecError,
    LeaseLostError,
    NoMatchingJobsError,
    NoSuchJobError,
    NoSuchRunError,
    OrchestraError,
    ScheduleDataError,
    ScheduleTypeError,
    SettingsError,
    StoreError,
    StoreNotFoundError,
    TimeZoneError,
    TimingError,
)
from .timing.model import Kind, TimingSpec
from .timing.schedule import Timing, timing

# Every `celery` process imports this package (the CLI plugin): stock beat started with our
# configuration stops at once with one line saying to use our scheduler.
stock_guard.connect()

if typing.TYPE_CHECKING:
    from .beat.dispatch import run_task_id
    from .beat.entry import ScheduleEntry
    from .beat.scheduler import Scheduler
    from .ops.api import (
        ChangeResult,
        JobStatus,
        RunInfo,
        disable_job,
        disable_jobs,
        disable_jobs_with_tags,
        enable_job,
        enable_jobs,
        enable_jobs_with_tags,
        job_history,
        list_jobs,
        open_store,
        pause_job,
        pause_jobs,
        pause_jobs_with_tags,
        resume_job,
        resume_jobs,
        resume_jobs_with_tags,
    )
    from .ops.jobs_api import JobSpec, add_job, add_jobs, export_jobs, get_job, remove_job, run_job_now, update_job
    from .ops.liveness import BeatStatus, Liveness, beat_liveness
    from .ops.maintenance import PruneResult, forget_job, prune_history

#: Public names loaded on first use, and the module each lives in.
_LAZY: dict[str, str] = {
    "Scheduler": "beat.scheduler",
    "ScheduleEntry": "beat.entry",
    "run_task_id": "beat.dispatch",
    "ChangeResult": "ops.api",
    "JobStatus": "ops.api",
    "RunInfo": "ops.api",
    "job_history": "ops.api",
    "enable_job": "ops.api",
    "enable_jobs": "ops.api",
    "enable_jobs_with_tags": "ops.api",
    "disable_job": "ops.api",
    "disable_jobs": "ops.api",
    "disable_jobs_with_tags": "ops.api",
    "JobSpec": "ops.jobs_api",
    "add_job": "ops.jobs_api",
    "add_jobs": "ops.jobs_api",
    "export_jobs": "ops.jobs_api",
    "get_job": "ops.jobs_api",
    "remove_job": "ops.jobs_api",
    "run_job_now": "ops.jobs_api",
    "update_job": "ops.jobs_api",
    "list_jobs": "ops.api",
    "open_store": "ops.api",
    "pause_job": "ops.api",
    "pause_jobs": "ops.api",
    "pause_jobs_with_tags": "ops.api",
    "resume_job": "ops.api",
    "resume_jobs": "ops.api",
    "resume_jobs_with_tags": "ops.api",
    "PruneResult": "ops.maintenance",
    "forget_job": "ops.maintenance",
    "prune_history": "ops.maintenance",
    "BeatStatus": "ops.liveness",
    "Liveness": "ops.liveness",
    "beat_liveness": "ops.liveness",
}

__all__ = [
    "BeatStatus",
    "BrokerUnavailableError",
    "ChangeResult",
    "CommandError",
    "ConfigError",
    "ConfigProblem",
    "ControlError",
    "InvalidJobError",
    "JobConflictError",
    "JobNotFound",
    "JobSpec",
    "JobSpecError",
    "JobStatus",
    "Kind",
    "LeaseLostError",
    "Liveness",
    "NoMatchingJobsError",
    "NoSuchJobError",
    "NoSuchRunError",
    "OrchestraError",
    "PruneResult",
    "RunInfo",
    "ScheduleDataError",
    "ScheduleEntry",
    "ScheduleTypeError",
    "Scheduler",
    "SettingsError",
    "StoreError",
    "StoreNotFoundError",
    "TimeZoneError",
    "Timing",
    "TimingError",
    "TimingSpec",
    "add_job",
    "add_jobs",
    "beat_liveness",
    "disable_job",
    "disable_jobs",
    "disable_jobs_with_tags",
    "enable_job",
    "enable_jobs",
    "enable_jobs_with_tags",
    "export_jobs",
    "forget_job",
    "get_job",
    "job_history",
    "list_jobs",
    "open_store",
    "pause_job",
    "pause_jobs",
    "pause_jobs_with_tags",
    "prune_history",
    "remove_job",
    "resume_job",
    "resume_jobs",
    "resume_jobs_with_tags",
    "run_job_now",
    "run_task_id",
    "timing",
    "update_job",
]

__version__ = "0.1.0"


def _public(value: typing.Any) -> typing.Any:
    """Name ``value`` by its public path (as httpx does): beat's banner shows ``celery_orchestra.Scheduler``,
    tracebacks and reprs show the name a user imports, and internal module moves stay internal."""
    if isinstance(value, type) or callable(value):
        value.__module__ = __name__
    return value


for _name in __all__:
    if _name not in _LAZY:
        _public(globals()[_name])


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'celery_orchestra' has no attribute {name!r}")
    value = _public(getattr(importlib.import_module(f".{module}", __name__), name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
