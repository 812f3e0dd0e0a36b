"""Remember when a job was last resumed or re-enabled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

A resumed job must not replay the fire times it missed while paused, even when beat was not
running at the moment of the resume (the CLI writes the store directly). The scheduler counts a
job's next fire from the later of its last run and this instant.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orchestra_jobs") as batch:
        batch.add_column(sa.Column("resumed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orchestra_jobs") as batch:
        batch.drop_column("resumed_at")
