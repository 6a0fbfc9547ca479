"""Hardening record per tenant: which servers the controller hardened and verified, which
failed (with their retry time), keyed by server name and holding the server id, so a replaced
server (new id) is hardened again and a hardened one is not hardened on every pass.

`tenants.hardening` is JSON text: {server name: {id, state (hardened | failed | nokey), level,
failures, retry_at, message, at}}. Written by the reconciler in the same status write as the
`Hardened` condition; emptied by `gcloudctl controller harden TENANT` (an explicit request).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("hardening", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("hardening")
