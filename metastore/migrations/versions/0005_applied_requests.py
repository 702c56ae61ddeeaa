"""applied requests: the idempotency keys of writes a server applied

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 19:45:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import mysql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')


def upgrade() -> None:
    op.create_table('applied_request',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('route', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('applied', Timestamp, nullable=False),
    sa.Column('response', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('applied_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_applied_request_applied'), ['applied'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('applied_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_applied_request_applied'))
    op.drop_table('applied_request')
