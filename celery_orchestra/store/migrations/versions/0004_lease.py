"""One active beat per store: the lease, the beats registry, and which epoch claimed each run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``orchestra_lease`` is one row: which beat is active, the epoch it acquired (incremented at every
acquisition) and until when. Every ledger and progress write of a beat checks, in its own
transaction, that the beat still holds the lease at its epoch: a beat that stalled past its lease
writes nothing (fencing).

``orchestra_beats`` says which beats are running, their role and when each last ticked (liveness).

``orchestra_runs.epoch`` is the epoch of the beat that claimed the run: a claim left unconfirmed
by an earlier epoch belongs to a beat that is gone, and the new holder recovers it from the ledger
(a repeating job's run is sent again with its task id, a one-off's is marked ``abandoned``). Rows
written before this revision have no epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orchestra_lease",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestra_lease")),
    )
    op.create_table(
        "orchestra_beats",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process_ns", sa.String(length=128), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_tick_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestra_beats")),
    )
    with op.batch_alter_table("orchestra_runs") as batch:
        batch.add_column(sa.Column("epoch", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("abandoned", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Recovery looks for unconfirmed claims; they are few among many confirmed rows.
    op.create_index(
        "ix_orchestra_runs_unconfirmed",
        "orchestra_runs",
        ["published"],
        unique=False,
        sqlite_where=sa.text("published = 0"),
        postgresql_where=sa.text("published = false"),
    )


def downgrade() -> None:
    op.drop_index("ix_orchestra_runs_unconfirmed", table_name="orchestra_runs")
    with op.batch_alter_table("orchestra_runs") as batch:
        batch.drop_column("abandoned")
        batch.drop_column("epoch")
    op.drop_table("orchestra_beats")
    op.drop_table("orchestra_lease")
