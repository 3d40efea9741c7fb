"""Claims on trades and callbacks: which oracle replica acts on each now, and until when, so
that several replicas on one database never act on the same trade at once; and the Daraja
access token all replicas share.

Revision ID: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

CLAIMED = ("trades", "callbacks")


def upgrade() -> None:
    for table in CLAIMED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("claimed_by", sa.String(32), nullable=True))
            batch.add_column(sa.Column("claim_until", sa.Float, nullable=True))
    op.create_table(
        "daraja_tokens",
        sa.Column("app", sa.String(64), primary_key=True),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("daraja_tokens")
    for table in CLAIMED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("claim_until")
            batch.drop_column("claimed_by")
