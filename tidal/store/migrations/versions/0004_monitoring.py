"""monitoring: reference profiles, windows, check values, alert states

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:04:15.191511
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("deployment", sa.String(length=64), nullable=False),
        sa.Column("check", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("since", sa.Double(), nullable=False),
        sa.Column("warn_streak", sa.Integer(), nullable=False),
        sa.Column("alert_streak", sa.Integer(), nullable=False),
        sa.Column("clear_streak", sa.Integer(), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("last_window_end", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "check", "subject", name=op.f("pk_alert_states")),
    )
    op.create_table(
        "monitor_windows",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("deployment", sa.String(length=64), nullable=False),
        sa.Column("start", sa.Double(), nullable=False),
        sa.Column("end", sa.Double(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("profile_sha256", sa.String(length=64), nullable=True),
        sa.Column("computed_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_windows")),
        sa.UniqueConstraint("deployment", "start", "end", name="uq_monitor_windows_span"),
    )
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_windows_latest", ["deployment", "end"], unique=False)

    op.create_table(
        "check_values",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "window_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("deployment", sa.String(length=64), nullable=False),
        sa.Column("check", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=False),
        sa.Column("window_end", sa.Double(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["monitor_windows.id"],
            name=op.f("fk_check_values_window_id_monitor_windows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_values")),
        sa.UniqueConstraint("window_id", "check", "subject", name="uq_check_values_point"),
    )
    with op.batch_alter_table("check_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_check_values_series", ["deployment", "check", "subject", "window_end"], unique=False
        )

    op.create_table(
        "reference_profiles",
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_reference_profiles_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_reference_profiles")),
    )


def downgrade() -> None:
    op.drop_table("reference_profiles")
    with op.batch_alter_table("check_values", schema=None) as batch_op:
        batch_op.drop_index("ix_check_values_series")

    op.drop_table("check_values")
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_windows_latest")

    op.drop_table("monitor_windows")
    op.drop_table("alert_states")
