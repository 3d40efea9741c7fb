"""The sign-in rate limits' requests and the signatures of signed changes taken, in the
database, so that every replica counts the same requests and refuses a change another took.

Revision ID: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rate_hits",
        sa.Column("id", AUTO_ID, primary_key=True),
        sa.Column("limit_name", sa.String(20), nullable=False),
        sa.Column("key_digest", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_rate_hits_key", "rate_hits", ["limit_name", "key_digest", "at"])
    op.create_index("ix_rate_hits_at", "rate_hits", ["at"])
    op.create_table(
        "signed_changes",
        sa.Column("signature", sa.LargeBinary(64), primary_key=True),
        sa.Column("signed_at", sa.Float, nullable=False),
    )
    op.create_index("ix_signed_changes_signed_at", "signed_changes", ["signed_at"])


def downgrade() -> None:
    op.drop_table("signed_changes")
    op.drop_table("rate_hits")
