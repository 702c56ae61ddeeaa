"""asset aliases: movable names for asset versions, and every move of them

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 17:30:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql')


def upgrade() -> None:
    op.create_table('asset_alias',
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('alias', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version_id', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
    sa.Column('moved', Timestamp, nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=250), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['asset_version.id'], ),
    sa.PrimaryKeyConstraint('asset_id', 'alias')
    )
    with op.batch_alter_table('asset_alias', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_asset_alias_version_id'), ['version_id'], unique=False)

    op.create_table('alias_move',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('alias', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version_id', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=True),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('previous', sa.Integer(), nullable=True),
    sa.Column('time', Timestamp, nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=250), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alias_move', schema=None) as batch_op:
        batch_op.create_index('ix_alias_move_asset_alias', ['asset_id', 'alias'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alias_move', schema=None) as batch_op:
        batch_op.drop_index('ix_alias_move_asset_alias')
    op.drop_table('alias_move')
    with op.batch_alter_table('asset_alias', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_asset_alias_version_id'))
    op.drop_table('asset_alias')
