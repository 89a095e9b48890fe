"""public mode: verified hosts, per-user quotas, job cost and disk use

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verified_hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("verified", sa.Float(), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("last_check", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "host", "port"),
    )
    with op.batch_alter_table("verified_hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verified_hosts_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quotas", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_hosts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("estimated_cost", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("price_per_hour", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("node_hours", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("actual_cost", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("disk_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for column in (
            "disk_bytes",
            "actual_cost",
            "node_hours",
            "price_per_hour",
            "estimated_cost",
            "allowed_hosts",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("quotas")
    with op.batch_alter_table("verified_hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verified_hosts_user_id"))
    op.drop_table("verified_hosts")
