"""Auto-sell: the households that opted in, with their limits, and every automatic offer with
why it was made and closed.

Revision ID: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "auto_sell",
        sa.Column("household", sa.String(44), primary_key=True),
        sa.Column("floor_price_cents_per_kwh", sa.BigInteger, nullable=False),
        sa.Column("share_percent", sa.Integer, nullable=False),
        sa.Column("max_wh_per_offer", sa.BigInteger, nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "auto_sell_offers",
        sa.Column("id", AUTO_ID, primary_key=True),
        sa.Column("household", sa.String(44), nullable=False),
        sa.Column("offer", sa.String(44), nullable=False),
        sa.Column("wh", sa.BigInteger, nullable=False),
        sa.Column("price_cents_per_kwh", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("forecast_surplus_wh", sa.BigInteger, nullable=False),
        sa.Column("balance_wh", sa.BigInteger, nullable=False),
        sa.Column("advisor", sa.String(32), nullable=False),
        sa.Column("why", sa.String(1_000), nullable=False),
        sa.Column("signature", sa.String(88), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("closed_at", sa.Float, nullable=True),
        sa.Column("closed_why", sa.String(1_000), nullable=True),
    )
    op.create_index("ix_auto_sell_offers_household", "auto_sell_offers", ["household", "id"])


def downgrade() -> None:
    op.drop_index("ix_auto_sell_offers_household", "auto_sell_offers")
    op.drop_table("auto_sell_offers")
    op.drop_table("auto_sell")
