"""Alembic environment: runs migrations on the oracle's async engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from nishati_oracle.storage.partitions import is_partition
from nishati_oracle.storage.schema import built_on, metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # The readings' partitions are made by the upkeep, not by migrations; an item the
        # schema gives one engine is compared on that engine only.
        include_name=lambda name, kind, _: not is_partition(name),
        include_object=lambda item, *_: built_on(item, connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


asyncio.run(_migrate())
