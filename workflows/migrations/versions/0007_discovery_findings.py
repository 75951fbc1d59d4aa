"""discovery findings: automation seen on human accounts, with a tracked state

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.String(length=128), nullable=False, unique=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("last_ui_activity", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tokens", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("state_reason", sa.String(length=500), nullable=True),
        sa.Column("state_by", sa.String(length=32), nullable=True),
        sa.Column(
            "request_id",
            sa.Integer(),
            sa.ForeignKey("service_account_request.id"),
            nullable=True,
        ),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_finding_state", "finding", ["state"])


def downgrade() -> None:
    op.drop_index("ix_finding_state", table_name="finding")
    op.drop_table("finding")
