"""Alembic environment for the controller store. Run programmatically by `store.migrate`,
which passes an open connection in `config.attributes["connection"]`; no alembic.ini needed."""

from alembic import context

from gcloudctl.controller.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `gcloudctl controller migrate` (store.migrate)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
