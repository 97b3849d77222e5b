"""job steps_recorded: with train_seconds, the training step-time summary on /metrics

Revision ID: b7e2c94a1d03
Revises: 5f5a961f298c
Create Date: 2026-12-01 18:45:02.112093
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e2c94a1d03"
down_revision: str | None = "5f5a961f298c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        # Existing jobs: their current step is the best count there is.
        batch_op.add_column(sa.Column("steps_recorded", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE job SET steps_recorded = current_step")


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("steps_recorded")
