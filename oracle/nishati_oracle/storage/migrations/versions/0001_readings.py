"""Meters and readings.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meters",
        sa.Column("meter", sa.String(44), primary_key=True),
        sa.Column("household", sa.String(44), nullable=False),
        sa.Column("has_last", sa.Boolean, nullable=False),
        sa.Column("last_counter", sa.BigInteger, nullable=False),
        sa.Column("last_timestamp", sa.BigInteger, nullable=False),
        sa.Column("last_exported_wh", sa.BigInteger, nullable=False),
        sa.Column("last_imported_wh", sa.BigInteger, nullable=False),
        sa.Column("attested_counter", sa.BigInteger, nullable=True),
        sa.Column("attested_exported_wh", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "readings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("meter", sa.String(44), nullable=False),
        sa.Column("counter", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("exported_wh", sa.BigInteger, nullable=False),
        sa.Column("imported_wh", sa.BigInteger, nullable=False),
        sa.Column("message", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("attested_at", sa.Float, nullable=True),
        sa.Column("attest_signature", sa.String(88), nullable=True),
        sa.UniqueConstraint("meter", "counter", name="uq_readings_meter_counter"),
    )
    op.create_index("ix_readings_unattested", "readings", ["attested_at", "meter"])


def downgrade() -> None:
    op.drop_index("ix_readings_unattested", "readings")
    op.drop_table("readings")
    op.drop_table("meters")
