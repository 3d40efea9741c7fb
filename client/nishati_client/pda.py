"""Every program-derived address, mirroring ``programs/nishati/src/pda.rs``."""

from __future__ import annotations

from solders.pubkey import Pubkey

MARKET_SEED = b"market"


def market_address(program_id: Pubkey, market_id: int) -> tuple[Pubkey, int]:
    """The Market PDA and its bump: seeds ``["market", market_id as u64 LE]``."""
    return Pubkey.find_program_address([MARKET_SEED, market_id.to_bytes(8, "little")], program_id)
