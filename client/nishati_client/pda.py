"""Every program-derived address, mirroring ``programs/nishati/src/pda.rs``.

Each function returns the address and its bump.
"""

from __future__ import annotations

from solders.pubkey import Pubkey

MARKET_SEED = b"market"
ENERGY_MINT_SEED = b"mint"
HOUSEHOLD_SEED = b"household"
ENERGY_ACCOUNT_SEED = b"energy"
METER_RECORD_SEED = b"meter"
OFFER_SEED = b"offer"
ESCROW_SEED = b"escrow"
TRADE_SEED = b"trade"
INSTALLER_SEED = b"installer"


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def market_address(program_id: Pubkey, market_id: int) -> tuple[Pubkey, int]:
    """The Market: seeds ``["market", market_id as u64 LE]``."""
    return Pubkey.find_program_address([MARKET_SEED, _u64(market_id)], program_id)


def energy_mint_address(program_id: Pubkey, market: Pubkey) -> tuple[Pubkey, int]:
    """The market's energy mint (SPL Token): seeds ``["mint", market]``."""
    return Pubkey.find_program_address([ENERGY_MINT_SEED, bytes(market)], program_id)


def household_address(program_id: Pubkey, market: Pubkey, owner: Pubkey) -> tuple[Pubkey, int]:
    """A Household: seeds ``["household", market, owner]``."""
    return Pubkey.find_program_address([HOUSEHOLD_SEED, bytes(market), bytes(owner)], program_id)


def energy_account_address(program_id: Pubkey, household: Pubkey) -> tuple[Pubkey, int]:
    """A household's energy token account: seeds ``["energy", household]``."""
    return Pubkey.find_program_address([ENERGY_ACCOUNT_SEED, bytes(household)], program_id)


def meter_record_address(program_id: Pubkey, market: Pubkey, meter: Pubkey) -> tuple[Pubkey, int]:
    """The MeterRecord binding a meter key to one household: seeds ``["meter", market, meter]``."""
    return Pubkey.find_program_address([METER_RECORD_SEED, bytes(market), bytes(meter)], program_id)


def offer_address(program_id: Pubkey, household: Pubkey, offer_id: int) -> tuple[Pubkey, int]:
    """An Offer: seeds ``["offer", household, offer_id as u64 LE]``."""
    return Pubkey.find_program_address([OFFER_SEED, bytes(household), _u64(offer_id)], program_id)


def escrow_address(program_id: Pubkey, offer: Pubkey) -> tuple[Pubkey, int]:
    """An offer's escrow token account: seeds ``["escrow", offer]``."""
    return Pubkey.find_program_address([ESCROW_SEED, bytes(offer)], program_id)


def trade_address(program_id: Pubkey, offer: Pubkey, trade_index: int) -> tuple[Pubkey, int]:
    """A Trade: seeds ``["trade", offer, trade_index as u64 LE]``, the index the offer's
    ``next_trade_index`` counter gave it, so a closed trade's address never comes back."""
    return Pubkey.find_program_address([TRADE_SEED, bytes(offer), _u64(trade_index)], program_id)


def installer_address(program_id: Pubkey, market: Pubkey, installer: Pubkey) -> tuple[Pubkey, int]:
    """An InstallerRecord, the admin's approval of an installer: seeds
    ``["installer", market, installer]``."""
    seeds = [INSTALLER_SEED, bytes(market), bytes(installer)]
    return Pubkey.find_program_address(seeds, program_id)
