"""lineage edges keep the path a run read an input from (for reproduce)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 19:40:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lineage_edge', schema=None) as batch_op:
        batch_op.add_column(sa.Column('path', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lineage_edge', schema=None) as batch_op:
        batch_op.drop_column('path')
