"""job_sample reward and advantage nullable: an unscorable completion (no reward component scored it)
has no total, and NaN cannot be stored on every backend (SQLite turns it into NULL)

Revision ID: e4a7c1b9d2f6
Revises: c3d91a7e5b20
Create Date: 2026-12-06 05:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4a7c1b9d2f6"
down_revision: str | None = "c3d91a7e5b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_sample", schema=None) as batch_op:
        batch_op.alter_column("reward", existing_type=sa.Float(), nullable=True)
        batch_op.alter_column("advantage", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE job_sample SET reward = 0 WHERE reward IS NULL")
    op.execute("UPDATE job_sample SET advantage = 0 WHERE advantage IS NULL")
    with op.batch_alter_table("job_sample", schema=None) as batch_op:
        batch_op.alter_column("reward", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("advantage", existing_type=sa.Float(), nullable=False)
