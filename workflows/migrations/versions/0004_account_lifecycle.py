"""account lifecycle: rotation grace, orphaned owners, recurring tasks

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.add_column(sa.Column("revoke_after", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("service_account") as batch:
        batch.add_column(sa.Column("orphaned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "recurring_task",
        sa.Column("name", sa.String(length=48), primary_key=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("recurring_task")
    with op.batch_alter_table("service_account") as batch:
        batch.drop_column("orphaned_at")
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("revoke_after")
