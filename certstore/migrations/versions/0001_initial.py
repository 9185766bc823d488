"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27 03:53:46.380123
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cert_audit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=120), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('cert_issuers',
    sa.Column('uscc', sa.String(length=18), nullable=False),
    sa.Column('name_zh', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=True),
    sa.Column('region', sa.String(length=12), nullable=False),
    sa.Column('allowed_types', sa.JSON(), nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=True),
    sa.Column('signer_cert_pem', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('uscc'),
    sa.UniqueConstraint('client_id')
    )
    op.create_table('cert_types',
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('name_zh', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('holder_code_type', sa.String(length=3), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('cert_serials',
    sa.Column('issuer_uscc', sa.String(length=18), nullable=False),
    sa.Column('type_code', sa.String(length=24), nullable=False),
    sa.Column('last', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['issuer_uscc'], ['cert_issuers.uscc'], ),
    sa.ForeignKeyConstraint(['type_code'], ['cert_types.code'], ),
    sa.PrimaryKeyConstraint('issuer_uscc', 'type_code')
    )
    op.create_table('certificates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('identifier', sa.String(length=120), nullable=False),
    sa.Column('type_code', sa.String(length=24), nullable=False),
    sa.Column('issuer_uscc', sa.String(length=18), nullable=False),
    sa.Column('serial', sa.String(length=12), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('holder_code_type', sa.String(length=3), nullable=False),
    sa.Column('holder_code_index', sa.String(length=64), nullable=False),
    sa.Column('holder_code_enc', sa.LargeBinary(), nullable=False),
    sa.Column('holder_code_masked', sa.String(length=32), nullable=False),
    sa.Column('holder_name', sa.String(length=100), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=2), nullable=False),
    sa.Column('paper_serial', sa.String(length=64), nullable=True),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
    sa.Column('qr_text', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('external_ref', sa.String(length=200), nullable=True),
    sa.Column('status_list', sa.String(length=200), nullable=True),
    sa.Column('status_index', sa.Integer(), nullable=True),
    sa.Column('supersedes', sa.String(length=120), nullable=True),
    sa.ForeignKeyConstraint(['issuer_uscc'], ['cert_issuers.uscc'], ),
    sa.ForeignKeyConstraint(['type_code'], ['cert_types.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('identifier'),
    sa.UniqueConstraint('issuer_uscc', 'external_ref', name='uq_cert_external_ref'),
    sa.UniqueConstraint('issuer_uscc', 'idempotency_key', name='uq_cert_idempotency'),
    sa.UniqueConstraint('issuer_uscc', 'type_code', 'serial', 'version', name='uq_cert_serial')
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index('ix_cert_holder', ['holder_code_index'], unique=False)
        batch_op.create_index('ix_cert_pdf_sha256', ['pdf_sha256'], unique=False)

    op.create_table('cert_idempotency',
    sa.Column('issuer_uscc', sa.String(length=18), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_sha256', sa.String(length=64), nullable=False),
    sa.Column('certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ),
    sa.ForeignKeyConstraint(['issuer_uscc'], ['cert_issuers.uscc'], ),
    sa.PrimaryKeyConstraint('issuer_uscc', 'key')
    )


def downgrade() -> None:
    op.drop_table('cert_idempotency')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_cert_pdf_sha256')
        batch_op.drop_index('ix_cert_holder')

    op.drop_table('certificates')
    op.drop_table('cert_serials')
    op.drop_table('cert_types')
    op.drop_table('cert_issuers')
    op.drop_table('cert_audit')
