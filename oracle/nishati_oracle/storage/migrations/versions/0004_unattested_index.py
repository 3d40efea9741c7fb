"""The counter joins the unattested-readings index: a meter's first unattested reading is then
one seek, and the batcher's query no longer reads every waiting reading.

Revision ID: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_readings_unattested", table_name="readings")
    op.create_index("ix_readings_unattested", "readings", ["attested_at", "meter", "counter"])


def downgrade() -> None:
    op.drop_index("ix_readings_unattested", table_name="readings")
    op.create_index("ix_readings_unattested", "readings", ["attested_at", "meter"])
