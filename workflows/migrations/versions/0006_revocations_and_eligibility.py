"""who revoked an account, and whether an approval still counts toward the quorum

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_account") as batch:
        batch.add_column(sa.Column("revoked_by", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("revoked_by_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("decision") as batch:
        batch.add_column(
            sa.Column("counts", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("decision") as batch:
        batch.drop_column("counts")
    with op.batch_alter_table("service_account") as batch:
        batch.drop_column("revoked_by_admin")
        batch.drop_column("revoked_by")
