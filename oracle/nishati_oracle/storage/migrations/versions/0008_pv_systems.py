"""Each home's PV system (location, capacity, orientation, inverter limit), kept off-chain for
its production forecast.

Revision ID: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pv_systems",
        sa.Column("household", sa.String(44), primary_key=True),
        sa.Column("latitude", sa.Float, nullable=False),
        sa.Column("longitude", sa.Float, nullable=False),
        sa.Column("altitude_m", sa.Integer, nullable=False),
        sa.Column("capacity_wp", sa.BigInteger, nullable=False),
        sa.Column("tilt_deg", sa.Float, nullable=False),
        sa.Column("azimuth_deg", sa.Float, nullable=False),
        sa.Column("inverter_limit_w", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pv_systems")
