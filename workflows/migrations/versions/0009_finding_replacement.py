"""finding replacement: who was offered a service account, for which token, who confirmed

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("finding") as batch:
        batch.add_column(
            sa.Column("products", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(sa.Column("slack_user_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("replaced_token_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("replaced_token_label", sa.String(length=255), nullable=True))
        batch.add_column(
            sa.Column("person_confirmed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("admin_confirmed_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("finding") as batch:
        for name in (
            "admin_confirmed_by",
            "person_confirmed_at",
            "replaced_token_label",
            "replaced_token_id",
            "slack_user_id",
            "products",
        ):
            batch.drop_column(name)
