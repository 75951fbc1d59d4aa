"""Alembic environment: runs on the connection that `workflows.migrations.upgrade` hands over."""

from alembic import context
from sqlmodel import SQLModel

import workflows.models  # noqa: F401  (registers the tables on the metadata)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
