"""celery-orchestra: a drop-in replacement for Celery beat.

The public API is re-exported here. Importing the package stays cheap (no database, no broker):
``celery`` imports it for its CLI plugins in every process.
"""

from __future__ import annotations

from .errors import OrchestraError, TimeZoneError, TimingError
from .model import Kind, TimingSpec
from .schedule import Timing, timing

__all__ = [
    "Kind",
    "OrchestraError",
    "TimeZoneError",
    "Timing",
    "TimingError",
    "TimingSpec",
    "timing",
]

__version__ = "0.1.0"
