"""Each meter's first reading still waiting for the chain, on its row and indexed: the batcher's
meters due (``readings.store``) are read from ``meters``, not from every month of ``readings``.
Filled from the readings already stored.

Revision ID: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

FIRST_WAITING = sa.text("first_waiting_counter IS NOT NULL")

# A meter's readings are attested or closed as a prefix of its counters: its first waiting one
# is its lowest unattested counter. Both engines run the same statements.
BACKFILL = (
    "UPDATE meters SET first_waiting_counter = ("
    "SELECT min(r.counter) FROM readings r "
    "WHERE r.meter = meters.meter AND r.attested_at IS NULL)",
    "UPDATE meters SET "
    "first_waiting_timestamp = (SELECT min(r.timestamp) FROM readings r "
    "WHERE r.meter = meters.meter AND r.counter = meters.first_waiting_counter), "
    "first_waiting_received_at = (SELECT min(r.received_at) FROM readings r "
    "WHERE r.meter = meters.meter AND r.counter = meters.first_waiting_counter) "
    "WHERE first_waiting_counter IS NOT NULL",
)


def upgrade() -> None:
    op.add_column("meters", sa.Column("first_waiting_counter", sa.BigInteger, nullable=True))
    op.add_column("meters", sa.Column("first_waiting_timestamp", sa.BigInteger, nullable=True))
    op.add_column("meters", sa.Column("first_waiting_received_at", sa.Float, nullable=True))
    for statement in BACKFILL:
        op.execute(statement)
    op.create_index(
        "ix_meters_first_waiting",
        "meters",
        ["first_waiting_received_at", "meter"],
        sqlite_where=FIRST_WAITING,
        postgresql_where=FIRST_WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_meters_first_waiting", table_name="meters")
    with op.batch_alter_table("meters") as batch:
        batch.drop_column("first_waiting_received_at")
        batch.drop_column("first_waiting_timestamp")
        batch.drop_column("first_waiting_counter")
