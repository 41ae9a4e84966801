"""reference calibration

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:29:52.158866
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reference_profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "calibration",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("reference_profiles", schema=None) as batch_op:
        batch_op.drop_column("calibration")
