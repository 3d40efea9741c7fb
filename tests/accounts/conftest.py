"""A market on LiteSVM and the oracle app serving it in-process, sending sign-in codes through
the SMS simulator (a real process on loopback), households whose phones it knows, and trades
between them."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from nishati_client.config import ClientSettings
from nishati_client.phone import commitment
from nishati_dev.localday import simulator_payments
from nishati_dev.processes import DarajaSimService, SmsSimService
from nishati_dev.sandbox import Harness, Member
from nishati_dev.sms_sim import TEST_API_KEY
from nishati_oracle.core.settings import AuthSettings, Sms, SmsSettings
from nishati_oracle.trading.ledger import TradeRecord, TradeState
from tests.harness.oracle import CALLBACK_TOKEN, PHONE_SALT, OracleWorld, start_world

OPERATOR_TOKEN = "test-operator-token-for-accounts-0123456789"  # noqa: S105 (a test value)
AUTH_SECRET = "test-auth-secret-0123456789abcdef"  # noqa: S105 (a test value)
OPERATOR = "amina"
OPERATOR_PASSWORD = "a long operator passphrase"  # noqa: S105 (a test value)
CODE = re.compile(r"\b([0-9]{6})\b")


@pytest.fixture(scope="module")
def sms_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmsSimService]:
    with SmsSimService(tmp_path_factory.mktemp("sms-sim") / "sms-sim.log") as sim:
        yield sim


def new_phone() -> str:
    return f"2547{secrets.randbelow(10**8):08d}"


@dataclass
class SignInWorld:
    oracle: OracleWorld
    sms: SmsSimService
    database: Path
    clients: list[httpx.AsyncClient]
    operator_added: bool = False

    def browser(self) -> httpx.AsyncClient:
        """A client of its own (its own cookies), over https so Secure cookies are sent."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.oracle.app), base_url="https://oracle"
        )
        self.clients.append(client)
        return client

    def replaying(self, **cookies: str) -> httpx.AsyncClient:
        """A client sending exactly these cookies (as another browser would replay them)."""
        client = self.browser()
        client.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        return client

    async def household(self) -> tuple[Member, str]:
        """A custodial household with a phone of its own, enrolled with the oracle."""
        phone = new_phone()
        member = await self.oracle.market.register(
            custodial=True, phone_commitment=commitment(PHONE_SALT, phone)
        )
        answer = await self.oracle.http.put(
            f"/api/v1/households/{member.address}/phone", json={"phone": phone}
        )
        assert answer.status_code == 204, answer.text
        return member, phone

    async def messages(self, phone: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sms.url) as sim:
            found: list[dict[str, Any]] = (
                await sim.get("/messages", params={"to": "+" + phone})
            ).json()
        return found

    async def last_code(self, phone: str) -> str:
        """The code in the last message the simulator took for ``phone``."""
        sent = await self.messages(phone)
        assert sent, f"no message for {phone}"
        found = CODE.search(sent[-1]["message"])
        assert found is not None, sent[-1]
        return found.group(1)

    async def sign_in(self, client: httpx.AsyncClient, phone: str) -> httpx.Response:
        asked = await client.post("/api/v1/auth/code", json={"phone": phone})
        assert asked.status_code == 202, asked.text
        code = await self.last_code(phone)
        answer = await client.post("/api/v1/auth/session", json={"phone": phone, "code": code})
        assert answer.status_code == 200, answer.text
        return answer

    async def operator_session(self, client: httpx.AsyncClient) -> None:
        if not self.operator_added:
            await self.oracle.services.accounts.operators.add(OPERATOR, OPERATOR_PASSWORD)
            self.operator_added = True
        answer = await client.post(
            "/api/v1/auth/operator", json={"username": OPERATOR, "password": OPERATOR_PASSWORD}
        )
        assert answer.status_code == 200, answer.text

    async def trade(self, buyer: Member, seller: Member) -> TradeRecord:
        """A trade between the two, stored as the desk stores one (its payment asked for)."""
        trading = self.oracle.services.trading
        assert trading is not None
        now = time.time()
        trade = TradeRecord(
            id=secrets.token_hex(16),
            state=TradeState.stk_sent,
            market=str(self.oracle.market.address),
            offer=str(seller.address),
            seller=str(seller.address),
            buyer=str(buyer.address),
            trade_address=str(buyer.address),
            payment_ref_hash=secrets.token_bytes(32),
            wh=500,
            price_cents_per_kwh=2_500,
            total_cents=1_250,
            fee_cents=19,
            payout_kes=12,
            buyer_phone=b"sealed",
            buyer_phone_hash=secrets.token_hex(32),
            seller_phone=b"sealed",
            deadline=None,
            give_up_at=None,
            merchant_request_id=None,
            checkout_request_id=f"ws_CO_{secrets.token_hex(8)}",
            mpesa_receipt=None,
            result_code=None,
            result_desc=None,
            chain_signature=None,
            payout_conversation_id=None,
            payout_receipt=None,
            queries=0,
            next_check_at=now + 3_600,
            created_at=now,
            updated_at=now,
        )
        await trading.ledger.create(trade, "a test trade")
        return trade


def sign_in_settings(sms_url: str, daraja_url: str, **auth: Any) -> dict[str, Any]:
    payments = simulator_payments(daraja_url, "http://oracle", CALLBACK_TOKEN).model_copy(
        update={"operator_token": SecretStr(OPERATOR_TOKEN)}
    )
    return {
        "chain": ClientSettings(phone_salt=SecretStr(PHONE_SALT.hex())),
        "payments": payments,
        "sms": SmsSettings(provider=Sms.simulator, url=sms_url, api_key=SecretStr(TEST_API_KEY)),
        "auth": AuthSettings(secret=SecretStr(AUTH_SECRET), **auth),
    }


@pytest.fixture
def auth_changes() -> dict[str, Any]:
    """Changes to the auth settings of ``signin`` (a test overrides it)."""
    return {}


@pytest.fixture
async def signin(
    litesvm: Harness,
    tmp_path: Path,
    sms_sim: SmsSimService,
    sim_process: DarajaSimService,
    auth_changes: dict[str, Any],
) -> AsyncIterator[SignInWorld]:
    database = tmp_path / "oracle.db"
    started = await start_world(
        litesvm,
        f"sqlite+aiosqlite:///{database}",
        tmp_path,
        **sign_in_settings(sms_sim.url, sim_process.url, **auth_changes),
    )
    world = SignInWorld(started, sms_sim, database, [])
    async with started.app.router.lifespan_context(started.app), started.http:
        try:
            yield world
        finally:
            for client in world.clients:
                await client.aclose()
