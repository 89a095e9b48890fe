"""key figures: each job's peak requests/s, p95, error rate and Apdex, its project and
its comparison with the project's previous run

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10

Jobs that ended before keep their rows and have no figures (None): their reports stay
where they are, and the next run of their project starts its trend.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FIGURES = ("tolerance", "peak_rps", "p95", "error_percent", "apdex")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_key", sa.String(length=64), nullable=True))
        for name in FIGURES:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("compared_to", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("flagged", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("comparison", sa.JSON(), nullable=True))
        batch_op.create_index("ix_jobs_project_key_id", ["project_key", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_project_key_id")
        batch_op.drop_column("comparison")
        batch_op.drop_column("flagged")
        batch_op.drop_column("compared_to")
        for name in reversed(FIGURES):
            batch_op.drop_column(name)
        batch_op.drop_column("project_key")
