"""Nishati client: the one way Python talks to the Nishati program.

What a library user needs is importable from here (``from nishati_client import NishatiClient,
RpcChain``); its modules hold the rest. Each name loads with its module on first use, so that
importing the package stays as cheap as an empty module, where importing them all would load the
Solana stack (over half a second).
"""

# No `from __future__ import annotations`: it would bind a public name in the package.
import importlib
import typing

if typing.TYPE_CHECKING:
    from nishati_client import phone
    from nishati_client.chain import (
        Chain,
        LiteSvmChain,
        RpcChain,
        SendPolicy,
        TxOutcome,
        cluster_time,
    )
    from nishati_client.config import ClientSettings, Commitment
    from nishati_client.errors import (
        AccountNotFound,
        AccountTypeMismatch,
        NishatiClientError,
        NishatiProgramError,
        ProgramNotDeployed,
        RpcError,
        RpcUnavailable,
        TransactionFailed,
        TransactionUnconfirmed,
    )
    from nishati_client.events import ProgramEvent, watch, websocket_url
    from nishati_client.household import Household, MeterRecord
    from nishati_client.keys import KeyFileError, ed25519_private_key, load_keypair, write_keypair
    from nishati_client.market import Market, MarketConfig, MarketUpdate
    from nishati_client.pda import (
        energy_account_address,
        energy_mint_address,
        escrow_address,
        household_address,
        market_address,
        meter_record_address,
        offer_address,
        trade_address,
    )
    from nishati_client.phone import InvalidPhoneNumber, InvalidPhoneSalt
    from nishati_client.program import Created, NishatiClient, NishatiProgram
    from nishati_client.readings import (
        InvalidReadingLength,
        InvalidReadingMagic,
        InvalidSignature,
        LastReading,
        MeterMismatch,
        MeterWentBackwards,
        Reading,
        ReadingError,
        ReadingForAnotherMarket,
        ReadingFromTheFuture,
        ReadingOutOfOrder,
        ReadingReplayed,
        ReadingsFileError,
        SignedReading,
        UnsupportedReadingVersion,
        dump_readings,
        load_readings,
        meter_public_key,
        sign,
        verify_signature,
    )
    from nishati_client.trading import Offer, Trade, payment_reference

__all__ = [
    "AccountNotFound",
    "AccountTypeMismatch",
    "Chain",
    "ClientSettings",
    "Commitment",
    "Created",
    "Household",
    "InvalidPhoneNumber",
    "InvalidPhoneSalt",
    "InvalidReadingLength",
    "InvalidReadingMagic",
    "InvalidSignature",
    "KeyFileError",
    "LastReading",
    "LiteSvmChain",
    "Market",
    "MarketConfig",
    "MarketUpdate",
    "MeterMismatch",
    "MeterRecord",
    "MeterWentBackwards",
    "NishatiClient",
    "NishatiClientError",
    "NishatiProgram",
    "NishatiProgramError",
    "Offer",
    "ProgramEvent",
    "ProgramNotDeployed",
    "Reading",
    "ReadingError",
    "ReadingForAnotherMarket",
    "ReadingFromTheFuture",
    "ReadingOutOfOrder",
    "ReadingReplayed",
    "ReadingsFileError",
    "RpcChain",
    "RpcError",
    "RpcUnavailable",
    "SendPolicy",
    "SignedReading",
    "Trade",
    "TransactionFailed",
    "TransactionUnconfirmed",
    "TxOutcome",
    "UnsupportedReadingVersion",
    "cluster_time",
    "dump_readings",
    "ed25519_private_key",
    "energy_account_address",
    "energy_mint_address",
    "escrow_address",
    "household_address",
    "load_keypair",
    "load_readings",
    "market_address",
    "meter_public_key",
    "meter_record_address",
    "offer_address",
    "payment_reference",
    "phone",
    "sign",
    "trade_address",
    "verify_signature",
    "watch",
    "websocket_url",
    "write_keypair",
]

# Where each exported name lives: a module's name stands for the module itself (``phone``,
# whose normalise, mask and commitment read best with the module's name in front).
_HOMES = {
    "chain": ("Chain", "LiteSvmChain", "RpcChain", "SendPolicy", "TxOutcome", "cluster_time"),
    "config": ("ClientSettings", "Commitment"),
    "errors": (
        "AccountNotFound",
        "AccountTypeMismatch",
        "NishatiClientError",
        "NishatiProgramError",
        "ProgramNotDeployed",
        "RpcError",
        "RpcUnavailable",
        "TransactionFailed",
        "TransactionUnconfirmed",
    ),
    "events": ("ProgramEvent", "watch", "websocket_url"),
    "household": ("Household", "MeterRecord"),
    "keys": ("KeyFileError", "ed25519_private_key", "load_keypair", "write_keypair"),
    "market": ("Market", "MarketConfig", "MarketUpdate"),
    "pda": (
        "energy_account_address",
        "energy_mint_address",
        "escrow_address",
        "household_address",
        "market_address",
        "meter_record_address",
        "offer_address",
        "trade_address",
    ),
    "phone": ("InvalidPhoneNumber", "InvalidPhoneSalt", "phone"),
    "program": ("Created", "NishatiClient", "NishatiProgram"),
    "readings": (
        "InvalidReadingLength",
        "InvalidReadingMagic",
        "InvalidSignature",
        "LastReading",
        "MeterMismatch",
        "MeterWentBackwards",
        "Reading",
        "ReadingError",
        "ReadingForAnotherMarket",
        "ReadingFromTheFuture",
        "ReadingOutOfOrder",
        "ReadingReplayed",
        "ReadingsFileError",
        "SignedReading",
        "UnsupportedReadingVersion",
        "dump_readings",
        "load_readings",
        "meter_public_key",
        "sign",
        "verify_signature",
    ),
    "trading": ("Offer", "Trade", "payment_reference"),
}
_HOME_OF = {name: home for home, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    """An exported name, imported from its module the first time it is asked for."""
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{home}")
    value = module if name == home else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
