"""The market's address lookup tables, stored before each is created.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lookup_tables",
        sa.Column("address", sa.String(44), primary_key=True),
        sa.Column("market", sa.String(44), nullable=False),
        sa.Column("recent_slot", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lookup_tables")
