"""feedback: labels for predictions, and the labelled-quality state of windows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:00:22.546126
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("predictions_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("quality_at", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("quality_cursor", sa.BigInteger(), nullable=True))

    op.create_table(
        "feedback",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("deployment", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("entity_key", sa.String(length=256), nullable=True),
        sa.Column("event_time", sa.Double(), nullable=True),
        sa.Column(
            "label",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_key", ["deployment", "entity_key", "event_time"], unique=False
        )
        batch_op.create_index("ix_feedback_received", ["deployment", "id"], unique=False)
        batch_op.create_index(
            "ix_feedback_request", ["deployment", "request_id", "row"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("monitor_windows", schema=None) as batch_op:
        batch_op.drop_column("quality_cursor")
        batch_op.drop_column("quality_at")
        batch_op.drop_column("predictions_sha256")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_request")
        batch_op.drop_index("ix_feedback_received")
        batch_op.drop_index("ix_feedback_key")

    op.drop_table("feedback")
