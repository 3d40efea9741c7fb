"""Market integrity: a reading keeps the chain's refusal, a trade the index its address is
derived from.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("readings", sa.Column("refused", sa.String(40), nullable=True))
    op.add_column("trades", sa.Column("trade_index", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("trades", "trade_index")
    op.drop_column("readings", "refused")
