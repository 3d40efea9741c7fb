"""A market day for trading tests: an RPC validator, the Daraja simulator and the oracle as real
processes, a seller with an offer, and buyers whose phones pick the simulator's outcomes."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.keys import write_keypair
from nishati_client.market import MarketConfig
from nishati_client.program import NishatiClient
from nishati_client.trading import Offer
from nishati_dev.localday import (
    as_environment,
    enrol,
    household,
    oracle_database,
    simulator_payments,
)
from nishati_dev.processes import DarajaSimService, OracleService, free_port
from nishati_dev.sandbox import (
    CANCEL_GRACE_SECS,
    DAILY_MINT_CAP_WH,
    MAX_OPEN_TRADES_PER_BUYER,
    Harness,
    Member,
    OpenMarket,
    fund,
    open_market,
)
from nishati_oracle.core.settings import OracleSettings, StorageSettings

PHONE_SALT = bytes(range(32))
CALLBACK_TOKEN = "test-callback-token-0123456789abcdef"  # noqa: S105 (a test value)
OPERATOR_TOKEN = "test-operator-token-0123456789abcdef"  # noqa: S105 (a test value)
FEE_BPS = 150
PRICE = 2_500  # cents per kWh
SELLER_PHONE = "254700123456"
# A paid trade's states, from its order to the seller's payout confirmed.
HAPPY_PATH = ["created", "opened", "stk_sent", "paid", "settled", "payout_sent", "payout_confirmed"]


def market_config(deadline_secs: int) -> Any:
    def config(oracle: Pubkey) -> MarketConfig:
        return MarketConfig(
            oracle_authority=oracle,
            fee_bps=FEE_BPS,
            min_price_cents_per_kwh=1_000,
            max_price_cents_per_kwh=5_000,
            payment_deadline_secs=deadline_secs,
            cancel_grace_secs=CANCEL_GRACE_SECS,
            # Sellers' energy mints in seconds of the validator's clock, not hours.
            max_export_watts=100_000_000,
            daily_mint_cap_wh=DAILY_MINT_CAP_WH,
            max_open_trades_per_buyer=MAX_OPEN_TRADES_PER_BUYER,
        )

    return config


def oracle_env(
    rpc_url: str,
    market: OpenMarket,
    sim_url: str,
    public_url: str,
    tmp_path: Path,
    database_url: str | None = None,
) -> dict[str, str]:
    """A trading oracle's environment: its key in ``tmp_path``, its database there (SQLite)
    unless given ``database_url``."""
    key = tmp_path / "oracle.json"
    write_keypair(key, market.oracle)
    payments = simulator_payments(sim_url, public_url, CALLBACK_TOKEN).model_copy(
        update={
            "stk_query_after_secs": 3,
            "payment_worker_interval_secs": 0.2,
            "payout_status_after_secs": 3,
            # A failed payout is paid again within seconds, not minutes.
            "payout_retry_secs": 1,
            "operator_token": SecretStr(OPERATOR_TOKEN),
        }
    )
    settings = OracleSettings(
        market=str(market.address),
        oracle_keypair=key,
        chain=ClientSettings(rpc_url=rpc_url, phone_salt=SecretStr(PHONE_SALT.hex())),
        storage=StorageSettings(database_url=database_url or oracle_database(tmp_path)),
        payments=payments,
    )
    return as_environment(settings)


async def sim_control(sim: DarajaSimService, path: str, body: Any = None) -> Any:
    """The Daraja simulator's answer to one of its control routes: a POST of ``body``, or a
    GET without one."""
    async with httpx.AsyncClient(base_url=sim.url, timeout=30) as client:
        answer = await client.post(path, json=body) if body is not None else await client.get(path)
        answer.raise_for_status()
        return answer.json()


@dataclass
class TradingWorld:
    market: OpenMarket
    seller: Member
    offer: Offer
    oracle: OracleService
    sim: DarajaSimService
    http: httpx.AsyncClient
    database: Path
    buyers: dict[str, Member] = field(default_factory=dict)
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` on the oracle's database."""
        with sqlite3.connect(self.database) as db:
            return db.execute(sql).fetchall()

    def trade_rows(self) -> dict[str, str]:
        """Trade id -> state, read straight from the oracle's database."""
        with sqlite3.connect(self.database) as db:
            return dict(db.execute("SELECT id, state FROM trades").fetchall())

    def phone(self, suffix: str = "00") -> str:
        """A phone of its own whose last two digits pick the simulator's outcome."""
        return f"2547{next(self.numbers):06d}{suffix}"

    async def seller_with_offer(self, phone: str, wh: int = 50_000) -> tuple[Member, Offer]:
        """Another seller (its phone picks the simulator's payout outcome) with an offer."""
        seller = await household(self.market, phone, PHONE_SALT)
        await self.market.mint(seller, wh)
        offer = await self.market.offer(seller, wh, PRICE, expires_in=3_600)
        await enrol(self.http, seller, phone)
        return seller, offer

    async def metric(self, name: str, **labels: str) -> float:
        text = (await self.http.get("/metrics")).text
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        prefix = f"{name}{{{wanted}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(prefix + " "):
                return float(line.split()[-1])
        return 0.0

    async def post_callback(self, path: str, body: Any, token: str = CALLBACK_TOKEN) -> Any:
        return await self.http.post(f"{path}/{token}", json=body)

    @property
    def client(self) -> NishatiClient:
        return self.market.h.client

    async def buyer(self, phone: str) -> Member:
        """A custodial household with this phone (registered once)."""
        if phone not in self.buyers:
            self.buyers[phone] = await household(self.market, phone, PHONE_SALT)
        return self.buyers[phone]

    async def buy(self, phone: str, wh: int, offer: Offer | None = None) -> httpx.Response:
        await self.buyer(phone)
        body = {"offer": str((offer or self.offer).address), "wh": wh, "phone": phone}
        return await self.http.post("/api/v1/trades", json=body)

    async def lookup(self, path: str) -> httpx.Response:
        """A trade's lookup route (its payment, its STK status), as an operator."""
        return await self.http.get(path, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})

    async def payment(self, trade_id: str) -> dict[str, Any]:
        answer = await self.lookup(f"/api/v1/payments/{trade_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def final(self, trade_id: str, within_secs: float = 60) -> dict[str, Any]:
        """The trade once it reaches a final state."""
        deadline = time.monotonic() + within_secs
        while True:
            payment = await self.payment(trade_id)
            if payment["final"]:
                return payment
            assert time.monotonic() < deadline, f"still {payment['state']}: {payment['history']}"
            await asyncio.sleep(0.2)

    async def operator(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """An operator route, with the operator's token."""
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        return await self.http.request(method, path, json=body, headers=headers)

    async def sim_control(self, path: str, body: Any = None) -> Any:
        return await sim_control(self.sim, path, body)


@asynccontextmanager
async def trading_world(
    rpc_url: str,
    rpc_payer: Keypair,
    settings: ClientSettings,
    tmp_path: Path,
    *,
    offer_wh: int = 200_000,
    deadline_secs: int = 60,
    sim_settings: dict[str, object] | None = None,
    oracle_env_changes: dict[str, str] | None = None,
) -> AsyncIterator[TradingWorld]:
    program_id = Pubkey.from_string(settings.program_id)
    chain = RpcChain(rpc_url, program_id, settings.commitment)
    h = Harness(chain, rpc_payer, NishatiClient(chain, program_id), None)
    sim = DarajaSimService(
        {
            "callback_delay_secs": 0.2,
            "same_amount_window_secs": 0,
            # Durable books: a test that kills the simulator finds them after a restart.
            "database": tmp_path / "daraja-sim.db",
            **(sim_settings or {}),
        },
        tmp_path / "daraja-sim.log",
    )
    oracle: OracleService | None = None
    try:
        market = await open_market(h, config=market_config(deadline_secs))
        await fund(h, market.oracle.pubkey(), 20 * 10**9)
        seller = await household(market, SELLER_PHONE, PHONE_SALT)
        await market.mint(seller, offer_wh)
        offer = await market.offer(seller, offer_wh, PRICE, expires_in=3_600)
        sim.start()
        port = free_port()
        env = oracle_env(rpc_url, market, sim.url, f"http://127.0.0.1:{port}", tmp_path)
        env |= oracle_env_changes or {}
        oracle = OracleService(env, tmp_path / "oracle.log", port=port)
        oracle.start()
        # The payment tests order as an integration would, with the operator's token.
        operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        async with httpx.AsyncClient(base_url=oracle.url, timeout=30, headers=operator) as http:
            await enrol(http, seller, SELLER_PHONE)
            yield TradingWorld(market, seller, offer, oracle, sim, http, tmp_path / "oracle.db")
    finally:
        if oracle is not None:
            oracle.stop()
        sim.stop()
        await chain.close()


def forged_success(checkout: str, phone: str, amount: int) -> dict[str, Any]:
    """An STK success callback as a forger would post it: the trade's amount and phone, a
    receipt and MerchantRequestID of its own."""
    items = [
        {"Name": "Amount", "Value": amount},
        {"Name": "MpesaReceiptNumber", "Value": "FORGED0001"},
        {"Name": "TransactionDate", "Value": 20261126101010},
        {"Name": "PhoneNumber", "Value": int(phone)},
    ]
    return {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": "forged",
                "CheckoutRequestID": checkout,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {"Item": items},
            }
        }
    }


def module_world(
    name: str,
    *,
    sim_settings: dict[str, object] | None = None,
    oracle_env_changes: dict[str, str] | None = None,
) -> Any:
    """A test module's one trading world, the fixture ``world`` (``world = module_world(...)``
    in the module), in a directory named ``name``."""

    @pytest.fixture(scope="module")
    async def world(
        rpc_url: str,
        rpc_payer: Keypair,
        settings: ClientSettings,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> AsyncIterator[TradingWorld]:
        directory = tmp_path_factory.mktemp(name)
        async with trading_world(
            rpc_url,
            rpc_payer,
            settings,
            directory,
            sim_settings=sim_settings,
            oracle_env_changes=oracle_env_changes,
        ) as started:
            yield started

    return world
