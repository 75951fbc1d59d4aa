"""idle credentials: a token's last use at Atlassian, and the owners' keep decisions

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TOKEN_COLUMNS = ("last_used_at", "use_checked_at", "idle_asked_at", "idle_kept_at")
ACCOUNT_COLUMNS = ("idle_proposed_at", "idle_kept_at")


def upgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        for name in TOKEN_COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("service_account") as batch:
        for name in ACCOUNT_COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_account") as batch:
        for name in reversed(ACCOUNT_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("api_token") as batch:
        for name in reversed(TOKEN_COLUMNS):
            batch.drop_column(name)
