"""celery-orchestra: a drop-in replacement for Celery beat.

The public API is re-exported here. Importing the package stays cheap (no SQLAlchemy, no
database, no broker): ``celery`` imports it for its CLI plugin in every process, so the
scheduler, the store and the operator API are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import OrchestraError, TimeZoneError, TimingError
from .model import Kind, TimingSpec
from .schedule import Timing, timing

if TYPE_CHECKING:
    from .api import (
        ChangeResult,
        JobStatus,
        NoMatchingJobsError,
        NoSuchJobError,
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
    from .config import ConfigError, ConfigProblem
    from .scheduler import ScheduleEntry, Scheduler

_LAZY = {
    "Scheduler": "scheduler",
    "ScheduleEntry": "scheduler",
    "ConfigError": "config",
    "ConfigProblem": "config",
    "pause_job": "api",
    "resume_job": "api",
    "pause_jobs": "api",
    "resume_jobs": "api",
    "pause_jobs_with_tags": "api",
    "resume_jobs_with_tags": "api",
    "list_jobs": "api",
    "job_history": "api",
    "open_store": "api",
    "ChangeResult": "api",
    "JobStatus": "api",
    "NoSuchJobError": "api",
    "NoMatchingJobsError": "api",
}

__all__ = [
    "ChangeResult",
    "ConfigError",
    "ConfigProblem",
    "JobStatus",
    "Kind",
    "NoMatchingJobsError",
    "NoSuchJobError",
    "OrchestraError",
    "ScheduleEntry",
    "Scheduler",
    "TimeZoneError",
    "Timing",
    "TimingError",
    "TimingSpec",
    "job_history",
    "list_jobs",
    "open_store",
    "pause_job",
    "pause_jobs",
    "pause_jobs_with_tags",
    "resume_job",
    "resume_jobs",
    "resume_jobs_with_tags",
    "timing",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'celery_orchestra' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
