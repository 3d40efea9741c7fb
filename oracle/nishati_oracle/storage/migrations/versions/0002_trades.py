"""Trades paid by M-Pesa: their states and history, callbacks as received, the phone directory.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "trades",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("market", sa.String(44), nullable=False),
        sa.Column("offer", sa.String(44), nullable=False),
        sa.Column("seller", sa.String(44), nullable=False),
        sa.Column("buyer", sa.String(44), nullable=False),
        sa.Column("trade_address", sa.String(44), nullable=False),
        sa.Column("payment_ref_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("wh", sa.BigInteger, nullable=False),
        sa.Column("price_cents_per_kwh", sa.BigInteger, nullable=False),
        sa.Column("total_cents", sa.BigInteger, nullable=False),
        sa.Column("fee_cents", sa.BigInteger, nullable=False),
        sa.Column("payout_kes", sa.BigInteger, nullable=False),
        sa.Column("buyer_phone", sa.LargeBinary, nullable=False),
        sa.Column("buyer_phone_hash", sa.String(64), nullable=False),
        sa.Column("seller_phone", sa.LargeBinary, nullable=False),
        sa.Column("deadline", sa.BigInteger, nullable=True),
        sa.Column("give_up_at", sa.Float, nullable=True),
        sa.Column("merchant_request_id", sa.String(64), nullable=True),
        sa.Column("checkout_request_id", sa.String(64), nullable=True, unique=True),
        sa.Column("mpesa_receipt", sa.String(32), nullable=True, unique=True),
        sa.Column("result_code", sa.Integer, nullable=True),
        sa.Column("result_desc", sa.String(200), nullable=True),
        sa.Column("chain_signature", sa.String(88), nullable=True),
        sa.Column("payout_conversation_id", sa.String(64), nullable=True),
        sa.Column("payout_receipt", sa.String(32), nullable=True),
        sa.Column("queries", sa.Integer, nullable=False),
        sa.Column("next_check_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_trades_state", "trades", ["state", "next_check_at"])
    op.create_table(
        "trade_history",
        sa.Column("id", AUTO_ID, primary_key=True),
        sa.Column("trade_id", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(300), nullable=True),
    )
    op.create_index("ix_trade_history_trade_id", "trade_history", ["trade_id"])
    op.create_table(
        "callbacks",
        sa.Column("id", AUTO_ID, primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("receipt", sa.String(32), nullable=True, unique=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("processed_at", sa.Float, nullable=True),
        sa.Column("retry_at", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(200), nullable=True),
        sa.UniqueConstraint("kind", "key", name="uq_callbacks_kind_key"),
    )
    op.create_index("ix_callbacks_unprocessed", "callbacks", ["processed_at", "retry_at"])
    op.create_table(
        "phones",
        sa.Column("household", sa.String(44), primary_key=True),
        sa.Column("commitment", sa.String(64), nullable=False, unique=True),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("phones")
    op.drop_index("ix_callbacks_unprocessed", "callbacks")
    op.drop_table("callbacks")
    op.drop_index("ix_trade_history_trade_id", "trade_history")
    op.drop_table("trade_history")
    op.drop_index("ix_trades_state", "trades")
    op.drop_table("trades")
