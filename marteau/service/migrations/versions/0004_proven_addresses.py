"""proven addresses: a verified host keeps the addresses its name had when proven

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("verified_hosts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("addresses", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("verified_hosts", schema=None) as batch_op:
        batch_op.drop_column("addresses")
