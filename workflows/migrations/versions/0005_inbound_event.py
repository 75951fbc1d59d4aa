"""inbound events: Slack's retried deliveries are recognised by event id

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_event",
        sa.Column("event_id", sa.String(length=64), primary_key=True),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_inbound_event_received_at", "inbound_event", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_event_received_at", table_name="inbound_event")
    op.drop_table("inbound_event")
