"""Record "run now" requests in the run ledger.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

A manual run (``run_job_now``, ``celery orchestra run``) is a ledger row marked ``manual``, keyed
by the instant it was requested: the active beat sends it outside the job's schedule, and history
shows it as manual. Every run recorded before this revision was a scheduled one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orchestra_runs") as batch:
        batch.add_column(sa.Column("manual", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("orchestra_runs") as batch:
        batch.drop_column("manual")
