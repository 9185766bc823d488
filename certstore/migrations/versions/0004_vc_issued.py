"""cert_vc_issued: the issuer's log of SD-JWT VCs issued through OpenID4VCI (issue 15 §1)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cert_vc_issued',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('configuration_id', sa.String(length=64), nullable=False),
    sa.Column('holder_jkt', sa.String(length=64), nullable=False),
    sa.Column('flow', sa.String(length=24), nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cert_vc_issued', schema=None) as batch_op:
        batch_op.create_index('ix_cert_vc_issued_certificate', ['certificate_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cert_vc_issued', schema=None) as batch_op:
        batch_op.drop_index('ix_cert_vc_issued_certificate')
    op.drop_table('cert_vc_issued')
