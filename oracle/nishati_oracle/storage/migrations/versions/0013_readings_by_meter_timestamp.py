"""A meter's readings by timestamp: a household's day (``households.reads``) reads the day's
rows and the one before it, not the meter's whole history.

Revision ID: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_readings_meter_timestamp", "readings", ["meter", "timestamp", "counter"])


def downgrade() -> None:
    op.drop_index("ix_readings_meter_timestamp", table_name="readings")
