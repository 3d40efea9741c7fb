"""Nishati client: the one way Python talks to the Nishati program.

What a library user needs is importable from here (``from nishati_client import NishatiClient,
RpcChain``); its modules hold the rest. Each name is imported the first time it is asked for,
so that importing the package stays as cheap as an empty module, where importing them all would
load the Solana stack (over half a second).
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
    from nishati_client.market import InstallerRecord, Market, MarketConfig, MarketUpdate
    from nishati_client.oracle_api import OracleApi, OracleRefused, OracleUnreachable
    from nishati_client.pda import (
        energy_account_address,
        energy_mint_address,
        escrow_address,
        household_address,
        installer_address,
        market_address,
        meter_record_address,
        offer_address,
        trade_address,
    )
    from nishati_client.phone import InvalidPhoneNumber, InvalidPhoneSalt
    from nishati_client.program import Created, NishatiClient, NishatiProgram
    from nishati_client.readings import (
        ExportAboveMeterLimit,
        InvalidReadingLength,
        InvalidReadingMagic,
        InvalidSignature,
        LastReading,
        MeterMismatch,
        MeterWentBackwards,
        Reading,
        ReadingBeforeMeterRegistered,
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
    from nishati_client.registration import (
        InvalidMeterProof,
        registration_message,
        sign_registration,
        verify_meter_proof,
    )
    from nishati_client.signing import SignedRequests
    from nishati_client.trading import Offer, Trade, payment_reference

__all__ = [
    "AccountNotFound",
    "AccountTypeMismatch",
    "Chain",
    "ClientSettings",
    "Commitment",
    "Created",
    "ExportAboveMeterLimit",
    "Household",
    "InstallerRecord",
    "InvalidMeterProof",
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
    "OracleApi",
    "OracleRefused",
    "OracleUnreachable",
    "ProgramEvent",
    "ProgramNotDeployed",
    "Reading",
    "ReadingBeforeMeterRegistered",
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
    "SignedRequests",
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
    "installer_address",
    "load_keypair",
    "load_readings",
    "market_address",
    "meter_public_key",
    "meter_record_address",
    "offer_address",
    "payment_reference",
    "phone",
    "registration_message",
    "sign",
    "sign_registration",
    "trade_address",
    "verify_meter_proof",
    "verify_signature",
    "watch",
    "websocket_url",
    "write_keypair",
]

# The modules the exported names come from, in the order ``__getattr__`` looks in them.
_HOMES = (
    "chain",
    "config",
    "errors",
    "events",
    "household",
    "keys",
    "market",
    "oracle_api",
    "pda",
    "phone",
    "program",
    "readings",
    "registration",
    "signing",
    "trading",
)


def __getattr__(name: str) -> object:
    """An exported name, imported from its module the first time it is asked for."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in _HOMES:
        return importlib.import_module(f"{__name__}.{name}")
    for home in _HOMES:
        module = vars(importlib.import_module(f"{__name__}.{home}"))
        if name in module:
            globals()[name] = module[name]
            return module[name]
    raise AssertionError(f"{name} is in __all__ but in none of {_HOMES}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
