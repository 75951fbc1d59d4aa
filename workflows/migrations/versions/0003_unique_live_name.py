"""one live request per name, enforced by the database

The name check before insert is not enough on PostgreSQL (read committed): two requests for one
name submitted at the same moment would both pass it. A partial unique index makes the second
insert fail instead.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIVE = sa.text("status NOT IN ('denied', 'cancelled', 'expired', 'failed', 'deleted')")


def upgrade() -> None:
    op.create_index("uq_service_account_request_live_name", "service_account_request", ["name"],
                    unique=True, sqlite_where=LIVE, postgresql_where=LIVE)


def downgrade() -> None:
    op.drop_index("uq_service_account_request_live_name", "service_account_request")
