"""The Nishati program through anchorpy: instruction builders, account decoding, events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anchorpy.program.common import Event
from anchorpy.program.context import Context
from anchorpy.program.core import Program
from anchorpy.program.event import EventParser
from anchorpy.provider import Provider, Wallet
from solana.rpc.async_api import AsyncClient
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from nishati_client.chain import Chain, TxOutcome
from nishati_client.errors import AccountNotFound, AccountTypeMismatch
from nishati_client.idl import IDL_JSON, idl
from nishati_client.market import Market, MarketConfig, MarketUpdate
from nishati_client.pda import market_address

ACCOUNT_DISCRIMINATORS: dict[str, bytes] = {
    a["name"]: bytes(a["discriminator"]) for a in IDL_JSON["accounts"]
}
# anchorpy's Program insists on a provider even to build instructions; this one is never used.
_UNUSED_CONNECTION_URL = "http://127.0.0.1:9"


class NishatiProgram:
    """Builds instructions and decodes accounts and events; talks to no chain."""

    def __init__(self, program_id: Pubkey) -> None:
        self.program_id = program_id
        provider = Provider(AsyncClient(_UNUSED_CONNECTION_URL), Wallet(Keypair()))
        self.anchor = Program(idl(), program_id, provider)
        self._events = EventParser(program_id, self.anchor.coder)

    def _instruction(self, name: str, *args: Any, accounts: dict[str, Pubkey]) -> Instruction:
        ix: Instruction = self.anchor.instruction[name](*args, ctx=Context(accounts=accounts))
        return ix

    def market_initialize(
        self, *, payer: Pubkey, admin: Pubkey, market_id: int, config: MarketConfig
    ) -> Instruction:
        market, _ = market_address(self.program_id, market_id)
        accounts = {
            "payer": payer,
            "admin": admin,
            "market": market,
            "system_program": SYSTEM_PROGRAM_ID,
        }
        return self._instruction(
            "market_initialize", market_id, config.to_args(), accounts=accounts
        )

    def market_update(self, *, admin: Pubkey, market: Pubkey, update: MarketUpdate) -> Instruction:
        return self._instruction(
            "market_update", update.to_args(), accounts={"admin": admin, "market": market}
        )

    def decode(self, name: str, address: Pubkey, account: Account | None) -> Any:
        """Decodes account ``name`` after checking its owner and discriminator."""
        if account is None:
            raise AccountNotFound(f"no account at {address}")
        if account.owner != self.program_id:
            raise AccountTypeMismatch(f"{address} is owned by {account.owner}, not the program")
        data = bytes(account.data)
        if data[:8] != ACCOUNT_DISCRIMINATORS[name]:
            raise AccountTypeMismatch(f"{address} does not hold a {name} account")
        return self.anchor.coder.accounts.decode(data)

    def events(self, logs: Sequence[str]) -> list[Event]:
        found: list[Event] = []
        self._events.parse_logs(list(logs), found.append)
        return found


class NishatiClient:
    """The program on one chain: send instructions, fetch accounts."""

    def __init__(self, chain: Chain, program_id: Pubkey) -> None:
        self.chain = chain
        self.program = NishatiProgram(program_id)

    async def market_initialize(
        self, *, payer: Keypair, admin: Keypair, market_id: int, config: MarketConfig
    ) -> TxOutcome:
        ix = self.program.market_initialize(
            payer=payer.pubkey(), admin=admin.pubkey(), market_id=market_id, config=config
        )
        signers = [payer] if payer.pubkey() == admin.pubkey() else [payer, admin]
        return await self.chain.send([ix], signers)

    async def market_update(
        self, *, payer: Keypair, admin: Keypair, market: Pubkey, update: MarketUpdate
    ) -> TxOutcome:
        ix = self.program.market_update(admin=admin.pubkey(), market=market, update=update)
        signers = [payer] if payer.pubkey() == admin.pubkey() else [payer, admin]
        return await self.chain.send([ix], signers)

    async def market(self, address: Pubkey) -> Market:
        decoded = self.program.decode("Market", address, await self.chain.account(address))
        return Market.from_decoded(address, decoded)
