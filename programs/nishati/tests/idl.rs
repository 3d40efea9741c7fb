//! Holds `idl/nishati.json` to the program: discriminators, account lists, account sizes and
//! field offsets, event sizes, argument sizes and error codes. Any disagreement fails here.

use core::mem::{offset_of, size_of};

use nishati::{
    error::NishatiError,
    events::{MARKET_INITIALIZED, MARKET_INITIALIZED_LEN, MARKET_UPDATED, MARKET_UPDATED_LEN},
    instructions::{market_initialize, market_update, AccountSpec},
    state::market::{Market, MarketConfig, MARKET_DISCRIMINATOR},
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
    assert_eq!(idl["instructions"].as_array().unwrap().len(), 2, "instructions in the IDL");
    check_instruction(
        &idl,
        "market_initialize",
        market_initialize::DISCRIMINATOR,
        market_initialize::ACCOUNTS,
    );
    check_instruction(&idl, "market_update", market_update::DISCRIMINATOR, market_update::ACCOUNTS);
    assert_eq!(type_size(&idl, &serde_json::json!({"defined": {"name": "MarketConfig"}})), MarketConfig::LEN);
}

#[test]
fn market_layout_matches() {
    let idl = idl();
    assert_eq!(discriminator(find(&idl["accounts"], "Market")), MARKET_DISCRIMINATOR);
    let rust_offsets = [
        ("admin", offset_of!(Market, admin)),
        ("oracle_authority", offset_of!(Market, oracle_authority)),
        ("market_id", offset_of!(Market, market_id)),
        ("min_price_cents_per_kwh", offset_of!(Market, min_price_cents_per_kwh)),
        ("max_price_cents_per_kwh", offset_of!(Market, max_price_cents_per_kwh)),
        ("payment_deadline_secs", offset_of!(Market, payment_deadline_secs)),
        ("fee_bps", offset_of!(Market, fee_bps)),
        ("paused", offset_of!(Market, paused)),
        ("bump", offset_of!(Market, bump)),
        ("reserved", offset_of!(Market, reserved)),
    ];
    let mut offset = 8;
    let fields = struct_fields(&idl, "Market");
    assert_eq!(fields.len(), rust_offsets.len(), "Market field count");
    for ((name, size), (rust_name, rust_offset)) in fields.iter().zip(rust_offsets) {
        assert_eq!(name, rust_name, "Market field order");
        assert_eq!(offset, rust_offset, "offset of Market.{name}");
        offset += size;
    }
    assert_eq!(offset, size_of::<Market>(), "Market size");
}

#[test]
fn events_match() {
    let idl = idl();
    for (name, disc, len) in [
        ("MarketInitialized", MARKET_INITIALIZED, MARKET_INITIALIZED_LEN),
        ("MarketUpdated", MARKET_UPDATED, MARKET_UPDATED_LEN),
    ] {
        assert_eq!(discriminator(find(&idl["events"], name)), disc, "{name} discriminator");
        let size: usize = struct_fields(&idl, name).iter().map(|(_, s)| s).sum();
        assert_eq!(8 + size, len, "{name} size");
    }
}

#[test]
fn errors_match() {
    let idl = idl();
    let listed: Vec<(u64, &str, &str)> = idl["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_u64().unwrap(), e["name"].as_str().unwrap(), e["msg"].as_str().unwrap()))
        .collect();
    let program: Vec<(u64, &str, &str)> =
        NishatiError::ALL.iter().map(|e| (*e as u64, e.name(), e.message())).collect();
    assert_eq!(listed, program);
}
