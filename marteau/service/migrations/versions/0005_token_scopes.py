"""token scopes and expiry: an API token is `read`, `submit` or `admin`, and may end

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Tokens made before keep what they could do: an admin's become `admin`, the others
`submit` (every route but the admin ones).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=16), nullable=False, server_default="submit")
        )
        batch_op.add_column(sa.Column("expires", sa.Float(), nullable=True))
    op.execute(
        "UPDATE api_tokens SET scope = 'admin' "
        "WHERE user_id IN (SELECT id FROM users WHERE is_admin)"
    )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires")
        batch_op.drop_column("scope")
