//! Holds `idl/nishati.json` to the program: discriminators, account lists, account sizes and
//! field offsets, event sizes, argument sizes and error codes. Any disagreement fails here.

use core::mem::{offset_of, size_of};

use nishati::{
    discriminator::Discriminator,
    error::NishatiError,
    events,
    instructions::*,
    state::{
        household::Household,
        market::{Market, MarketConfig},
        meter_record::MeterRecord,
        offer::Offer,
        trade::Trade,
        AccountData,
    },
};
use serde_json::Value;

fn idl() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../idl/nishati.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read idl")).expect("parse idl")
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|item| item["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from the IDL"))
}

fn discriminator(item: &Value) -> [u8; 8] {
    let bytes: Vec<u8> = item["discriminator"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    bytes.try_into().expect("8-byte discriminator")
}

/// Borsh size of a fixed-size IDL type.
fn type_size(idl: &Value, ty: &Value) -> usize {
    if let Some(name) = ty.as_str() {
        return match name {
            "bool" | "u8" | "i8" => 1,
            "u16" | "i16" => 2,
            "u32" | "i32" => 4,
            "u64" | "i64" => 8,
            "pubkey" => 32,
            other => panic!("unsized or unknown IDL type {other}"),
        };
    }
    if let Some(array) = ty.get("array") {
        return type_size(idl, &array[0]) * array[1].as_u64().unwrap() as usize;
    }
    if let Some(defined) = ty.get("defined") {
        return struct_fields(idl, defined["name"].as_str().unwrap())
            .iter()
            .map(|(_, size)| size)
            .sum();
    }
    panic!("unsupported IDL type {ty}")
}

/// (field name, borsh size) of an IDL struct type, in order.
fn struct_fields(idl: &Value, name: &str) -> Vec<(String, usize)> {
    find(&idl["types"], name)["type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_owned(), type_size(idl, &f["type"])))
        .collect()
}

fn check_instruction(idl: &Value, name: &str, disc: [u8; 8], accounts: &[AccountSpec]) {
    let ix = find(&idl["instructions"], name);
    assert_eq!(discriminator(ix), disc, "{name} discriminator");
    let listed: Vec<AccountSpec> = ix["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let name: &'static str = a["name"].as_str().unwrap().to_owned().leak();
            (name, a["writable"] == true, a["signer"] == true)
        })
        .collect();
    assert_eq!(listed, accounts, "{name} accounts");
}

#[test]
fn instructions_match() {
    let idl = idl();
    let program: [(&str, Discriminator, &[AccountSpec]); 13] = [
        ("market_initialize", market_initialize::DISCRIMINATOR, market_initialize::ACCOUNTS),
        ("market_update", market_update::DISCRIMINATOR, market_update::ACCOUNTS),
        ("market_pause", market_pause::PAUSE_DISCRIMINATOR, market_pause::ACCOUNTS),
        ("market_resume", market_pause::RESUME_DISCRIMINATOR, market_pause::ACCOUNTS),
        ("household_register", household_register::DISCRIMINATOR, household_register::ACCOUNTS),
        ("household_set_meter", household_set_meter::DISCRIMINATOR, household_set_meter::ACCOUNTS),
        ("meter_attest", meter_attest::DISCRIMINATOR, meter_attest::ACCOUNTS),
        ("offer_create", offer_create::DISCRIMINATOR, offer_create::ACCOUNTS),
        ("offer_cancel", offer_cancel::DISCRIMINATOR, offer_cancel::ACCOUNTS),
        ("trade_open", trade_open::DISCRIMINATOR, trade_open::ACCOUNTS),
        ("trade_settle", trade_settle::DISCRIMINATOR, trade_settle::ACCOUNTS),
        ("trade_cancel", trade_cancel::DISCRIMINATOR, trade_cancel::ACCOUNTS),
        ("energy_redeem", energy_redeem::DISCRIMINATOR, energy_redeem::ACCOUNTS),
    ];
    assert_eq!(idl["instructions"].as_array().unwrap().len(), program.len(), "instruction count");
    for (name, disc, accounts) in program {
        check_instruction(&idl, name, disc, accounts);
    }
    let config = serde_json::json!({"defined": {"name": "MarketConfig"}});
    assert_eq!(type_size(&idl, &config), MarketConfig::LEN);
}

/// Checks an account type's discriminator, field order, offsets and size against the IDL;
/// `offsets` lists the Rust struct's fields after the discriminator.
fn check_account<T: AccountData>(idl: &Value, name: &str, offsets: &[(&str, usize)]) {
    assert_eq!(
        discriminator(find(&idl["accounts"], name)),
        T::DISCRIMINATOR,
        "{name} discriminator"
    );
    let fields = struct_fields(idl, name);
    assert_eq!(fields.len(), offsets.len(), "{name} field count");
    let mut offset = 8;
    for ((field, size), (rust_field, rust_offset)) in fields.iter().zip(offsets) {
        assert_eq!(field, rust_field, "{name} field order");
        assert_eq!(offset, *rust_offset, "offset of {name}.{field}");
        offset += size;
    }
    assert_eq!(offset, T::LEN, "{name} size");
    assert_eq!(T::LEN, size_of::<T>());
}

macro_rules! offsets {
    ($ty:ty: $($field:ident),* $(,)?) => {
        &[$((stringify!($field), offset_of!($ty, $field))),*]
    };
}

#[test]
fn account_layouts_match() {
    let idl = idl();
    assert_eq!(idl["accounts"].as_array().unwrap().len(), 5, "account types");
    check_account::<Market>(
        &idl,
        "Market",
        offsets!(Market:
        admin, oracle_authority, market_id, min_price_cents_per_kwh, max_price_cents_per_kwh,
        payment_deadline_secs, fee_bps, paused, bump, energy_mint, mint_bump, reserved),
    );
    check_account::<Household>(
        &idl,
        "Household",
        offsets!(Household:
        market, owner, meter, phone_commitment, energy_account, last_counter, last_timestamp,
        meter_exported_wh, meter_imported_wh, total_exported_wh, total_imported_wh, redeemed_wh,
        next_offer_id, bump, energy_bump, custodial, has_baseline, reserved),
    );
    check_account::<MeterRecord>(
        &idl,
        "MeterRecord",
        offsets!(MeterRecord:
        household, bump, retired, reserved),
    );
    check_account::<Offer>(
        &idl,
        "Offer",
        offsets!(Offer:
        market, seller, escrow, rent_payer, offer_id, price_cents_per_kwh, unreserved_wh,
        reserved_wh, expires_at, created_at, bump, escrow_bump, cancelled, reserved),
    );
    check_account::<Trade>(
        &idl,
        "Trade",
        offsets!(Trade:
        market, offer, buyer, buyer_energy_account, rent_payer, payment_ref_hash, wh,
        price_cents_per_kwh, total_cents, created_at, deadline, bump, reserved),
    );
}

#[test]
fn events_match() {
    let idl = idl();
    assert_eq!(idl["events"].as_array().unwrap().len(), events::ALL.len(), "event count");
    for (name, disc, len) in events::ALL {
        assert_eq!(discriminator(find(&idl["events"], name)), *disc, "{name} discriminator");
        let size: usize = struct_fields(&idl, name).iter().map(|(_, s)| s).sum();
        assert_eq!(8 + size, *len, "{name} size");
    }
}

#[test]
fn errors_match() {
    let idl = idl();
    let listed: Vec<(u64, &str, &str)> = idl["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["code"].as_u64().unwrap(), e["name"].as_str().unwrap(), e["msg"].as_str().unwrap())
        })
        .collect();
    let program: Vec<(u64, &str, &str)> =
        NishatiError::ALL.iter().map(|e| (*e as u64, e.name(), e.message())).collect();
    assert_eq!(listed, program);
}
