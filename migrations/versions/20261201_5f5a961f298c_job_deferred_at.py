"""job deferred_at: a queued job waiting for a free slot of its tenant's running-job limit

Revision ID: 5f5a961f298c
Revises: 5419d62702b5
Create Date: 2026-12-01 18:42:16.437662
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5f5a961f298c"
down_revision: str | None = "5419d62702b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deferred_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("deferred_at")
