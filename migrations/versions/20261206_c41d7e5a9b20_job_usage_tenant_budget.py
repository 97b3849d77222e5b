"""job usage columns (budgets, cost) and tenant budget

Revision ID: c41d7e5a9b20
Revises: e4a7c1b9d2f6
Create Date: 2026-12-06 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c41d7e5a9b20"
down_revision: str | None = "e4a7c1b9d2f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USAGE = ("wall_clock_s", "device_s", "generated_tokens", "prompt_tokens", "trained_tokens", "reward_calls", "reward_s")


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        for name in USAGE:
            batch_op.add_column(sa.Column(f"usage_{name}", sa.Float(), server_default="0", nullable=False))
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
        batch_op.add_column(sa.Column("budget", json_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.drop_column("budget")
    with op.batch_alter_table("job", schema=None) as batch_op:
        for name in USAGE:
            batch_op.drop_column(f"usage_{name}")
