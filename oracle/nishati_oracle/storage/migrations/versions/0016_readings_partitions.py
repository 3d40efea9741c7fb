"""Readings partitioned by month on PostgreSQL (``storage.partitions``): the table is rebuilt
partitioned by range of ``timestamp``, its rows copied into their months, its id sequence kept.
Its keys hold the partition key: the primary key is (id, timestamp), the counter's unique key
(meter, counter, timestamp). SQLite keeps its one table.

The copy rewrites every row in one transaction: on a large table, run it in a quiet hour.

Revision ID: 0016
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from alembic import op

from nishati_oracle.storage.partitions import CREATE_DEFAULT, MONTHS_AHEAD, Month, create_month

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COPY = (
    "INSERT INTO readings (id, meter, counter, timestamp, exported_wh, imported_wh, message, "
    "signature, received_at, attested_at, attest_signature, refused) "
    "SELECT id, meter, counter, timestamp, exported_wh, imported_wh, message, signature, "
    "received_at, attested_at, attest_signature, refused FROM readings_old"
)


def _columns(id_column: sa.Column[int]) -> list[sa.Column[Any]]:
    return [
        id_column,
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
        sa.Column("refused", sa.String(40), nullable=True),
    ]


# The table's indexes other than its keys', as PostgreSQL would make them again: whichever
# migrations before this one added, the new table gets them all.
_INDEXES = (
    "SELECT indexname, replace(indexdef, ' ON ONLY ', ' ON ') FROM pg_indexes "
    "WHERE schemaname = current_schema() AND tablename = 'readings' "
    "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
)


def _set_aside() -> list[str]:
    """Renames the readings table out of the way, its index and key names freed; returns the
    statements making its indexes again."""
    found = [(str(name), str(made)) for name, made in op.get_bind().execute(sa.text(_INDEXES))]
    for name, _ in found:
        op.drop_index(name, table_name="readings")
    op.rename_table("readings", "readings_old")
    op.execute("ALTER TABLE readings_old RENAME CONSTRAINT readings_pkey TO readings_old_pkey")
    return [made for _, made in found]


def _move_in() -> None:
    """Copies the set-aside rows into the new table, hands it the id sequence, drops the old."""
    op.execute(COPY)
    op.execute("ALTER SEQUENCE readings_id_seq OWNED BY readings.id")
    op.drop_table("readings_old")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    indexes = _set_aside()
    op.create_table(
        "readings",
        *_columns(
            sa.Column(
                "id",
                sa.BigInteger,
                nullable=False,
                autoincrement=False,
                server_default=sa.text("nextval('readings_id_seq')"),
            )
        ),
        sa.PrimaryKeyConstraint("id", "timestamp", name="readings_pkey"),
        sa.UniqueConstraint(
            "meter", "counter", "timestamp", name="uq_readings_meter_counter_timestamp"
        ),
        postgresql_partition_by="RANGE (timestamp)",
    )
    for made in indexes:
        op.execute(made)
    starts: list[int] = list(op.get_bind().execute(sa.text(_MONTHS_WITH_ROWS)).scalars())
    months = {Month.of(int(start)) for start in starts}
    month = Month.of(time.time())
    months.add(month)
    for _ in range(MONTHS_AHEAD):
        month = month.next()
        months.add(month)
    for each in sorted(months, key=lambda m: m.start):
        op.execute(create_month(each))
    op.execute(CREATE_DEFAULT)
    _move_in()


# The first second of each month the old table has rows in.
_MONTHS_WITH_ROWS = (
    "SELECT DISTINCT extract(epoch FROM date_trunc('month', to_timestamp(timestamp) "
    "AT TIME ZONE 'UTC'))::bigint FROM readings_old"
)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    indexes = _set_aside()
    op.create_table(
        "readings",
        *_columns(
            sa.Column(
                "id",
                sa.BigInteger,
                primary_key=True,
                autoincrement=False,
                server_default=sa.text("nextval('readings_id_seq')"),
            )
        ),
        sa.UniqueConstraint("meter", "counter", name="uq_readings_meter_counter"),
    )
    for made in indexes:
        op.execute(made)
    _move_in()
