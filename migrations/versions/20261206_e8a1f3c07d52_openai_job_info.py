"""openai_job_info: the OpenAI fine-tuning request's fields beside a native job

Revision ID: e8a1f3c07d52
Revises: e63f9a7c1d42
Create Date: 2026-12-06 05:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e8a1f3c07d52"
down_revision: str | None = "e63f9a7c1d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "openai_job_info",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=512), nullable=False),
        sa.Column("training_file", sa.String(length=64), nullable=False),
        sa.Column("validation_file", sa.String(length=64), nullable=True),
        sa.Column("suffix", sa.String(length=64), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("metadata", json_type, nullable=False),
        sa.Column("method", json_type, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_openai_job_info_job_id_job"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_openai_job_info")),
    )


def downgrade() -> None:
    op.drop_table("openai_job_info")
