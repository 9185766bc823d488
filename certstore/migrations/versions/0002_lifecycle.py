"""lifecycle, status lists, trust imports, wallet

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:09:55.221525
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cert_access_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('holder_code_index', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=False),
    sa.Column('client_name', sa.String(length=200), nullable=True),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('purpose', sa.String(length=500), nullable=True),
    sa.Column('identifiers', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cert_access_log', schema=None) as batch_op:
        batch_op.create_index('ix_cert_access_holder', ['holder_code_index', 'at'], unique=False)

    op.create_table('cert_trust_imports',
    sa.Column('region', sa.String(length=12), nullable=False),
    sa.Column('region_name', sa.String(length=200), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('anchor_pem', sa.Text(), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('region')
    )
    op.create_table('cert_wallet_links',
    sa.Column('sub', sa.String(length=200), nullable=False),
    sa.Column('holder_code_index', sa.String(length=64), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sub')
    )
    with op.batch_alter_table('cert_wallet_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cert_wallet_links_holder_code_index'), ['holder_code_index'], unique=False)

    op.create_table('cert_status_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer_uscc', sa.String(length=18), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('bits', sa.Integer(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('token', sa.Text(), nullable=True),
    sa.Column('token_version', sa.Integer(), nullable=False),
    sa.Column('token_iat', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issuer_uscc'], ['cert_issuers.uscc'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cert_status_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cert_status_lists_issuer_uscc'), ['issuer_uscc'], unique=False)

    op.create_table('cert_status_slots',
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['cert_status_lists.id'], ),
    sa.PrimaryKeyConstraint('list_id', 'idx')
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index('ix_cert_status_list', ['status_list'], unique=False)
    op.create_table('cert_batch_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer_uscc', sa.String(length=18), nullable=False),
    sa.Column('type_code', sa.String(length=24), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['issuer_uscc'], ['cert_issuers.uscc'], ),
    sa.ForeignKeyConstraint(['type_code'], ['cert_types.code'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('cert_batch_rows',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('row_no', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('external_ref', sa.String(length=200), nullable=False),
    sa.Column('data_enc', sa.LargeBinary(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('identifier', sa.String(length=120), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['cert_batch_jobs.id'], ),
    sa.PrimaryKeyConstraint('job_id', 'row_no')
    )


def downgrade() -> None:
    op.drop_table('cert_batch_rows')
    op.drop_table('cert_batch_jobs')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_cert_status_list')
    op.drop_table('cert_status_slots')
    with op.batch_alter_table('cert_status_lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cert_status_lists_issuer_uscc'))

    op.drop_table('cert_status_lists')
    with op.batch_alter_table('cert_wallet_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cert_wallet_links_holder_code_index'))

    op.drop_table('cert_wallet_links')
    op.drop_table('cert_trust_imports')
    with op.batch_alter_table('cert_access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_cert_access_holder')

    op.drop_table('cert_access_log')
