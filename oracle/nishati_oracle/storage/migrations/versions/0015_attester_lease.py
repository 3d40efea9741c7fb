"""Each market's attester lease: which replica attests it, with a fencing token; and the meters
asked to be attested at once, through any replica.

Revision ID: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attester_leases",
        sa.Column("market", sa.String(44), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "attest_requests",
        sa.Column("meter", sa.String(44), primary_key=True),
        sa.Column("requested_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("attest_requests")
    op.drop_table("attester_leases")
