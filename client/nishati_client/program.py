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
from nishati_client.errors import (
    AccountNotFound,
    AccountTypeMismatch,
    NishatiClientError,
    NishatiProgramError,
)
from nishati_client.household import Household, MeterRecord
from nishati_client.idl import IDL_JSON, idl
from nishati_client.market import InstallerRecord, Market, MarketConfig, MarketUpdate
from nishati_client.readings import SignedReading, ed25519_instruction
from nishati_client.registration import registration_instruction
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
# How often trade_open re-reads the offer's trade counter after another trade took its index.
TRADE_OPEN_ATTEMPTS = 5


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

    def trade_address(self, offer: Pubkey, trade_index: int) -> Pubkey:
        return pda.trade_address(self.program_id, offer, trade_index)[0]

    def installer_record_address(self, market: Pubkey, installer: Pubkey) -> Pubkey:
        return pda.installer_address(self.program_id, market, installer)[0]

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

    # Installers

    def installer_add(
        self, *, payer: Pubkey, admin: Pubkey, market: Pubkey, installer: Pubkey
    ) -> Instruction:
        """The admin approves ``installer`` to vouch for meters in ``market``."""
        accounts = {
            "payer": payer,
            "admin": admin,
            "market": market,
            "installer_record": self.installer_record_address(market, installer),
            "system_program": SYSTEM_PROGRAM_ID,
        }
        return self._instruction("installer_add", installer, accounts=accounts)

    def installer_remove(
        self, *, admin: Pubkey, market: Pubkey, installer: Pubkey, rent_receiver: Pubkey
    ) -> Instruction:
        """The admin withdraws ``installer``'s approval; the record's rent goes to
        ``rent_receiver``, who must be the record's ``rent_payer``."""
        accounts = {
            "admin": admin,
            "market": market,
            "installer_record": self.installer_record_address(market, installer),
            "rent_receiver": rent_receiver,
        }
        return self._instruction("installer_remove", accounts=accounts)

    # Households and meters

    def household_register(
        self,
        *,
        payer: Pubkey,
        owner: Pubkey,
        authority: Pubkey,
        installer: Pubkey,
        market: Pubkey,
        meter: Pubkey,
        phone_commitment: bytes,
        ed25519_instruction_index: int,
    ) -> Instruction:
        """Registers ``owner``'s household. The owner signs; ``authority`` is the owner again,
        or the oracle for a custodial household; ``installer`` is an approved installer, who
        signs too. The meter's proof travels in the Ed25519 instruction at
        ``ed25519_instruction_index`` of the same transaction. ``phone_commitment`` is the
        32-byte salted phone hash."""
        household = self.household_address(market, owner)
        accounts = {
            "payer": payer,
            "owner": owner,
            "authority": authority,
            "installer": installer,
            "market": market,
            "installer_record": self.installer_record_address(market, installer),
            "household": household,
            "energy_account": self.energy_account(household),
            "meter_record": self.meter_record_address(market, meter),
            "energy_mint": self.energy_mint(market),
            "instructions_sysvar": INSTRUCTIONS_SYSVAR_ID,
            "token_program": TOKEN_PROGRAM_ID,
            "system_program": SYSTEM_PROGRAM_ID,
        }
        commitment = list(hash32(phone_commitment, "phone_commitment"))
        return self._instruction(
            "household_register",
            meter,
            commitment,
            ed25519_instruction_index,
            accounts=accounts,
        )

    def register_household(
        self,
        *,
        payer: Pubkey,
        owner: Pubkey,
        authority: Pubkey,
        installer: Pubkey,
        market: Pubkey,
        meter: Pubkey,
        meter_proof: bytes,
        phone_commitment: bytes,
    ) -> list[Instruction]:
        """The Ed25519 instruction carrying ``meter_proof`` (the meter's signature over its
        registration message) and ``household_register``, in that order: one transaction."""
        household = self.household_address(market, owner)
        return [
            registration_instruction(market, household, meter, meter_proof),
            self.household_register(
                payer=payer,
                owner=owner,
                authority=authority,
                installer=installer,
                market=market,
                meter=meter,
                phone_commitment=phone_commitment,
                ed25519_instruction_index=0,
            ),
        ]

    def household_set_meter(
        self,
        *,
        payer: Pubkey,
        authority: Pubkey,
        installer: Pubkey,
        household: Household,
        meter: Pubkey,
        ed25519_instruction_index: int,
    ) -> Instruction:
        """Replaces ``household``'s meter with ``meter``, vouched for by ``installer``; the
        authority is the admin, the owner, or the oracle if custodial. The new meter's proof
        travels in the Ed25519 instruction at ``ed25519_instruction_index``."""
        market = household.market
        accounts = {
            "payer": payer,
            "authority": authority,
            "installer": installer,
            "market": market,
            "installer_record": self.installer_record_address(market, installer),
            "household": household.address,
            "old_meter_record": self.meter_record_address(market, household.meter),
            "new_meter_record": self.meter_record_address(market, meter),
            "instructions_sysvar": INSTRUCTIONS_SYSVAR_ID,
            "system_program": SYSTEM_PROGRAM_ID,
        }
        return self._instruction(
            "household_set_meter", meter, ed25519_instruction_index, accounts=accounts
        )

    def replace_meter(
        self,
        *,
        payer: Pubkey,
        authority: Pubkey,
        installer: Pubkey,
        household: Household,
        meter: Pubkey,
        meter_proof: bytes,
    ) -> list[Instruction]:
        """The Ed25519 instruction carrying the new meter's proof and ``household_set_meter``,
        in that order: one transaction."""
        return [
            registration_instruction(household.market, household.address, meter, meter_proof),
            self.household_set_meter(
                payer=payer,
                authority=authority,
                installer=installer,
                household=household,
                meter=meter,
                ed25519_instruction_index=0,
            ),
        ]

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
        trade_index: int,
    ) -> Instruction:
        """Reserves ``wh`` of ``offer`` for household ``buyer`` against a 32-byte payment
        reference hash; ``authority`` is the buyer's owner, or the oracle if custodial. The
        trade's address comes from ``trade_index``, which must be the offer's
        ``next_trade_index`` (else ``StaleTradeIndex``, which changes nothing); its bump is
        found here, so the program checks it with one hash."""
        trade, bump = pda.trade_address(self.program_id, offer, trade_index)
        accounts = {
            "payer": payer,
            "authority": authority,
            "market": market,
            "offer": offer,
            "buyer": buyer,
            "trade": trade,
            "system_program": SYSTEM_PROGRAM_ID,
        }
        reference = list(hash32(payment_ref_hash, "payment_ref_hash"))
        return self._instruction("trade_open", wh, reference, trade_index, bump, accounts=accounts)

    def trade_settle(
        self,
        *,
        oracle: Pubkey,
        trade: Trade,
        receipt_hash: bytes,
        buyer: Pubkey,
        wh: int,
        total_cents: int,
    ) -> Instruction:
        """Releases a paid trade's energy. ``buyer``, ``wh`` and ``total_cents`` are what the
        payment paid for, from the caller's own records, never from the account read: the
        program refuses a trade that holds other terms (``SettlementBuyerMismatch``,
        ``SettlementAmountMismatch``). The energy goes to that buyer's energy account."""
        accounts = {
            "oracle": oracle,
            "market": trade.market,
            "offer": trade.offer,
            "escrow": self.escrow(trade.offer),
            "trade": trade.address,
            "buyer": buyer,
            "buyer_energy_account": self.energy_account(buyer),
            "rent_receiver": trade.rent_payer,
            "token_program": TOKEN_PROGRAM_ID,
        }
        receipt = list(hash32(receipt_hash, "receipt_hash"))
        return self._instruction("trade_settle", receipt, buyer, wh, total_cents, accounts=accounts)

    def trade_cancel(self, *, caller: Pubkey, trade: Trade) -> Instruction:
        """Cancels a pending trade: the oracle any time, anyone else once its deadline and the
        market's cancel grace have passed."""
        accounts = {
            "caller": caller,
            "market": trade.market,
            "offer": trade.offer,
            "trade": trade.address,
            "buyer": trade.buyer,
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
        return await self._send_all([ix], payer, *signers)

    async def _send_all(
        self, instructions: Sequence[Instruction], payer: Keypair, *signers: Keypair
    ) -> TxOutcome:
        return await self.chain.send(instructions, _signers(payer, *signers))

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

    # Installers

    async def installer_add(
        self, *, payer: Keypair, admin: Keypair, market: Pubkey, installer: Pubkey
    ) -> Created:
        """Approves ``installer`` for ``market``; the payer pays the record's rent."""
        ix = self.program.installer_add(
            payer=payer.pubkey(), admin=admin.pubkey(), market=market, installer=installer
        )
        outcome = await self._send(ix, payer, admin)
        return Created(self.program.installer_record_address(market, installer), outcome)

    async def installer_remove(
        self,
        *,
        payer: Keypair,
        admin: Keypair,
        market: Pubkey,
        installer: Pubkey,
        rent_receiver: Pubkey,
    ) -> TxOutcome:
        """Withdraws ``installer``'s approval; ``rent_receiver`` is the record's rent payer."""
        ix = self.program.installer_remove(
            admin=admin.pubkey(), market=market, installer=installer, rent_receiver=rent_receiver
        )
        return await self._send(ix, payer, admin)

    # Households and meters

    async def household_register(
        self,
        *,
        payer: Keypair,
        owner: Keypair,
        authority: Keypair | None,
        installer: Keypair,
        market: Pubkey,
        meter: Pubkey,
        meter_proof: bytes,
        phone_commitment: bytes,
    ) -> Created:
        """Registers ``owner``'s household with meter ``meter``, vouched for by ``installer``,
        in one transaction with the meter's proof (its signature over the registration message,
        :mod:`nishati_client.registration`). ``authority`` ``None``: a household with a wallet,
        the owner its authority; the oracle's keypair: a custodial one (the owner still signs)."""
        authority = authority or owner
        instructions = self.program.register_household(
            payer=payer.pubkey(),
            owner=owner.pubkey(),
            authority=authority.pubkey(),
            installer=installer.pubkey(),
            market=market,
            meter=meter,
            meter_proof=meter_proof,
            phone_commitment=phone_commitment,
        )
        outcome = await self._send_all(instructions, payer, owner, authority, installer)
        return Created(self.program.household_address(market, owner.pubkey()), outcome)

    async def household_set_meter(
        self,
        *,
        payer: Keypair,
        authority: Keypair,
        installer: Keypair,
        household: Household,
        meter: Pubkey,
        meter_proof: bytes,
    ) -> TxOutcome:
        """Replaces ``household``'s meter with ``meter``, vouched for by ``installer``, with the
        new meter's proof in the same transaction."""
        instructions = self.program.replace_meter(
            payer=payer.pubkey(),
            authority=authority.pubkey(),
            installer=installer.pubkey(),
            household=household,
            meter=meter,
            meter_proof=meter_proof,
        )
        return await self._send_all(instructions, payer, authority, installer)

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
        trade_index: int | None = None,
    ) -> Created:
        """Opens a trade at ``trade_index``, or, when none is given, at the offer's
        ``next_trade_index`` as read now: if another trade takes that index first, the program
        refuses with ``StaleTradeIndex`` (changing nothing), and the offer is read again and the
        trade sent again, a few times at most. No other failure is retried."""
        attempts = 1 if trade_index is not None else TRADE_OPEN_ATTEMPTS
        for attempt in range(attempts):
            index = trade_index
            if index is None:
                index = (await self.offer(offer)).next_trade_index
            ix = self.program.trade_open(
                payer=payer.pubkey(),
                authority=authority.pubkey(),
                market=market,
                offer=offer,
                buyer=buyer,
                wh=wh,
                payment_ref_hash=payment_ref_hash,
                trade_index=index,
            )
            try:
                outcome = await self._send(ix, payer, authority)
            except NishatiProgramError as error:
                if error.name != "StaleTradeIndex" or attempt + 1 == attempts:
                    raise
                continue
            return Created(self.program.trade_address(offer, index), outcome)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def trade_settle(
        self,
        *,
        payer: Keypair,
        oracle: Keypair,
        trade: Trade,
        receipt_hash: bytes,
        buyer: Pubkey,
        wh: int,
        total_cents: int,
    ) -> TxOutcome:
        """Settles ``trade`` for what was paid: ``buyer``, ``wh`` and ``total_cents`` from the
        caller's records (the program refuses a trade holding other terms)."""
        ix = self.program.trade_settle(
            oracle=oracle.pubkey(),
            trade=trade,
            receipt_hash=receipt_hash,
            buyer=buyer,
            wh=wh,
            total_cents=total_cents,
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

    async def installer_record(self, address: Pubkey) -> InstallerRecord:
        return InstallerRecord.from_decoded(
            address, await self._decoded("InstallerRecord", address)
        )

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

    async def installers(self, market: Pubkey) -> list[InstallerRecord]:
        """The installers ``market``'s admin approves."""
        listed = await self._listed("InstallerRecord", {"market": market})
        return [InstallerRecord.from_decoded(a, d) for a, d in listed]

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
