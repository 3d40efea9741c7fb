"""Idempotent orders and callbacks that cannot crowd each other out: a trade keeps its order's
Idempotency-Key, the digest of what was ordered and the answer given; a callback is unique by
its key and the digest of its body, not by its key alone.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("trades", sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.add_column("trades", sa.Column("request_digest", sa.String(64), nullable=True))
    op.add_column("trades", sa.Column("answer_status", sa.Integer, nullable=True))
    op.add_column("trades", sa.Column("answer_body", sa.LargeBinary, nullable=True))
    op.create_index("ix_trades_idempotency_key", "trades", ["idempotency_key"], unique=True)
    op.create_index("ix_trades_buyer_recent", "trades", ["buyer_phone_hash", "created_at"])
    op.add_column("callbacks", sa.Column("digest", sa.String(64), nullable=True))
    # Callbacks kept before digests: each stands for itself.
    op.execute("UPDATE callbacks SET digest = 'row:' || CAST(id AS VARCHAR(20))")
    with op.batch_alter_table("callbacks") as batch:
        batch.alter_column("digest", existing_type=sa.String(64), nullable=False)
        batch.drop_constraint("uq_callbacks_kind_key", type_="unique")
        batch.create_unique_constraint("uq_callbacks_kind_key_digest", ["kind", "key", "digest"])


def downgrade() -> None:
    # Only the first callback of each key can stay under the old constraint.
    op.execute(
        "DELETE FROM callbacks WHERE id NOT IN (SELECT MIN(id) FROM callbacks GROUP BY kind, key)"
    )
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_constraint("uq_callbacks_kind_key_digest", type_="unique")
        batch.create_unique_constraint("uq_callbacks_kind_key", ["kind", "key"])
        batch.drop_column("digest")
    op.drop_index("ix_trades_buyer_recent", "trades")
    op.drop_index("ix_trades_idempotency_key", "trades")
    for column in ("answer_body", "answer_status", "request_digest", "idempotency_key"):
        op.drop_column("trades", column)
