"""Forecast rounds: each home's latest outlook and what it learned, the forecasts waiting for
their meter's report, and the skill scored so far.

Revision ID: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_outlooks",
        sa.Column("household", sa.String(44), primary_key=True),
        sa.Column("made_at", sa.Float, nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("first_end", sa.BigInteger, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("ratio", sa.Float, nullable=False),
        sa.Column("clear_sky_index", sa.Float, nullable=False),
        sa.Column("series", sa.LargeBinary, nullable=False),
        sa.Column("recent_errors", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "forecast_pending",
        sa.Column("household", sa.String(44), primary_key=True),
        sa.Column("horizon_secs", sa.Integer, primary_key=True),
        sa.Column("target_end", sa.BigInteger, primary_key=True),
        sa.Column("made_at", sa.Float, nullable=False),
        sa.Column("model_wh", sa.BigInteger, nullable=True),
        sa.Column("production_wh", sa.BigInteger, nullable=False),
        sa.Column("consumption_wh", sa.BigInteger, nullable=False),
        sa.Column("reference_wh", sa.BigInteger, nullable=False),
        sa.Column("daylight", sa.Boolean, nullable=False),
    )
    op.create_index("ix_forecast_pending_target_end", "forecast_pending", ["target_end"])
    op.create_table(
        "forecast_skill",
        sa.Column("household", sa.String(44), primary_key=True),
        sa.Column("horizon_secs", sa.Integer, primary_key=True),
        sa.Column("steps", sa.BigInteger, nullable=False),
        sa.Column("abs_error_wh", sa.BigInteger, nullable=False),
        sa.Column("reference_abs_error_wh", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forecast_skill")
    op.drop_index("ix_forecast_pending_target_end", table_name="forecast_pending")
    op.drop_table("forecast_pending")
    op.drop_table("forecast_outlooks")
