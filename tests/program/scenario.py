"""Test-only helpers on top of :mod:`nishati_dev.sandbox`: state snapshots and refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import pytest
from solders.pubkey import Pubkey

from nishati_client.errors import NishatiProgramError
from nishati_dev.sandbox import (
    FAST_EXPORT,
    MAX_PRICE,
    MIN_PRICE,
    PAYMENT_DEADLINE_SECS,
    T0,
    Harness,
    Member,
    Meter,
    OpenMarket,
    config_for,
    config_with,
    digest,
    fund,
    lamports,
    open_market,
    set_time,
)

__all__ = [
    "FAST_EXPORT",
    "MAX_PRICE",
    "MIN_PRICE",
    "PAYMENT_DEADLINE_SECS",
    "T0",
    "Harness",
    "Member",
    "Meter",
    "OpenMarket",
    "Snapshot",
    "config_for",
    "config_with",
    "digest",
    "fund",
    "lamports",
    "open_market",
    "refused",
    "set_time",
    "snapshot",
]

Snapshot = dict[Pubkey, tuple[int, Pubkey, bytes] | None]


async def snapshot(h: Harness, addresses: Iterable[Pubkey]) -> Snapshot:
    """Lamports, owner and data of each account (``None`` if it does not exist)."""
    state: Snapshot = {}
    for address in addresses:
        account = await h.chain.account(address)
        state[address] = (
            None if account is None else (account.lamports, account.owner, bytes(account.data))
        )
    return state


async def refused(
    h: Harness, error: str, watched: Iterable[Pubkey], action: Callable[[], Awaitable[object]]
) -> NishatiProgramError:
    """Runs ``action``, expecting program error ``error`` and no change to ``watched``."""
    watched = list(watched)
    before = await snapshot(h, watched)
    with pytest.raises(NishatiProgramError) as failure:
        await action()
    assert failure.value.name == error, failure.value.logs
    assert await snapshot(h, watched) == before
    return failure.value
