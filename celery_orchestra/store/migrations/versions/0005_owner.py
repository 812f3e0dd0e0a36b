"""Say who owns each job: the configuration or the runtime API.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

A configuration-owned job (``beat_schedule``, a YAML file) is made to match the configuration at
every start; a runtime-owned job (added with ``add_job`` or ``celery orchestra add``) is changed
only through the API, and reconcile never marks it removed because the configuration lacks it.
Every job stored before this revision came from the configuration.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orchestra_jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=16), server_default="config", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("orchestra_jobs") as batch:
        batch.drop_column("owner")
