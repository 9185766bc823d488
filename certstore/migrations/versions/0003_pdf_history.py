"""cert_pdf_history: earlier hashes of PDFs renewed with an archive timestamp (issue 15 §3)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cert_pdf_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('certificate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
    sa.Column('replaced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cert_pdf_history', schema=None) as batch_op:
        batch_op.create_index('ix_cert_pdf_history_sha256', ['pdf_sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cert_pdf_history', schema=None) as batch_op:
        batch_op.drop_index('ix_cert_pdf_history_sha256')
    op.drop_table('cert_pdf_history')
