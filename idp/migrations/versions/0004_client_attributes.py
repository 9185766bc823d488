"""client attributes: registration metadata of the later channels and profiles

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

One JSON column rather than a column per setting: DPoP binding, mutual-TLS
subject, FAPI profile, browser origins, native redirect schemes and CAS
services each add a key, defined and validated in
``idp.clients.registration``. Existing clients get ``{}``: none of those
features applies to them until registered.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attributes', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_column('attributes')
