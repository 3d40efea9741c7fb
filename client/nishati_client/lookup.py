"""Address lookup tables: creating, extending and reading them, and which addresses a market's
attestations look up in them.

A v0 transaction names an account that one of its tables holds by a one-byte index instead of
its 32-byte key (``lookup_tables`` of :meth:`nishati_client.chain.Chain.send`); that is what lets
one ``meter_attest`` carry more readings than a legacy transaction. The Address Lookup Table
program's rules that shape how the tables are used:

- a table's address derives from its authority and a recent slot, one the SlotHashes sysvar
  still holds (the last 512), so a create that has not landed once its slot left it never will;
- addresses added in a slot can be looked up only by transactions of later slots;
- a table holds at most 256 addresses; signers and invoked programs are never looked up.

solders reads a table and derives its address but builds none of the program's instructions:
the two used here are encoded as the program decodes them (bincode: a u32 variant, its fields).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from solders.address_lookup_table_account import (
    ID as LOOKUP_TABLE_PROGRAM_ID,
)
from solders.address_lookup_table_account import (
    LOOKUP_TABLE_MAX_ADDRESSES,
    AddressLookupTable,
    AddressLookupTableAccount,
    SlotHashes,
    derive_lookup_table_address,
)
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import SLOT_HASHES

from nishati_client.chain import Chain
from nishati_client.errors import AccountNotFound, AccountTypeMismatch
from nishati_client.program import NishatiProgram

CREATE_LOOKUP_TABLE = 0
EXTEND_LOOKUP_TABLE = 2
# Variant, then CreateLookupTable's recent_slot and bump, or ExtendLookupTable's address count.
_CREATE = struct.Struct("<IQB")
_EXTEND = struct.Struct("<IQ")


def _accounts(table: Pubkey, authority: Pubkey, payer: Pubkey) -> list[AccountMeta]:
    """Both instructions' accounts; the payer funds the table's rent as it grows."""
    return [
        AccountMeta(table, is_signer=False, is_writable=True),
        AccountMeta(authority, is_signer=True, is_writable=False),
        AccountMeta(payer, is_signer=True, is_writable=True),
        AccountMeta(SYSTEM_PROGRAM_ID, is_signer=False, is_writable=False),
    ]


def create_lookup_table(
    *, authority: Pubkey, payer: Pubkey, recent_slot: int
) -> tuple[Instruction, Pubkey]:
    """Creates the empty table of ``authority`` at ``recent_slot``; returns it with its address."""
    table, bump = derive_lookup_table_address(authority, recent_slot)
    data = _CREATE.pack(CREATE_LOOKUP_TABLE, recent_slot, bump)
    return Instruction(LOOKUP_TABLE_PROGRAM_ID, data, _accounts(table, authority, payer)), table


def extend_lookup_table(
    *, table: Pubkey, authority: Pubkey, payer: Pubkey, addresses: Sequence[Pubkey]
) -> Instruction:
    """Appends ``addresses`` to ``table``."""
    data = _EXTEND.pack(EXTEND_LOOKUP_TABLE, len(addresses)) + b"".join(map(bytes, addresses))
    return Instruction(LOOKUP_TABLE_PROGRAM_ID, data, _accounts(table, authority, payer))


@dataclass(frozen=True)
class LookupTable:
    """A table as the chain holds it."""

    address: Pubkey
    state: AddressLookupTable

    @property
    def addresses(self) -> list[Pubkey]:
        return self.state.addresses

    @property
    def authority(self) -> Pubkey | None:
        return self.state.meta.authority

    @property
    def room(self) -> int:
        return LOOKUP_TABLE_MAX_ADDRESSES - len(self.addresses)

    def usable(self, slot: int) -> AddressLookupTableAccount:
        """What a transaction processed in ``slot`` can look up: the addresses added in the
        table's last extension only once that extension's slot has passed."""
        meta = self.state.meta
        active = (
            len(self.addresses)
            if slot > meta.last_extended_slot
            else meta.last_extended_slot_start_index
        )
        return AddressLookupTableAccount(self.address, self.addresses[:active])


async def fetch_lookup_table(chain: Chain, address: Pubkey) -> LookupTable | None:
    """The table at ``address``; ``None`` if there is no account there."""
    account = await chain.account(address)
    if account is None:
        return None
    if account.owner != LOOKUP_TABLE_PROGRAM_ID:
        raise AccountTypeMismatch(f"{address} is owned by {account.owner}, not a lookup table")
    return LookupTable(address, AddressLookupTable.deserialize(bytes(account.data)))


async def recent_slots(chain: Chain) -> list[int]:
    """The slots a table can be created at now, newest first: those SlotHashes holds."""
    account = await chain.account(SLOT_HASHES)
    if account is None:
        raise AccountNotFound(f"no SlotHashes sysvar at {SLOT_HASHES}")
    return [slot for slot, _ in SlotHashes.from_bytes(bytes(account.data)).slot_hashes]


def attest_accounts(
    program: NishatiProgram, market: Pubkey, households: Sequence[Pubkey] = ()
) -> list[Pubkey]:
    """The accounts ``meter_attest`` names for ``households``, less the signing oracle: first
    the market's own, which every attestation names (so each of its tables starts with them),
    then each household's."""
    ix = program.meter_attest(
        oracle=Pubkey.default(), market=market, households=households, ed25519_instruction_index=0
    )
    return [meta.pubkey for meta in ix.accounts if not meta.is_signer]
