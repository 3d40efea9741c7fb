"""A household's trades, as buyer and as seller, newest first: one index each, so its history
and its balance (``households.reads``) read its own rows, not every trade.

Revision ID: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trades_buyer", "trades", ["buyer", "created_at"])
    op.create_index("ix_trades_seller", "trades", ["seller", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_trades_seller", table_name="trades")
    op.drop_index("ix_trades_buyer", table_name="trades")
