//! Holds `idl/nishati.json` to the program: the instruction table's names, discriminators,
//! account flags and argument types, account sizes and field offsets, event sizes and error
//! codes. Any disagreement fails here.

use core::mem::size_of;

use nishati::{
    error::NishatiError,
    events,
    instructions::{InstructionSpec, ALL},
    state::{
        household::Household,
        installer::InstallerRecord,
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

/// An IDL type as the program's `Arg::IDL_TYPE` spells it.
fn type_name(ty: &Value) -> String {
    if let Some(name) = ty.as_str() {
        return name.to_owned();
    }
    if let Some(array) = ty.get("array") {
        return format!("[{}; {}]", type_name(&array[0]), array[1]);
    }
    if let Some(defined) = ty.get("defined") {
        return defined["name"].as_str().unwrap().to_owned();
    }
    if let Some(inner) = ty.get("option") {
        return format!("option<{}>", type_name(inner));
    }
    panic!("unsupported IDL type {ty}")
}

/// Every way the IDL's instructions differ from the program's table, as messages.
fn instruction_mismatches(idl: &Value, table: &[InstructionSpec]) -> Vec<String> {
    let listed = idl["instructions"].as_array().unwrap();
    let mut mismatches = Vec::new();
    let names: Vec<&str> = listed.iter().map(|ix| ix["name"].as_str().unwrap()).collect();
    let table_names: Vec<&str> = table.iter().map(|spec| spec.name).collect();
    if names != table_names {
        mismatches.push(format!("instructions: IDL {names:?}, program {table_names:?}"));
    }
    for spec in table {
        let Some(ix) = listed.iter().find(|ix| ix["name"] == spec.name) else {
            mismatches.push(format!("{} is not in the IDL", spec.name));
            continue;
        };
        if discriminator(ix) != spec.discriminator {
            mismatches.push(format!("{} discriminator", spec.name));
        }
        let accounts: Vec<(String, bool, bool)> = ix["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (a["name"].as_str().unwrap().to_owned(), a["writable"] == true, a["signer"] == true)
            })
            .collect();
        let program: Vec<(String, bool, bool)> =
            spec.accounts.iter().map(|(n, w, s)| ((*n).to_owned(), *w, *s)).collect();
        if accounts != program {
            mismatches
                .push(format!("{} accounts: IDL {accounts:?}, program {program:?}", spec.name));
        }
        let args: Vec<(String, String)> = ix["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["name"].as_str().unwrap().to_owned(), type_name(&a["type"])))
            .collect();
        let program: Vec<(String, String)> =
            spec.args.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
        if args != program {
            mismatches.push(format!("{} args: IDL {args:?}, program {program:?}", spec.name));
        }
    }
    mismatches
}

#[test]
fn instructions_match() {
    let idl = idl();
    assert_eq!(instruction_mismatches(&idl, ALL), Vec::<String>::new());
    let config = serde_json::json!({"defined": {"name": "MarketConfig"}});
    assert_eq!(type_size(&idl, &config), MarketConfig::LEN);
}

#[test]
fn an_instruction_the_idl_lacks_or_describes_otherwise_fails_the_check() {
    let mut idl = idl();
    let removed = idl["instructions"].as_array_mut().unwrap().remove(3);
    let mismatches = instruction_mismatches(&idl, ALL);
    let name = removed["name"].as_str().unwrap();
    assert!(mismatches.iter().any(|m| m == &format!("{name} is not in the IDL")), "{mismatches:?}");

    let mut idl = self::idl();
    idl["instructions"][0]["accounts"][0]["signer"] = Value::Bool(false);
    idl["instructions"][1]["args"][0]["type"] = Value::from("u64");
    let mismatches = instruction_mismatches(&idl, ALL);
    assert_eq!(mismatches.len(), 2, "{mismatches:?}");
}

/// Checks an account type's discriminator, field order, offsets and size against the IDL.
fn check_account<T: AccountData>(idl: &Value, name: &str) {
    assert_eq!(
        discriminator(find(&idl["accounts"], name)),
        T::DISCRIMINATOR,
        "{name} discriminator"
    );
    let fields = struct_fields(idl, name);
    assert_eq!(fields.len(), T::FIELDS.len(), "{name} field count");
    let mut offset = 8;
    for ((field, size), (rust_field, rust_offset)) in fields.iter().zip(T::FIELDS) {
        assert_eq!(field, rust_field, "{name} field order");
        assert_eq!(offset, *rust_offset, "offset of {name}.{field}");
        offset += size;
    }
    assert_eq!(offset, T::LEN, "{name} size");
    assert_eq!(T::LEN, size_of::<T>());
}

#[test]
fn account_layouts_match() {
    let idl = idl();
    assert_eq!(idl["accounts"].as_array().unwrap().len(), 6, "account types");
    check_account::<Market>(&idl, "Market");
    check_account::<Household>(&idl, "Household");
    check_account::<MeterRecord>(&idl, "MeterRecord");
    check_account::<InstallerRecord>(&idl, "InstallerRecord");
    check_account::<Offer>(&idl, "Offer");
    check_account::<Trade>(&idl, "Trade");
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
