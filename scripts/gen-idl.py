#!/usr/bin/env python3
"""Writes idl/nishati.json, the program's Anchor IDL (spec 0.1.0), from the description below.

The program is written by hand (pinocchio), so no macro derives its IDL; this script is the one
place it is described. `programs/nishati/tests/idl.rs` fails whenever this description and the
program disagree (discriminators, account lists, sizes and field offsets, events, errors).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "idl" / "nishati.json"
PROGRAM_ID = "Nsh27qSPs4i4mV5fyntqJsoNr9aXoLxkQeFfvvHUnJQ"
SYSTEM_PROGRAM = "11111111111111111111111111111111"
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105 - an address
INSTRUCTIONS_SYSVAR = "Sysvar1nstructions1111111111111111111111111"

Json = dict[str, Any]


def sighash(preimage: str) -> list[int]:
    return list(hashlib.sha256(preimage.encode()).digest()[:8])


def field(name: str, ty: Any, doc: str | None = None) -> Json:
    return {"name": name, **({"docs": [doc]} if doc else {}), "type": ty}


def defined(name: str) -> Json:
    return {"defined": {"name": name}}


def acc(
    name: str,
    doc: str | None = None,
    *,
    w: bool = False,
    s: bool = False,
    address: str | None = None,
) -> Json:
    item: Json = {"name": name}
    if doc:
        item["docs"] = [doc]
    if w:
        item["writable"] = True
    if s:
        item["signer"] = True
    if address:
        item["address"] = address
    return item


HASH = {"array": ["u8", 32]}


def ix(name: str, docs: list[str], accounts: list[Json], args: list[Json]) -> Json:
    return {
        "name": name,
        "docs": docs,
        "discriminator": sighash(f"global:{name}"),
        "accounts": accounts,
        "args": args,
    }


PAYER = acc("payer", "Pays rent and fees; refunded when the account closes.", w=True, s=True)
MARKET = acc("market", "The Market account.")
MARKET_W = acc("market", "The Market account.", w=True)
MINT = acc("energy_mint", 'The market\'s energy mint, PDA ["mint", market].')
MINT_W = acc("energy_mint", 'The market\'s energy mint, PDA ["mint", market].', w=True)
TOKEN = acc("token_program", address=TOKEN_PROGRAM)
SYSTEM = acc("system_program", address=SYSTEM_PROGRAM)
HOUSEHOLD_AUTHORITY = acc(
    "authority", "The household's owner, or the oracle authority for a custodial household.", s=True
)
SYSVAR = acc("instructions_sysvar", address=INSTRUCTIONS_SYSVAR)
INSTALLER = acc("installer", "An installer the market approves; vouches for the meter.", s=True)
INSTALLER_RECORD = acc(
    "installer_record", 'The installer\'s approval, PDA ["installer", market, installer].'
)

config_fields = [
    field("oracle_authority", "pubkey", "Key that relays meter readings and settles trades."),
    field("fee_bps", "u16", "Fee kept back from each seller payout, in basis points (max 10000)."),
    field("min_price_cents_per_kwh", "u64", "Lowest offer price, KES cents per kWh (at least 1)."),
    field("max_price_cents_per_kwh", "u64", "Highest offer price, KES cents per kWh."),
    field("payment_deadline_secs", "u64", "Seconds a buyer has to pay (60 to 86400)."),
    field(
        "cancel_grace_secs",
        "u64",
        "Seconds after a trade's deadline in which only the oracle may cancel it (60 to 86400).",
    ),
    field(
        "max_export_watts",
        "u64",
        "Most power a meter may export: minted Wh never exceed it over the chain time since the "
        "meter's last attestation (1 to 100000000).",
    ),
    field(
        "daily_mint_cap_wh",
        "u64",
        "Most Wh the whole market mints per UTC day of the chain clock (at least 1).",
    ),
    field(
        "max_open_trades_per_buyer",
        "u16",
        "Most pending trades one buyer household may hold at once (at least 1).",
    ),
]

instructions = [
    ix(
        "market_initialize",
        [
            "Creates a market and its energy mint (SPL Token, 3 decimals: 1 unit = 1 Wh, mint",
            'authority the market PDA). Market PDA: ["market", market_id as u64 LE].',
            "Emits MarketInitialized.",
        ],
        [
            PAYER,
            acc("admin", "Becomes the market admin.", s=True),
            acc("market", w=True),
            MINT_W,
            TOKEN,
            SYSTEM,
        ],
        [field("market_id", "u64"), field("config", defined("MarketConfig"))],
    ),
    ix(
        "market_update",
        [
            "The admin changes any of the market's settings; unset fields keep their value.",
            "Emits MarketUpdated.",
        ],
        [acc("admin", s=True), MARKET_W],
        [field("args", defined("MarketUpdateArgs"))],
    ),
    ix(
        "market_pause",
        ["The admin stops new offers and trades; pending trades still settle. Emits MarketPaused."],
        [acc("admin", s=True), MARKET_W],
        [],
    ),
    ix(
        "market_resume",
        ["The admin reopens a paused market. Emits MarketResumed."],
        [acc("admin", s=True), MARKET_W],
        [],
    ),
    ix(
        "installer_add",
        [
            "The admin approves an installer (the licensed electrician who wires meters): its",
            'record ["installer", market, installer] lets it vouch for meter keys in',
            "household_register and household_set_meter. Emits InstallerAdded.",
        ],
        [
            PAYER,
            acc("admin", s=True),
            MARKET,
            acc("installer_record", w=True),
            SYSTEM,
        ],
        [field("installer", "pubkey")],
    ),
    ix(
        "installer_remove",
        [
            "The admin withdraws an installer's approval; the record closes and its rent goes",
            "back to its payer. Meters it vouched for stay registered. Emits InstallerRemoved.",
        ],
        [
            acc("admin", s=True),
            MARKET,
            acc("installer_record", w=True),
            acc("rent_receiver", "Whoever paid the record's rent.", w=True),
        ],
        [],
    ),
    ix(
        "household_register",
        [
            "Registers a household with its meter key and a salted commitment of its M-Pesa",
            "phone (never the phone). The owner always signs; authority is the owner itself for a",
            "household with a wallet, or the oracle authority for one without (custodial). An",
            "approved installer signs too, and the meter proves it holds its key: an Ed25519",
            "instruction at ed25519_instruction_index carries the meter's signature over the",
            "registration message of docs/reading-format.md (market, household, meter). Creates",
            'the Household PDA ["household", market, owner], its energy token account',
            '["energy", household] and the meter record ["meter", market, meter], which keeps a',
            "meter key to one household forever. Readings dated before now are refused.",
            "Emits HouseholdRegistered.",
        ],
        [
            PAYER,
            acc("owner", "The household's owner key.", s=True),
            acc("authority", "The owner again, or the oracle authority (custodial).", s=True),
            INSTALLER,
            MARKET,
            INSTALLER_RECORD,
            acc("household", w=True),
            acc("energy_account", w=True),
            acc("meter_record", w=True),
            MINT,
            SYSVAR,
            TOKEN,
            SYSTEM,
        ],
        [
            field("meter", "pubkey"),
            field("phone_commitment", HASH),
            field("ed25519_instruction_index", "u8"),
        ],
    ),
    ix(
        "household_set_meter",
        [
            "The admin, the owner, or the oracle for a custodial household, with an approved",
            "installer, replaces the household's meter; the new meter proves it holds its key as",
            "in household_register. The old meter key is retired for good; the new meter starts",
            "its own counter sequence, its first reading is a baseline and readings dated before",
            "now are refused. Emits MeterChanged.",
        ],
        [
            PAYER,
            acc("authority", "The market admin, the owner, or the oracle if custodial.", s=True),
            INSTALLER,
            MARKET,
            INSTALLER_RECORD,
            acc("household", w=True),
            acc("old_meter_record", w=True),
            acc("new_meter_record", w=True),
            SYSVAR,
            SYSTEM,
        ],
        [field("meter", "pubkey"), field("ed25519_instruction_index", "u8")],
    ),
    ix(
        "meter_attest",
        [
            "The oracle submits meter readings. An Ed25519-program instruction earlier in the",
            "transaction carries the signatures in the layout of docs/reading-format.md; remaining",
            "accounts are [household (writable), energy_account (writable)] per reading, in the",
            "same order. Mints the increase in exported Wh to each household, never more than",
            "max_export_watts over the chain time since the meter's last attestation, nor past the",
            "market's daily mint cap (refused with MintCeilingReached, after a MintCeilingHit",
            "event in the logs). Emits MeterAttested per reading.",
        ],
        [
            acc("oracle", s=True),
            acc("market", "The Market account; counts the day's minted Wh.", w=True),
            MINT_W,
            SYSVAR,
            TOKEN,
        ],
        [field("ed25519_instruction_index", "u8")],
    ),
    ix(
        "offer_create",
        [
            "A household offers Wh at a price per kWh within the market's bounds until expires_at.",
            'The Wh move into the escrow token account ["escrow", offer]. Offer PDA:',
            '["offer", household, offer_id as u64 LE] with offer_id = household.next_offer_id.',
            "Emits OfferCreated.",
        ],
        [
            PAYER,
            HOUSEHOLD_AUTHORITY,
            MARKET,
            acc("household", w=True),
            acc("energy_account", w=True),
            acc("offer", w=True),
            acc("escrow", w=True),
            MINT,
            TOKEN,
            SYSTEM,
        ],
        [field("wh", "u64"), field("price_cents_per_kwh", "u64"), field("expires_at", "i64")],
    ),
    ix(
        "offer_cancel",
        [
            "The seller (or the oracle for a custodial seller), or anyone once the offer has",
            "expired, withdraws it: unreserved Wh go back to the seller. With no Wh reserved by",
            "pending trades the offer and its escrow close and their rent goes back to the payer;",
            "otherwise the offer takes no new trades and a later offer_cancel closes it.",
            "Emits OfferCancelled.",
        ],
        [
            acc("caller", s=True),
            MARKET,
            acc("household", "The seller."),
            acc("energy_account", "The seller's energy account.", w=True),
            acc("offer", w=True),
            acc("escrow", w=True),
            acc("rent_receiver", "Whoever paid the offer's rent.", w=True),
            TOKEN,
        ],
        [],
    ),
    ix(
        "trade_open",
        [
            "A buyer (or the oracle for a custodial buyer) reserves Wh from an offer. Trade PDA:",
            '["trade", offer, trade_index as u64 LE] with trade_index = offer.next_trade_index and',
            "trade_bump its bump (checked with one hash), so a closed trade's address never comes",
            "back. total_cents = ceil(wh * price / 100000) * 100: whole shillings, rounded up, as",
            "M-Pesa takes them. Deadline = now + payment deadline. A buyer holds at most",
            "max_open_trades_per_buyer pending trades. Emits TradeOpened.",
        ],
        [
            PAYER,
            acc("authority", "The buyer's owner, or the oracle authority if custodial.", s=True),
            MARKET,
            acc("offer", w=True),
            acc("buyer", "The buyer household; counts its open trades.", w=True),
            acc("trade", w=True),
            SYSTEM,
        ],
        [
            field("wh", "u64"),
            field("payment_ref_hash", HASH),
            field("trade_index", "u64"),
            field("trade_bump", "u8"),
        ],
    ),
    ix(
        "trade_settle",
        [
            "The oracle, once paid, releases the reserved Wh to the buyer and records the receipt",
            "hash in the event; the trade closes. The oracle names the buyer, Wh and total it was",
            "paid for; any difference from the trade is refused. Works on a paused market.",
            "Emits TradeSettled.",
        ],
        [
            acc("oracle", s=True),
            MARKET,
            acc("offer", w=True),
            acc("escrow", w=True),
            acc("trade", w=True),
            acc("buyer", "The buyer household.", w=True),
            acc("buyer_energy_account", w=True),
            acc("rent_receiver", "Whoever paid the trade's rent.", w=True),
            TOKEN,
        ],
        [
            field("receipt_hash", HASH),
            field("buyer", "pubkey"),
            field("wh", "u64"),
            field("total_cents", "u64"),
        ],
    ),
    ix(
        "trade_cancel",
        [
            "The oracle (payment failed) at any time, or anyone once the deadline and the",
            "market's cancel grace have passed, cancels a pending trade: its Wh go back to the",
            "offer and the trade closes. Emits TradeCancelled.",
        ],
        [
            acc("caller", s=True),
            MARKET,
            acc("offer", w=True),
            acc("trade", w=True),
            acc("buyer", "The buyer household.", w=True),
            acc("rent_receiver", "Whoever paid the trade's rent.", w=True),
        ],
        [],
    ),
    ix(
        "energy_redeem",
        [
            "A household burns Wh it has consumed, as a utility nets them off its bill.",
            "Emits EnergyRedeemed.",
        ],
        [
            HOUSEHOLD_AUTHORITY,
            MARKET,
            acc("household", w=True),
            acc("energy_account", w=True),
            MINT_W,
            TOKEN,
        ],
        [field("wh", "u64")],
    ),
]


def struct(name: str, fields: list[Json], doc: str | None = None, zero_copy: bool = False) -> Json:
    item: Json = {"name": name}
    if doc:
        item["docs"] = [doc]
    if zero_copy:
        item["serialization"] = "bytemuck"
        item["repr"] = {"kind": "c"}
    item["type"] = {"kind": "struct", "fields": fields}
    return item


account_types = [
    struct(
        "Market",
        [
            field("admin", "pubkey"),
            field("oracle_authority", "pubkey"),
            field("energy_mint", "pubkey", 'SPL Token mint of the energy, PDA ["mint", market].'),
            field("market_id", "u64"),
            field("min_price_cents_per_kwh", "u64"),
            field("max_price_cents_per_kwh", "u64"),
            field("payment_deadline_secs", "u64"),
            field("cancel_grace_secs", "u64"),
            field("max_export_watts", "u64"),
            field("daily_mint_cap_wh", "u64"),
            field(
                "mint_day",
                "i64",
                "The chain-clock UTC day (unix time / 86400) minted_today_wh counts.",
            ),
            field("minted_today_wh", "u64", "Wh minted in mint_day."),
            field("fee_bps", "u16"),
            field("max_open_trades_per_buyer", "u16"),
            field("paused", "bool"),
            field("bump", "u8"),
            field("mint_bump", "u8"),
            field("reserved", {"array": ["u8", 25]}),
        ],
        'A market and its rules. PDA ["market", market_id as u64 LE].',
        zero_copy=True,
    ),
    struct(
        "Household",
        [
            field("market", "pubkey"),
            field("owner", "pubkey"),
            field("meter", "pubkey", "Ed25519 key of the meter whose readings count."),
            field("installer", "pubkey", "The installer who vouched for the current meter."),
            field("phone_commitment", HASH, "SHA-256 of a secret salt and the M-Pesa phone."),
            field("energy_account", "pubkey"),
            field("last_counter", "u64"),
            field("last_timestamp", "i64", "Meter time of the last attested reading."),
            field(
                "meter_since",
                "i64",
                "Chain time the current meter was registered; earlier readings are refused.",
            ),
            field(
                "last_attested_at",
                "i64",
                "Chain time of the meter's last attested reading (or its registration).",
            ),
            field("meter_exported_wh", "u64", "Last attested cumulative export of this meter."),
            field("meter_imported_wh", "u64", "Last attested cumulative import of this meter."),
            field("total_exported_wh", "u64", "All Wh minted to this household."),
            field("total_imported_wh", "u64", "All imported Wh attested for this household."),
            field("redeemed_wh", "u64"),
            field("next_offer_id", "u64"),
            field("open_trades", "u16", "Pending trades this household is the buyer of."),
            field("bump", "u8"),
            field("energy_bump", "u8"),
            field("custodial", "bool", "The oracle acts for this household (no wallet)."),
            field("has_baseline", "bool", "A first reading of the current meter was attested."),
            field("reserved", {"array": ["u8", 26]}),
        ],
        'A household. PDA ["household", market, owner].',
        zero_copy=True,
    ),
    struct(
        "MeterRecord",
        [
            field("household", "pubkey"),
            field("bump", "u8"),
            field("retired", "bool", "The meter was replaced; its key can never count again."),
            field("reserved", {"array": ["u8", 6]}),
        ],
        'Binds a meter key to one household. PDA ["meter", market, meter].',
        zero_copy=True,
    ),
    struct(
        "InstallerRecord",
        [
            field("market", "pubkey"),
            field("installer", "pubkey"),
            field("rent_payer", "pubkey"),
            field("added_at", "i64"),
            field("bump", "u8"),
            field("reserved", {"array": ["u8", 7]}),
        ],
        'An installer the admin approved. PDA ["installer", market, installer].',
        zero_copy=True,
    ),
    struct(
        "Offer",
        [
            field("market", "pubkey"),
            field("seller", "pubkey", "The seller household."),
            field("escrow", "pubkey"),
            field("rent_payer", "pubkey"),
            field("offer_id", "u64"),
            field("price_cents_per_kwh", "u64"),
            field("unreserved_wh", "u64", "Escrowed Wh that trades may still take."),
            field("reserved_wh", "u64", "Escrowed Wh held by pending trades."),
            field("expires_at", "i64"),
            field("created_at", "i64"),
            field("next_trade_index", "u64", "Index of the next trade; trade addresses use it."),
            field("bump", "u8"),
            field("escrow_bump", "u8"),
            field("cancelled", "bool", "Takes no new trades; closes once nothing is reserved."),
            field("reserved", {"array": ["u8", 5]}),
        ],
        'An offer to sell. PDA ["offer", household, offer_id as u64 LE].',
        zero_copy=True,
    ),
    struct(
        "Trade",
        [
            field("market", "pubkey"),
            field("offer", "pubkey"),
            field("buyer", "pubkey", "The buyer household."),
            field("buyer_energy_account", "pubkey"),
            field("rent_payer", "pubkey"),
            field("payment_ref_hash", HASH),
            field("trade_index", "u64"),
            field("wh", "u64"),
            field("price_cents_per_kwh", "u64"),
            field("total_cents", "u64"),
            field("created_at", "i64"),
            field("deadline", "i64"),
            field("bump", "u8"),
            field("reserved", {"array": ["u8", 7]}),
        ],
        "A trade waiting for payment; it closes when settled or cancelled. PDA "
        '["trade", offer, trade_index as u64 LE].',
        zero_copy=True,
    ),
]

config_types = [
    struct("MarketConfig", config_fields, "A market's settings, as the admin chooses them."),
    struct(
        "MarketUpdateArgs",
        [field(f["name"], {"option": f["type"]}) for f in config_fields],
        "Fields to change; null keeps the current value.",
    ),
]

events = [
    struct(
        "MarketInitialized",
        [
            field("market", "pubkey"),
            field("admin", "pubkey"),
            field("market_id", "u64"),
            field("energy_mint", "pubkey"),
            field("config", defined("MarketConfig")),
        ],
    ),
    struct(
        "MarketUpdated",
        [
            field("market", "pubkey"),
            field("admin", "pubkey"),
            field("old", defined("MarketConfig")),
            field("new", defined("MarketConfig")),
        ],
    ),
    struct("MarketPaused", [field("market", "pubkey"), field("admin", "pubkey")]),
    struct("MarketResumed", [field("market", "pubkey"), field("admin", "pubkey")]),
    struct(
        "InstallerAdded",
        [field("market", "pubkey"), field("installer", "pubkey"), field("admin", "pubkey")],
    ),
    struct(
        "InstallerRemoved",
        [field("market", "pubkey"), field("installer", "pubkey"), field("admin", "pubkey")],
    ),
    struct(
        "HouseholdRegistered",
        [
            field("market", "pubkey"),
            field("household", "pubkey"),
            field("owner", "pubkey"),
            field("meter", "pubkey"),
            field("installer", "pubkey"),
            field("custodial", "bool"),
        ],
    ),
    struct(
        "MeterChanged",
        [
            field("household", "pubkey"),
            field("old_meter", "pubkey"),
            field("new_meter", "pubkey"),
            field("installer", "pubkey"),
        ],
    ),
    struct(
        "MeterAttested",
        [
            field("household", "pubkey"),
            field("meter", "pubkey"),
            field("counter", "u64"),
            field("timestamp", "i64"),
            field("exported_wh", "u64"),
            field("imported_wh", "u64"),
            field("minted_wh", "u64"),
        ],
    ),
    struct(
        "MintCeilingHit",
        [
            field("market", "pubkey"),
            field("household", "pubkey"),
            field("day", "i64"),
            field("minted_today_wh", "u64"),
            field("daily_mint_cap_wh", "u64"),
            field("refused_wh", "u64"),
        ],
        "An attestation would pass the daily mint cap and is refused (logged by the failed "
        "transaction).",
    ),
    struct(
        "OfferCreated",
        [
            field("offer", "pubkey"),
            field("seller", "pubkey"),
            field("offer_id", "u64"),
            field("wh", "u64"),
            field("price_cents_per_kwh", "u64"),
            field("expires_at", "i64"),
        ],
    ),
    struct(
        "OfferCancelled",
        [
            field("offer", "pubkey"),
            field("seller", "pubkey"),
            field("returned_wh", "u64"),
            field("closed", "bool"),
        ],
    ),
    struct(
        "TradeOpened",
        [
            field("trade", "pubkey"),
            field("offer", "pubkey"),
            field("buyer", "pubkey"),
            field("seller", "pubkey"),
            field("wh", "u64"),
            field("total_cents", "u64"),
            field("deadline", "i64"),
            field("payment_ref_hash", HASH),
            field("trade_index", "u64"),
        ],
    ),
    struct(
        "TradeSettled",
        [
            field("trade", "pubkey"),
            field("offer", "pubkey"),
            field("buyer", "pubkey"),
            field("wh", "u64"),
            field("total_cents", "u64"),
            field("receipt_hash", HASH),
        ],
    ),
    struct(
        "TradeCancelled",
        [
            field("trade", "pubkey"),
            field("offer", "pubkey"),
            field("buyer", "pubkey"),
            field("wh", "u64"),
            field("after_deadline", "bool"),
        ],
    ),
    struct("EnergyRedeemed", [field("household", "pubkey"), field("wh", "u64")]),
]

ERRORS = [
    ("UnknownInstruction", "Unknown instruction discriminator"),
    ("InvalidInstructionData", "Instruction data is truncated or malformed"),
    ("NotEnoughAccounts", "Not enough accounts for this instruction"),
    ("MissingSignature", "A required signer did not sign"),
    ("AccountNotWritable", "An account that must be writable is read-only"),
    ("InvalidMarketAddress", "Market account is not the PDA of its seeds"),
    ("AccountAlreadyInUse", "Account to create is already in use"),
    ("InvalidAccountOwner", "Account is not owned by the Nishati program"),
    ("InvalidAccountData", "Account data is not of the expected type"),
    ("NotMarketAdmin", "Signer is not the market admin"),
    ("FeeTooHigh", "Fee exceeds 10000 basis points"),
    ("PriceBoundsReversed", "Minimum price per kWh is above the maximum"),
    ("ZeroPrice", "Price bounds must be greater than zero"),
    ("InvalidPaymentDeadline", "Payment deadline must be between 60 and 86400 seconds"),
    ("InvalidOracleAuthority", "Oracle authority must be a real key"),
    ("InvalidSystemProgram", "System program account is not the system program"),
    ("ArithmeticOverflow", "Arithmetic overflow"),
    ("EmptyUpdate", "Update sets no field"),
    ("UnsupportedRent", "Rent exemption threshold is not supported"),
    # Appended by the market issue; codes above never change.
    ("InvalidReadingLength", "Reading is not 37 bytes"),
    ("InvalidReadingMagic", "Reading does not start with NSHR"),
    ("UnsupportedReadingVersion", "Reading version is not supported"),
    ("ReadingForAnotherMarket", "Reading is for another market"),
    ("MeterMismatch", "Reading is not signed by the household's meter"),
    ("ReadingReplayed", "Reading counter is not above the last accepted one"),
    ("ReadingOutOfOrder", "Reading timestamp is before the last accepted one"),
    ("ReadingFromTheFuture", "Reading timestamp is ahead of the cluster clock"),
    ("MeterWentBackwards", "Cumulative energy in the reading is below the last accepted value"),
    ("MissingEd25519Instruction", "No Ed25519 program instruction at the given index"),
    (
        "InvalidEd25519Instruction",
        "Ed25519 instruction layout or offsets are not the expected ones",
    ),
    (
        "AttestAccountsMismatch",
        "Accounts do not match the readings: a household and its energy account per reading",
    ),
    ("InvalidInstructionsSysvar", "Instructions sysvar account is not the instructions sysvar"),
    ("NotOracle", "Signer is not the market's oracle authority"),
    ("NotHouseholdAuthority", "Signer may not act for this household"),
    ("InvalidHouseholdAddress", "Household account is not the PDA of its seeds"),
    ("InvalidMeterRecordAddress", "Meter record is not the PDA of its seeds"),
    ("InvalidOfferAddress", "Offer account is not the PDA of its seeds"),
    ("InvalidTradeAddress", "Trade account is not the PDA of its seeds"),
    ("InvalidEnergyMint", "Energy mint is not this market's mint"),
    ("InvalidEnergyAccount", "Energy token account is not the household's"),
    ("InvalidEscrow", "Escrow token account is not the offer's"),
    ("InvalidTokenProgram", "Token program account is not the SPL Token program"),
    ("InvalidRentReceiver", "Rent receiver is not who paid the rent"),
    ("WrongMarket", "Account belongs to another market"),
    ("MeterAlreadyRegistered", "Meter key is already registered"),
    ("InvalidMeterKey", "Meter key must be a real key"),
    ("MarketPaused", "Market is paused"),
    ("MarketNotPaused", "Market is not paused"),
    ("PriceOutOfBounds", "Price is outside the market's bounds"),
    ("ZeroAmount", "Amount must be greater than zero"),
    ("InvalidExpiry", "Offer expiry must be in the future"),
    ("OfferExpired", "Offer has expired"),
    ("OfferCancelled", "Offer is cancelled"),
    ("InsufficientEnergy", "Not enough energy tokens"),
    ("NotEnoughOfferedEnergy", "Trade is larger than the energy left in the offer"),
    ("SelfTrade", "A household cannot buy its own offer"),
    ("TradeNotFound", "Trade does not exist: never opened, or already settled or cancelled"),
    ("TradeDeadlineNotReached", "Only the oracle may cancel a trade before its deadline"),
    ("OfferNotExpired", "Only the seller may cancel an offer before it expires"),
    ("EscrowInvariantViolated", "Escrow balance is not reserved plus unreserved energy"),
    # Appended by the market integrity issue.
    ("DuplicateAccount", "The same account is passed in two roles that must differ"),
    ("InvalidInstallerAddress", "Installer record is not the PDA of its seeds"),
    ("InstallerNotApproved", "Installer is not approved by this market"),
    ("InstallerAlreadyApproved", "Installer is already approved by this market"),
    ("InvalidMeterRegistration", "Meter registration message is not the expected one"),
    ("ReadingBeforeMeterRegistered", "Reading is dated before its meter was registered"),
    (
        "ExportAboveMeterLimit",
        "Minted energy is above the export limit over the chain time since the last attestation",
    ),
    ("MintCeilingReached", "The market's daily mint cap is reached"),
    ("InvalidMaxExport", "Meter export limit must be between 1 and 100000000 watts"),
    ("InvalidMintCap", "Daily mint cap must be greater than zero"),
    ("InvalidCancelGrace", "Cancel grace must be between 60 and 86400 seconds"),
    ("InvalidOpenTradeLimit", "Open trade limit must be at least 1"),
    ("StaleTradeIndex", "Trade index is not the offer's next trade index"),
    ("TooManyOpenTrades", "Buyer household holds the market's limit of open trades"),
    ("SettlementBuyerMismatch", "Trade's buyer is not the one the settlement names"),
    ("SettlementAmountMismatch", "Trade's Wh or total is not what the settlement names"),
    (
        "TradeInGracePeriod",
        "Only the oracle may cancel a trade in the grace period after its deadline",
    ),
    ("OpenTradeCountCorrupt", "Household's open trade count is already zero"),
]


def main() -> None:
    idl = {
        "address": PROGRAM_ID,
        "metadata": {
            "name": "nishati",
            "version": "0.1.0",
            "spec": "0.1.0",
            "description": "Peer-to-peer solar energy market for Kenyan households",
        },
        "instructions": instructions,
        "accounts": [
            {"name": t["name"], "discriminator": sighash(f"account:{t['name']}")}
            for t in account_types
        ],
        "events": [
            {"name": e["name"], "discriminator": sighash(f"event:{e['name']}")} for e in events
        ],
        "errors": [{"code": 6000 + i, "name": n, "msg": m} for i, (n, m) in enumerate(ERRORS)],
        "types": account_types + config_types + events,
    }
    OUT.write_text(json.dumps(idl, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
