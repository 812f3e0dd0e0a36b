"""Initial schema: jobs, the run ledger and the change counter.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The column types are spelled out here instead of imported from ``tables.py``: a migration is a
snapshot and must keep producing the same schema when the ORM classes move on. Datetimes are
naive-UTC ``TIMESTAMP`` columns (what ``UTCDateTime`` stores).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    meta = op.create_table(
        "orchestra_meta",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orchestra_meta"),
    )
    op.bulk_insert(meta, [{"id": 1, "revision": 0}])

    op.create_table(
        "orchestra_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("task", sa.String(length=255), nullable=False),
        sa.Column("schedule_data", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("kwargs", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("configured_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("anchor", sa.DateTime(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("total_run_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_runs", sa.Integer(), nullable=True),
        sa.Column("next_run_at", sa.DateTime(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("removed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("expired", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orchestra_jobs"),
        sa.UniqueConstraint("name", name="uq_orchestra_jobs_name"),
    )
    op.create_index("ix_orchestra_jobs_next_run_at", "orchestra_jobs", ["next_run_at"])
    op.create_index("ix_orchestra_jobs_revision", "orchestra_jobs", ["revision"])

    op.create_table(
        "orchestra_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_name", sa.String(length=255), nullable=False),
        sa.Column("fire_time", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_name"],
            ["orchestra_jobs.name"],
            name="fk_orchestra_runs_job_name_orchestra_jobs",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_orchestra_runs"),
        sa.UniqueConstraint("job_name", "fire_time", name="uq_orchestra_runs_job_name_fire_time"),
    )


def downgrade() -> None:
    op.drop_table("orchestra_runs")
    op.drop_index("ix_orchestra_jobs_revision", table_name="orchestra_jobs")
    op.drop_index("ix_orchestra_jobs_next_run_at", table_name="orchestra_jobs")
    op.drop_table("orchestra_jobs")
    op.drop_table("orchestra_meta")
