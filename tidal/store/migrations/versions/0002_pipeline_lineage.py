"""pipeline lineage: pipeline runs and step runs (step cache and lineage)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:12:41.508337
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("code_commit", sa.String(length=64), nullable=True),
        sa.Column("code_dirty_hash", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_runs")),
    )
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pipeline_runs_name_started", ["name", "started_at", "id"], unique=False
        )
        batch_op.create_index("ix_pipeline_runs_started", ["started_at", "id"], unique=False)

    op.create_table(
        "step_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=256), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("output_sha256", sa.String(length=64), nullable=True),
        sa.Column("output_size", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=False),
        sa.Column("duration", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["pipeline_runs.id"],
            name=op.f("fk_step_runs_pipeline_run_id_pipeline_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_runs")),
    )
    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_step_runs_cache_key_status", ["cache_key", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_step_runs_output_sha256"), ["output_sha256"], unique=False
        )
        batch_op.create_index(
            "ix_step_runs_pipeline_started", ["pipeline_run_id", "started_at", "id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_step_runs_pipeline_started")
        batch_op.drop_index(batch_op.f("ix_step_runs_output_sha256"))
        batch_op.drop_index("ix_step_runs_cache_key_status")

    op.drop_table("step_runs")
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_runs_started")
        batch_op.drop_index("ix_pipeline_runs_name_started")

    op.drop_table("pipeline_runs")
