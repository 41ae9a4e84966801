"""feedback matched

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 22:15:00.000000

When a label was first joined to a prediction, so that labels naming no prediction can be
reported (and listed) instead of waiting unseen. Labels stored before this revision count
as matched (when each was joined was not recorded): the report starts with the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(sa.Column("matched_at", sa.Double(), nullable=True))
        batch_op.create_index("ix_feedback_unmatched", ["deployment", "matched_at",
                                                        "received_at"], unique=False)
    op.execute(sa.text("UPDATE feedback SET matched_at = received_at"))


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_unmatched")
        batch_op.drop_column("matched_at")
