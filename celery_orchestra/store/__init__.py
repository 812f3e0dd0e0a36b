"""The persistent store: jobs, operator state (pause, enable) and the run ledger, in SQL.

SQLite (the default, a file next to the app) and PostgreSQL (production) are supported through
SQLAlchemy 2. Data flows one way: the store receives plain
:class:`~celery_orchestra.jobs.definitions.JobDefinition` values and hands out frozen records; it
never imports the scheduler or the operations.

Typical use::

    store = JobStore("sqlite:////var/lib/orchestra/orchestra.db")   # no I/O yet
    store.migrate()                                                  # create/upgrade tables
    report = store.reconcile(definitions, now=datetime.now(UTC))
    revision, changed = store.changes_since(seen_revision)
"""

from __future__ import annotations

from ..errors import InvalidJobError, JobNotFound, LeaseLostError, StoreError
from .jobstore import JobStore
from .lease import BeatIdentity, BeatInfo, Fence, LeaseGrant, LeaseInfo
from .progress import LateSettlement
from .records import (
    OWNER_CONFIG,
    OWNER_RUNTIME,
    JobRecord,
    LedgerEntry,
    Progress,
    ReconcileReport,
    RunKey,
    RunRecord,
    UnconfirmedClaim,
)
from .runtime import RUNTIME_SOURCE

__all__ = [
    "OWNER_CONFIG",
    "OWNER_RUNTIME",
    "RUNTIME_SOURCE",
    "BeatIdentity",
    "BeatInfo",
    "Fence",
    "InvalidJobError",
    "JobNotFound",
    "JobRecord",
    "JobStore",
    "LateSettlement",
    "LeaseGrant",
    "LeaseInfo",
    "LeaseLostError",
    "LedgerEntry",
    "Progress",
    "ReconcileReport",
    "RunKey",
    "RunRecord",
    "StoreError",
    "UnconfirmedClaim",
]
