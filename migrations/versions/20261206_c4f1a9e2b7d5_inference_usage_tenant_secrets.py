"""inference_usage (tokens per tenant on the OpenAI-compatible routes) and tenant_secret (judge API keys)

Revision ID: c4f1a9e2b7d5
Revises: e8a1f3c07d52
Create Date: 2026-12-06 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4f1a9e2b7d5"
down_revision: str | None = "e8a1f3c07d52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inference_usage",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_inference_usage_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inference_usage")),
    )
    with op.batch_alter_table("inference_usage", schema=None) as batch_op:
        batch_op.create_index("ix_inference_usage_tenant_created", ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "tenant_secret",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], name=op.f("fk_tenant_secret_tenant_id_tenant"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_secret")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_tenant_secret_tenant_id_name")),
    )


def downgrade() -> None:
    op.drop_table("tenant_secret")
    with op.batch_alter_table("inference_usage", schema=None) as batch_op:
        batch_op.drop_index("ix_inference_usage_tenant_created")
    op.drop_table("inference_usage")
