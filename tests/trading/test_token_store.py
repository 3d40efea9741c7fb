"""The Daraja access token shared by oracle replicas through their database (SQLite and
PostgreSQL): replicas renewing at once ask OAuth once, and never invalidate each other's."""

from __future__ import annotations

import asyncio

import httpx

from nishati_oracle.daraja import DarajaClient
from nishati_oracle.readings.store import Store
from nishati_oracle.trading.token_store import DatabaseTokenStore
from nishati_oracle.trading.vault import PhoneVault
from tests.daraja.fake import Sleeps, config
from tests.daraja.test_token import QUERY, SingleTokenDaraja, completed

KEY = bytes(range(32))
SALT = bytes(range(16, 48))
REPLICAS = 3


async def test_replicas_on_one_database_share_one_token(database_url: str) -> None:
    fake = SingleTokenDaraja(token_delay=0.05)
    fake.script(QUERY, *[completed] * (REPLICAS * 4))
    # Each replica its own engine on the one database, as separate processes would have.
    stores = [await Store.open(database_url) for _ in range(REPLICAS)]
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    app = config()
    clients = [
        DarajaClient(
            app,
            http=http,
            token_store=DatabaseTokenStore(
                store.engine, PhoneVault(KEY, SALT), app.consumer_key.get_secret_value()
            ),
            sleep=Sleeps(),
        )
        for store in stores
    ]
    try:
        for round_ in range(4):
            # Every replica needs the token at the same moment.
            await asyncio.gather(
                *(client.stk_query(f"ws_CO_{round_}_{i}") for i, client in enumerate(clients))
            )
        assert fake.tokens_issued == 1
        assert all(r.headers["Authorization"] == "Bearer tok-1" for r in fake.sent(QUERY))
    finally:
        await http.aclose()
        for store in stores:
            await store.close()
