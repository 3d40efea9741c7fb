"""Alembic's migrations build exactly the schema the code's tables describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from nishati_oracle.readings.store import Store
from nishati_oracle.storage.partitions import is_partition
from nishati_oracle.storage.schema import built_on, metadata


async def test_the_migrated_schema_is_the_one_the_code_declares(database_url: str) -> None:
    store = await Store.open(database_url)

    def differences(conn: Connection) -> list[object]:
        # The readings' partitions are the upkeep's, not the schema's; an item the schema
        # gives one engine is compared on that engine only.
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, kind, _: not is_partition(name),
                "include_object": lambda item, *_: built_on(item, conn.dialect.name),
            },
        )
        return list(compare_metadata(context, metadata))

    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await store.close()
