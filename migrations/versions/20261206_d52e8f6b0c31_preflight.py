"""preflight table (POST /v1/preflight: the API's request, the worker's report)

Revision ID: d52e8f6b0c31
Revises: c41d7e5a9b20
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d52e8f6b0c31"
down_revision: str | None = "c41d7e5a9b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "preflight",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("spec", json_type, nullable=False),
        sa.Column("prompts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("report", json_type, nullable=True),
        sa.Column("error", json_type, nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_preflight_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preflight")),
    )
    op.create_index(op.f("ix_preflight_tenant_id"), "preflight", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_preflight_tenant_id"), table_name="preflight")
    op.drop_table("preflight")
