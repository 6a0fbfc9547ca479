"""Identity and sealing: who submitted and decided (Keystone user id), what kind of change a
request is (a new version, or a deletion that needs approval), which approval rules judged it,
and the binding of every decision to (tenant, generation, digest, rules version) and to the
audit record that witnesses it. Secret `userData.vars` values are sealed inside `raw_yaml`
(Fernet tokens); `sealed_vars` counts them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("submitted_by_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="change"))
        batch.add_column(sa.Column("rules_version", sa.String(128), nullable=True))
        batch.add_column(sa.Column("sealed_vars", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("audit_seq", sa.Integer(), nullable=True))
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("actor_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("tenant", sa.String(64), nullable=True))
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("rules_version", sa.String(128), nullable=True))
        batch.add_column(sa.Column("audit_seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        for column in ("audit_seq", "rules_version", "digest", "generation", "tenant", "actor_id"):
            batch.drop_column(column)
    with op.batch_alter_table("requests") as batch:
        for column in ("audit_seq", "sealed_vars", "rules_version", "kind", "submitted_by_id"):
            batch.drop_column(column)
