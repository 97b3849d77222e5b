"""dataset field_issues: the first line lacking each field or holding no text there, checked at submit

Revision ID: c3d91a7e5b20
Revises: b7e2c94a1d03
Create Date: 2026-12-06 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c3d91a7e5b20"
down_revision: str | None = "b7e2c94a1d03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null for existing datasets: submit falls back to field counts, the worker checks their rows.
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.add_column(sa.Column("field_issues", json_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_column("field_issues")
