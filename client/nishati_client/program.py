"""The Nishati program through anchorpy: instruction builders, account decoding, events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from anchorpy.program.common import Event
from anchorpy.program.context import Context
from anchorpy.program.core import Program
from anchorpy.program.event import EventParser
from anchorpy.provider import Provider, Wallet
from solana.rpc.async_api import AsyncClient
from solders.account import Account
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import INSTRUCTIONS as INSTRUCTIONS_SYSVAR_ID
from spl.token.constants import ACCOUNT_LEN, MINT_LEN, TOKEN_PROGRAM_ID

from nishati_client import pda
from nishati_client.chain import AccountLister, Chain, TxOutcome
from nishati_client.codec import hash32
from nishati_client.errors import AccountNotFound, AccountTypeMismatch, NishatiClientError
from nishati_client.household import Household, MeterRecord
from nishati_client.idl import IDL_JSON, idl
from nishati_client.market import Market, MarketConfig, MarketUpdate
from nishati_client.readings import SignedReading, ed25519_instruction
from nishati_client.trading import Offer, Trade

# A decoded account type (Household, Trade, ...).
DecodedAccount = TypeVar("DecodedAccount")

ACCOUNT_DISCRIMINATORS: dict[str, bytes] = {
    a["name"]: bytes(a["discriminator"]) for a in IDL_JSON["accounts"]
}
_ACCOUNT_FIELDS: dict[str, list[dict[str, Any]]] = {
    t["name"]: t["type"]["fields"] for t in IDL_JSON["types"] if t["name"] in ACCOUNT_DISCRIMINATORS
}
_SIZES = {"bool": 1, "u8": 1, "i8": 1, "u16": 2, "i16": 2, "u32": 4, "i32": 4, "u64": 8, "i64": 8}
_SIZES |= {"u128": 16, "i128": 16, "pubkey": 32}
# anchorpy's Program insists on a provider even to build instructions; this one is never used.
_UNUSED_CONNECTION_URL = "http://127.0.0.1:9"
# SPL Token layouts: a token account's amount, and a mint's supply (after its COption authority).
TOKEN_ACCOUNT_AMOUNT_OFFSET = 64
MINT_SUPPLY_OFFSET = 36


@dataclass(frozen=True)
class Created:
    """A transaction that created an account, and the account's address."""

    address: Pubkey
    outcome: TxOutcome


class NishatiProgram:
    """Builds instructions and decodes accounts and events; talks to no chain.

    Builders derive every PDA themselves; an instruction that needs an account's stored fields
    (the offer a trade settles against, the rent payer to refund) takes the decoded account.
    """

    def __init__(self, program_id: Pubkey) -> None:
        self.program_id = program_id
        provider = Provider(AsyncClient(_UNUSED_CONNECTION_URL), Wallet(Keypair()))
        self.anchor = Program(idl(), program_id, provider)
        self._events = EventParser(program_id, self.anchor.coder)

    def _instruction(
        self,
        name: str,
        *args: Any,
        accounts: dict[str, Pubkey],
        remaining_accounts: Sequence[AccountMeta] = (),
    ) -> Instruction:
        context = Context(accounts=accounts, remaining_accounts=list(remaining_accounts))
        ix: Instruction = self.anchor.instruction[name](*args, ctx=context)
        return ix

    # Addresses

    def energy_mint(self, market: Pubkey) -> Pubkey:
        return pda.energy_mint_address(self.program_id, market)[0]

    def household_address(self, market: Pubkey, owner: Pubkey) -> Pubkey:
        return pda.household_address(self.program_id, market, owner)[0]

    def energy_account(self, household: Pubkey) -> Pubkey:
        return pda.energy_account_address(self.program_id, household)[0]

    def meter_record_address(self, market: Pubkey, meter: Pubkey) -> Pubkey:
        return pda.meter_record_address(self.program_id, market, meter)[0]

    def offer_address(self, household: Pubkey, offer_id: int) -> Pubkey:
        return pda.offer_address(self.program_id, household, offer_id)[0]

    def escrow(self, offer: Pubkey) -> Pubkey:
        return pda.escrow_address(self.program_id, offer)[0]

    def trade_address(self, offer: Pubkey, payment_ref_hash: bytes) -> Pubkey:
        return pda.trade_address(self.program_id, offer, payment_ref_hash)[0]

    # Market

    def market_initialize(
        self, *, payer: Pubkey, admin: Pubkey, market_id: int, config: MarketConfig
    ) -> Instruction:
        market, _ = pda.market_address(self.program_id, market_id)
        accounts = {
            "payer": payer,
            "admin": admin,
            "market": market,
            "energy_mint": self.energy_mint(market),
            "token_program": TOKEN_PROGRAM_ID,
            "system_program": SYSTEM_PROGRAM_ID,
        }
        return self._instruction(
            "market_initialize", market_id, config.to_args(), accounts=accounts
        )

    def market_update(self, *, admin: Pubkey, market: Pubkey, update: MarketUpdate) -> Instruction:
        return self._instruction(
            "market_update", update.to_args(), accounts={"admin": admin, "market": market}
        )

    def market_pause(self, *, admin: Pubkey, market: Pubkey) -> Instruction:
        return self._instruction("market_pause", accounts={"admin": admin, "market": market})

    def market_resume(self, *, admin: Pubkey, market: Pubkey) -> Instruction:
        return self._instruction("market_resume", accounts={"admin": admin, "market": market})

    # Households and meters

    def household_register(
        self,
        *,
        payer: Pubkey,
        authority: Pubkey,
        market: Pubkey,
        owner: Pubkey,
        meter: Pubkey,
        phone_commitment: bytes,
    ) -> Instruction:
        """Registers ``owner``'s household; ``authority`` is the owner, or the oracle for a
        custodial household. ``phone_commitment`` is the 32-byte salted phone hash."""
        household = self.household_address(market, owner)
        accounts = {
            "payer": payer,
            "authority": authority,
            "market": market,
            "household": household,
            "energy_account": self.energy_account(household),
            "meter_record": self.meter_record_address(market, meter),
            "energy_mint": self.energy_mint(market),
            "token_program": TOKEN_PROGRAM_ID,
            "system_program": SYSTEM_PROGRAM_ID,
        }
        commitment = list(hash32(phone_commitment, "phone_commitment"))
        return self._instruction("household_register", owner, meter, commitment, accounts=accounts)

    def household_set_meter(
        self, *, payer: Pubkey, authority: Pubkey, household: Household, meter: Pubkey
    ) -> Instruction:
        """Replaces ``household``'s meter with ``meter``; the authority is the admin or owner."""
        accounts = {
            "payer": payer,
            "authority": authority,
            "market": household.market,
            "household": household.address,
            "old_meter_record": self.meter_record_address(household.market, household.meter),
            "new_meter_record": self.meter_record_address(household.market, meter),
            "system_program": SYSTEM_PROGRAM_ID,
        }
        return self._instruction("household_set_meter", meter, accounts=accounts)

    def meter_attest(
        self,
        *,
        oracle: Pubkey,
        market: Pubkey,
        households: Sequence[Pubkey],
        ed25519_instruction_index: int,
    ) -> Instruction:
        """Attests the readings of the Ed25519 instruction at ``ed25519_instruction_index``;
        ``households[i]`` is credited for reading ``i``."""
        credited = [
            AccountMeta(address, is_signer=False, is_writable=True)
            for household in households
            for address in (household, self.energy_account(household))
        ]
        accounts = {
            "oracle": oracle,
            "market": market,
            "energy_mint": self.energy_mint(market),
            "instructions_sysvar": INSTRUCTIONS_SYSVAR_ID,
            "token_program": TOKEN_PROGRAM_ID,
        }
        return self._instruction(
            "meter_attest",
            ed25519_instruction_index,
            accounts=accounts,
            remaining_accounts=credited,
        )

    def attest_readings(
        self, *, oracle: Pubkey, market: Pubkey, readings: Sequence[tuple[SignedReading, Pubkey]]
    ) -> list[Instruction]:
        """The Ed25519 instruction and ``meter_attest`` for (signed reading, household) pairs,
        in that order: one transaction."""
        return [
            ed25519_instruction([signed for signed, _ in readings]),
            self.meter_attest(
                oracle=oracle,
                market=market,
                households=[household for _, household in readings],
                ed25519_instruction_index=0,
            ),
        ]

    def energy_redeem(
        self, *, authority: Pubkey, market: Pubkey, household: Pubkey, wh: int
    ) -> Instruction:
        accounts = {
            "authority": authority,
            "market": market,
            "household": household,
            "energy_account": self.energy_account(household),
            "energy_mint": self.energy_mint(market),
            "token_program": TOKEN_PROGRAM_ID,
        }
        return self._instruction("energy_redeem", wh, accounts=accounts)

    # Offers and trades

    def offer_create(
        self,
        *,
        payer: Pubkey,
        authority: Pubkey,
        household: Household,
        wh: int,
        price_cents_per_kwh: int,
        expires_at: int,
    ) -> Instruction:
        """Offers ``wh`` of the household's energy; the offer is its ``next_offer_id``."""
        offer = self.offer_address(household.address, household.next_offer_id)
        accounts = {
            "payer": payer,
            "authority": authority,
            "market": household.market,
            "household": household.address,
            "energy_account": self.energy_account(household.address),
            "offer": offer,
            "escrow": self.escrow(offer),
            "energy_mint": self.energy_mint(household.market),
            "token_program": TOKEN_PROGRAM_ID,
            "system_program": SYSTEM_PROGRAM_ID,
        }
        return self._instruction(
            "offer_create", wh, price_cents_per_kwh, expires_at, accounts=accounts
        )

    def offer_cancel(self, *, caller: Pubkey, offer: Offer) -> Instruction:
        accounts = {
            "caller": caller,
            "market": offer.market,
            "household": offer.seller,
            "energy_account": self.energy_account(offer.seller),
            "offer": offer.address,
            "escrow": offer.escrow,
            "rent_receiver": offer.rent_payer,
            "token_program": TOKEN_PROGRAM_ID,
        }
        return self._instruction("offer_cancel", accounts=accounts)

    def trade_open(
        self,
        *,
        payer: Pubkey,
        authority: Pubkey,
        market: Pubkey,
        offer: Pubkey,
        buyer: Pubkey,
        wh: int,
        payment_ref_hash: bytes,
    ) -> Instruction:
        """Reserves ``wh`` of ``offer`` for household ``buyer`` against a 32-byte payment
        reference hash; ``authority`` is the buyer's owner, or the oracle if custodial."""
        accounts = {
            "payer": payer,
            "authority": authority,
            "market": market,
            "offer": offer,
            "buyer": buyer,
            "trade": self.trade_address(offer, payment_ref_hash),
            "system_program": SYSTEM_PROGRAM_ID,
        }
        reference = list(hash32(payment_ref_hash, "payment_ref_hash"))
        return self._instruction("trade_open", wh, reference, accounts=accounts)

    def trade_settle(self, *, oracle: Pubkey, trade: Trade, receipt_hash: bytes) -> Instruction:
        accounts = {
            "oracle": oracle,
            "market": trade.market,
            "offer": trade.offer,
            "escrow": self.escrow(trade.offer),
            "trade": trade.address,
            "buyer_energy_account": trade.buyer_energy_account,
            "rent_receiver": trade.rent_payer,
            "token_program": TOKEN_PROGRAM_ID,
        }
        receipt = list(hash32(receipt_hash, "receipt_hash"))
        return self._instruction("trade_settle", receipt, accounts=accounts)

    def trade_cancel(self, *, caller: Pubkey, trade: Trade) -> Instruction:
        accounts = {
            "caller": caller,
            "market": trade.market,
            "offer": trade.offer,
            "trade": trade.address,
            "rent_receiver": trade.rent_payer,
        }
        return self._instruction("trade_cancel", accounts=accounts)

    # Decoding

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


def _size(idl_type: Any) -> int:
    if isinstance(idl_type, str):
        return _SIZES[idl_type]
    if "array" in idl_type:
        element, count = idl_type["array"]
        return _size(element) * int(count)
    raise ValueError(f"{idl_type} has no fixed size")


def field_offset(account: str, field: str) -> int:
    """Where ``field`` starts in an account's data (after the discriminator), from the IDL."""
    offset = 8
    for item in _ACCOUNT_FIELDS[account]:
        if item["name"] == field:
            return offset
        offset += _size(item["type"])
    raise KeyError(f"{account} has no field {field}")


def _token_u64(address: Pubkey, account: Account | None, size: int, offset: int) -> int:
    """A u64 of an SPL Token account or mint of ``size`` bytes, after checking its owner."""
    if account is None:
        raise AccountNotFound(f"no account at {address}")
    data = bytes(account.data)
    if account.owner != TOKEN_PROGRAM_ID or len(data) != size:
        raise AccountTypeMismatch(f"{address} is not an SPL Token account of {size} bytes")
    return int.from_bytes(data[offset : offset + 8], "little")


def _signers(payer: Keypair, *others: Keypair) -> list[Keypair]:
    """The payer first, then each other signer once."""
    signers = [payer]
    for keypair in others:
        if all(keypair.pubkey() != s.pubkey() for s in signers):
            signers.append(keypair)
    return signers


class NishatiClient:
    """The program on one chain: send instructions, fetch accounts.

    Every send takes the fee ``payer`` first; it signs beside the instruction's own signer and
    may be the same keypair.
    """

    def __init__(self, chain: Chain, program_id: Pubkey) -> None:
        self.chain = chain
        self.program = NishatiProgram(program_id)

    async def _send(self, ix: Instruction, payer: Keypair, *signers: Keypair) -> TxOutcome:
        return await self.chain.send([ix], _signers(payer, *signers))

    # Market

    async def market_initialize(
        self, *, payer: Keypair, admin: Keypair, market_id: int, config: MarketConfig
    ) -> TxOutcome:
        ix = self.program.market_initialize(
            payer=payer.pubkey(), admin=admin.pubkey(), market_id=market_id, config=config
        )
        return await self._send(ix, payer, admin)

    async def market_update(
        self, *, payer: Keypair, admin: Keypair, market: Pubkey, update: MarketUpdate
    ) -> TxOutcome:
        ix = self.program.market_update(admin=admin.pubkey(), market=market, update=update)
        return await self._send(ix, payer, admin)

    async def market_pause(self, *, payer: Keypair, admin: Keypair, market: Pubkey) -> TxOutcome:
        ix = self.program.market_pause(admin=admin.pubkey(), market=market)
        return await self._send(ix, payer, admin)

    async def market_resume(self, *, payer: Keypair, admin: Keypair, market: Pubkey) -> TxOutcome:
        ix = self.program.market_resume(admin=admin.pubkey(), market=market)
        return await self._send(ix, payer, admin)

    # Households and meters

    async def household_register(
        self,
        *,
        payer: Keypair,
        authority: Keypair,
        market: Pubkey,
        owner: Pubkey,
        meter: Pubkey,
        phone_commitment: bytes,
    ) -> Created:
        ix = self.program.household_register(
            payer=payer.pubkey(),
            authority=authority.pubkey(),
            market=market,
            owner=owner,
            meter=meter,
            phone_commitment=phone_commitment,
        )
        outcome = await self._send(ix, payer, authority)
        return Created(self.program.household_address(market, owner), outcome)

    async def household_set_meter(
        self, *, payer: Keypair, authority: Keypair, household: Household, meter: Pubkey
    ) -> TxOutcome:
        ix = self.program.household_set_meter(
            payer=payer.pubkey(), authority=authority.pubkey(), household=household, meter=meter
        )
        return await self._send(ix, payer, authority)

    async def meter_attest(
        self,
        *,
        payer: Keypair,
        oracle: Keypair,
        market: Pubkey,
        readings: Sequence[tuple[SignedReading, Pubkey]],
        lookup_tables: Sequence[AddressLookupTableAccount] = (),
    ) -> TxOutcome:
        """Attests (signed reading, household) pairs in one transaction: v0 with the market's
        lookup tables (:mod:`nishati_client.lookup`), which fit more readings."""
        instructions = self.program.attest_readings(
            oracle=oracle.pubkey(), market=market, readings=readings
        )
        return await self.chain.send(instructions, _signers(payer, oracle), lookup_tables)

    async def energy_redeem(
        self, *, payer: Keypair, authority: Keypair, market: Pubkey, household: Pubkey, wh: int
    ) -> TxOutcome:
        ix = self.program.energy_redeem(
            authority=authority.pubkey(), market=market, household=household, wh=wh
        )
        return await self._send(ix, payer, authority)

    # Offers and trades

    async def offer_create(
        self,
        *,
        payer: Keypair,
        authority: Keypair,
        household: Household,
        wh: int,
        price_cents_per_kwh: int,
        expires_at: int,
    ) -> Created:
        """Creates the household's next offer; pass a freshly fetched ``household``."""
        ix = self.program.offer_create(
            payer=payer.pubkey(),
            authority=authority.pubkey(),
            household=household,
            wh=wh,
            price_cents_per_kwh=price_cents_per_kwh,
            expires_at=expires_at,
        )
        outcome = await self._send(ix, payer, authority)
        address = self.program.offer_address(household.address, household.next_offer_id)
        return Created(address, outcome)

    async def offer_cancel(self, *, payer: Keypair, caller: Keypair, offer: Offer) -> TxOutcome:
        ix = self.program.offer_cancel(caller=caller.pubkey(), offer=offer)
        return await self._send(ix, payer, caller)

    async def trade_open(
        self,
        *,
        payer: Keypair,
        authority: Keypair,
        market: Pubkey,
        offer: Pubkey,
        buyer: Pubkey,
        wh: int,
        payment_ref_hash: bytes,
    ) -> Created:
        ix = self.program.trade_open(
            payer=payer.pubkey(),
            authority=authority.pubkey(),
            market=market,
            offer=offer,
            buyer=buyer,
            wh=wh,
            payment_ref_hash=payment_ref_hash,
        )
        outcome = await self._send(ix, payer, authority)
        return Created(self.program.trade_address(offer, payment_ref_hash), outcome)

    async def trade_settle(
        self, *, payer: Keypair, oracle: Keypair, trade: Trade, receipt_hash: bytes
    ) -> TxOutcome:
        ix = self.program.trade_settle(
            oracle=oracle.pubkey(), trade=trade, receipt_hash=receipt_hash
        )
        return await self._send(ix, payer, oracle)

    async def trade_cancel(self, *, payer: Keypair, caller: Keypair, trade: Trade) -> TxOutcome:
        ix = self.program.trade_cancel(caller=caller.pubkey(), trade=trade)
        return await self._send(ix, payer, caller)

    # Accounts

    async def _decoded(self, name: str, address: Pubkey) -> Any:
        return self.program.decode(name, address, await self.chain.account(address))

    async def _each(
        self,
        name: str,
        decoded: Callable[[Pubkey, Any], DecodedAccount],
        addresses: Sequence[Pubkey],
    ) -> list[DecodedAccount | None]:
        """Accounts ``name`` at ``addresses``, read together; ``None`` where none is."""
        accounts = await self.chain.accounts(addresses)
        return [
            None
            if account is None
            else decoded(address, self.program.decode(name, address, account))
            for address, account in zip(addresses, accounts, strict=True)
        ]

    async def market(self, address: Pubkey) -> Market:
        return Market.from_decoded(address, await self._decoded("Market", address))

    async def household(self, address: Pubkey) -> Household:
        return Household.from_decoded(address, await self._decoded("Household", address))

    async def households_at(self, addresses: Sequence[Pubkey]) -> list[Household | None]:
        """Many Households in few requests, in the order asked; ``None`` where none is."""
        return await self._each("Household", Household.from_decoded, addresses)

    async def meter_record(self, address: Pubkey) -> MeterRecord:
        return MeterRecord.from_decoded(address, await self._decoded("MeterRecord", address))

    async def meter_records(self, addresses: Sequence[Pubkey]) -> list[MeterRecord | None]:
        """Many MeterRecords in few requests, in the order asked; ``None`` where none is."""
        return await self._each("MeterRecord", MeterRecord.from_decoded, addresses)

    async def offer(self, address: Pubkey) -> Offer:
        return Offer.from_decoded(address, await self._decoded("Offer", address))

    async def trade(self, address: Pubkey) -> Trade:
        return Trade.from_decoded(address, await self._decoded("Trade", address))

    async def trades_at(self, addresses: Sequence[Pubkey]) -> list[Trade | None]:
        """Many Trades in few requests, in the order asked; ``None`` where none is (closed)."""
        return await self._each("Trade", Trade.from_decoded, addresses)

    # Listing (JSON-RPC only: LiteSVM cannot enumerate accounts)

    async def _listed(
        self, name: str, matching: dict[str, Pubkey | None]
    ) -> list[tuple[Pubkey, Any]]:
        """Decoded ``name`` accounts whose given fields hold the given keys, by address."""
        if not isinstance(self.chain, AccountLister):
            raise NishatiClientError("listing accounts needs a JSON-RPC chain (getProgramAccounts)")
        filters = [(0, ACCOUNT_DISCRIMINATORS[name])]
        filters += [(field_offset(name, f), bytes(v)) for f, v in matching.items() if v is not None]
        found = sorted(await self.chain.program_accounts(filters), key=lambda pair: str(pair[0]))
        return [
            (address, self.program.decode(name, address, account)) for address, account in found
        ]

    async def markets(self) -> list[Market]:
        return [Market.from_decoded(a, d) for a, d in await self._listed("Market", {})]

    async def households(self, market: Pubkey) -> list[Household]:
        listed = await self._listed("Household", {"market": market})
        return [Household.from_decoded(a, d) for a, d in listed]

    async def offers(self, market: Pubkey, seller: Pubkey | None = None) -> list[Offer]:
        listed = await self._listed("Offer", {"market": market, "seller": seller})
        return [Offer.from_decoded(a, d) for a, d in listed]

    async def trades(
        self, market: Pubkey, offer: Pubkey | None = None, buyer: Pubkey | None = None
    ) -> list[Trade]:
        listed = await self._listed("Trade", {"market": market, "offer": offer, "buyer": buyer})
        return [Trade.from_decoded(a, d) for a, d in listed]

    async def energy_balance(self, token_account: Pubkey) -> int:
        """Wh held by an energy token account (a household's, or an offer's escrow)."""
        account = await self.chain.account(token_account)
        return _token_u64(token_account, account, ACCOUNT_LEN, TOKEN_ACCOUNT_AMOUNT_OFFSET)

    async def energy_supply(self, mint: Pubkey) -> int:
        """Wh in circulation for a market's energy mint."""
        account = await self.chain.account(mint)
        return _token_u64(mint, account, MINT_LEN, MINT_SUPPLY_OFFSET)
