"""The interfaces between the layers, in one place.

:class:`SchedulerStore` is what beat needs from a store: :class:`~celery_orchestra.store.JobStore`
implements it on SQL, and scheduler tests may plug in anything else that does.
:class:`ScheduleCodec` is one schedule type's conversion to and from plain data; the registry in
:mod:`celery_orchestra.jobs.codec` holds one per type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: every layer may import this module without a cycle
    from celery.schedules import BaseSchedule

    from .jobs.codec import ScheduleContext
    from .jobs.definitions import JobDefinition
    from .store.lease import BeatIdentity, BeatInfo, Fence, LeaseGrant, LeaseInfo
    from .store.progress import LateSettlement
    from .store.records import JobRecord, Progress, ReconcileReport, RunRecord, UnconfirmedClaim

__all__ = ["ScheduleCodec", "SchedulerStore"]


class SchedulerStore(Protocol):
    """The store methods the scheduler calls (see :class:`~celery_orchestra.store.JobStore`)."""

    @property
    def safe_url(self) -> str: ...

    def check_integrity(self) -> None: ...

    def migrate(self) -> None: ...

    def reconcile(
        self,
        definitions: Sequence[JobDefinition],
        *,
        now: datetime,
        first_fire: Callable[[JobDefinition, datetime], datetime | None] | None = ...,
        partial: bool = ...,
    ) -> ReconcileReport: ...

    def current_revision(self) -> int: ...

    def changes_since(self, revision: int) -> tuple[int, list[JobRecord]]: ...

    def claim_runs(self, runs: Sequence[RunRecord]) -> list[RunRecord]: ...

    def release_runs(self, runs: Sequence[RunRecord]) -> None: ...

    def save_progress(self, progress: Mapping[str, Progress], *, published: Sequence[RunRecord] = ...) -> list[str]: ...

    def set_next_run(self, updates: Mapping[str, datetime | None]) -> list[str]: ...

    def settle_late(self, *, published: Sequence[RunRecord], unsent: Sequence[RunRecord]) -> LateSettlement: ...

    def set_expired(self, names: Sequence[str], expired: bool = ...) -> list[str]: ...

    @property
    def fence(self) -> Fence | None: ...

    def acquire_lease(
        self, beat: BeatIdentity, ttl: timedelta, *, now: datetime | None = ..., replacing: LeaseInfo | None = ...
    ) -> LeaseGrant | None: ...

    def beat(self, beat_id: str) -> BeatInfo | None: ...

    def renew_lease(self, ttl: timedelta, *, now: datetime | None = ...) -> LeaseGrant | None: ...

    def release_lease(self) -> bool: ...

    def read_lease(self, *, now: datetime | None = ...) -> LeaseInfo: ...

    def record_beat(
        self, beat: BeatIdentity, role: str, epoch: int | None = ..., *, now: datetime | None = ...
    ) -> None: ...

    def unconfirmed_claims(self, *, limit: int = ..., manual: bool = ...) -> list[UnconfirmedClaim]: ...

    def prune_runs(self, before: datetime, *, batches: int | None = ...) -> int: ...

    def forget_stopped_beats(self, before: datetime) -> int: ...

    def take_over_claims(self, runs: Sequence[RunRecord]) -> list[RunRecord]: ...

    def abandon_claims(self, runs: Sequence[RunRecord]) -> list[RunRecord]: ...

    def close(self) -> None: ...


class ScheduleCodec(Protocol):
    """One schedule type as plain JSON-able data: ``{"type": <type>, <fields>...}``."""

    @property
    def tag(self) -> str:
        """The ``"type"`` tag of this codec's data."""
        ...

    @property
    def fields(self) -> Mapping[str, tuple[type, ...]]:
        """Each field's accepted Python types (``bool`` is never accepted as a number)."""
        ...

    def encode(self, value: object, *, relative: bool) -> dict[str, Any] | None:
        """``value`` as data if it is a schedule of this type, else ``None`` (another codec's)."""
        ...

    def check(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` (whose fields have the declared types) normalised, or a ScheduleDataError."""
        ...

    def decode(self, data: Mapping[str, Any], context: ScheduleContext) -> BaseSchedule:
        """A live Celery schedule from checked data."""
        ...

    def kind(self, data: Mapping[str, Any]) -> str:
        """The job kind shown in status tables (``cyclic``, ``daily``..., ``crontab``, ``solar``)."""
        ...

    def describe(self, data: Mapping[str, Any]) -> str:
        """A short human description, e.g. ``every 30 seconds``."""
        ...
