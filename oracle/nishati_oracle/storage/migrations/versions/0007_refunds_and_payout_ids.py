"""Payouts matched on Daraja's ids and retried, refunds, operator actions, reconciliations: a
trade keeps its payout's attempt and ids, its last status query's id and its refund; what
operators did and each reconciliation have a table.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

INDEXED = (
    "payout_originator_id",
    "payout_conversation_id",
    "status_conversation_id",
    "refund_originator_id",
    "refund_conversation_id",
)


def upgrade() -> None:
    op.add_column(
        "trades",
        sa.Column("payout_attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("trades", sa.Column("payout_originator_id", sa.String(64), nullable=True))
    op.add_column("trades", sa.Column("status_conversation_id", sa.String(64), nullable=True))
    op.add_column("trades", sa.Column("refund_method", sa.String(10), nullable=True))
    op.add_column("trades", sa.Column("refund_originator_id", sa.String(64), nullable=True))
    op.add_column("trades", sa.Column("refund_conversation_id", sa.String(64), nullable=True))
    op.add_column("trades", sa.Column("refund_accepted_at", sa.Float, nullable=True))
    op.add_column(
        "trades",
        sa.Column("refund_attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("trades", sa.Column("refund_receipt", sa.String(32), nullable=True))
    # Payouts sent before: their OriginatorConversationID was the trade's id.
    op.execute(
        "UPDATE trades SET payout_originator_id = id WHERE payout_conversation_id IS NOT NULL"
    )
    with op.batch_alter_table("trades") as batch:
        batch.alter_column("payout_attempts", server_default=None)
        batch.alter_column("refund_attempts", server_default=None)
    for column in INDEXED:
        op.create_index(f"ix_trades_{column}", "trades", [column])
    op.create_table(
        "operator_actions",
        sa.Column("id", AUTO_ID, primary_key=True),
        sa.Column("trade_id", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("operator", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("from_state", sa.String(20), nullable=False),
        sa.Column("to_state", sa.String(20), nullable=False),
    )
    op.create_index("ix_operator_actions_trade_id", "operator_actions", ["trade_id"])
    op.create_table(
        "reconciliations",
        sa.Column("id", AUTO_ID, primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("asked", sa.Integer, nullable=False),
        sa.Column("mismatches", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reconciliations")
    op.drop_index("ix_operator_actions_trade_id", "operator_actions")
    op.drop_table("operator_actions")
    for column in INDEXED:
        op.drop_index(f"ix_trades_{column}", "trades")
    for column in (
        "refund_receipt",
        "refund_attempts",
        "refund_accepted_at",
        "refund_conversation_id",
        "refund_originator_id",
        "refund_method",
        "status_conversation_id",
        "payout_originator_id",
        "payout_attempts",
    ):
        op.drop_column("trades", column)
