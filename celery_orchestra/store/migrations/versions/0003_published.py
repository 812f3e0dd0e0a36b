"""Tell a claimed run from a published one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

A scheduler claims a run in the ledger before it publishes it, so that two schedulers never
both send one fire time. A claim whose publisher died before publishing (kill -9, a crash) used
to look exactly like a sent run, and the run was lost. ``published`` is false from the claim
until the publish is confirmed; a claim left unconfirmed for long is taken over and the run sent
(with the same deterministic task id). Existing rows were published.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orchestra_runs") as batch:
        batch.add_column(sa.Column("published", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("orchestra_runs") as batch:
        batch.drop_column("published")
