"""The operator's pages (``operators.reads``): meters by their last reading, the readings the
chain refused by reason (a partial index: only those rows), trades by state and time.

Revision ID: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

REFUSED_ONLY = sa.text("refused IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_meters_last_timestamp", "meters", ["last_timestamp", "meter"])
    op.create_index(
        "ix_readings_refused",
        "readings",
        ["refused", "meter", "attested_at"],
        sqlite_where=REFUSED_ONLY,
        postgresql_where=REFUSED_ONLY,
    )
    op.create_index("ix_trades_state_updated", "trades", ["state", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_trades_state_updated", table_name="trades")
    op.drop_index("ix_readings_refused", table_name="readings")
    op.drop_index("ix_meters_last_timestamp", table_name="meters")
