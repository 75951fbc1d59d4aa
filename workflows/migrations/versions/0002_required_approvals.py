"""required approvals per request; longer verdicts (break_glass)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_account_request") as batch:
        batch.add_column(
            sa.Column("required_approvals", sa.Integer(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("decision") as batch:
        batch.alter_column("verdict", type_=sa.String(length=12), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("decision") as batch:
        batch.alter_column("verdict", type_=sa.String(length=8), existing_nullable=False)
    with op.batch_alter_table("service_account_request") as batch:
        batch.drop_column("required_approvals")
