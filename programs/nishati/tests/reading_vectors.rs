//! The shared reading test vectors (docs/reading-vectors.json) against the program's checks.
//!
//! On chain the Ed25519 program verifies signatures; here ed25519-dalek stands in for it, so
//! every case runs the same steps in the same order as a transaction would.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use nishati::{
    error::NishatiError,
    reading::{ed25519, registration, Baseline, Reading},
};
use serde_json::Value;

fn bytes<const N: usize>(hex_text: &Value) -> [u8; N] {
    hex::decode(hex_text.as_str().unwrap()).unwrap().try_into().unwrap()
}

/// Runs one case; returns the decoded reading or the name of the error it gets.
fn run(doc: &Value, case: &Value) -> Result<Reading, &'static str> {
    let market: [u8; 32] = bytes(&doc["market"]);
    let registered: [u8; 32] = bytes(&doc["registered_meter_public_key"]);
    let message = hex::decode(case["message"].as_str().unwrap()).unwrap();
    let key: [u8; 32] = bytes(&case["meter_public_key"]);
    let signature = Signature::from_bytes(&bytes(&case["signature"]));

    let name = |e: NishatiError| e.name();
    let reading = Reading::parse(&message, &market).map_err(name)?;
    VerifyingKey::from_bytes(&key)
        .unwrap()
        .verify(&message, &signature)
        .map_err(|_| "InvalidSignature")?;
    if key != registered {
        return Err(name(NishatiError::MeterMismatch));
    }
    let last = &case["last"];
    let baseline = (!last.is_null()).then(|| Baseline {
        counter: last["counter"].as_u64().unwrap(),
        exported_wh: last["exported_wh"].as_u64().unwrap(),
        imported_wh: last["imported_wh"].as_u64().unwrap(),
    });
    let last_timestamp = if last.is_null() { 0 } else { last["timestamp"].as_i64().unwrap() };
    reading
        .check_progress(baseline.as_ref(), last_timestamp, case["now"].as_i64().unwrap())
        .map_err(name)?;
    Ok(reading)
}

#[test]
fn every_vector_gets_its_expected_outcome() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reading-vectors.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(doc["max_clock_skew_secs"].as_i64(), Some(nishati::reading::MAX_CLOCK_SKEW_SECS));
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        match (run(&doc, case), case["error"].as_str()) {
            (Ok(reading), None) => {
                let fields = &case["fields"];
                assert_eq!(reading.counter, fields["counter"].as_u64().unwrap(), "{name}");
                assert_eq!(reading.timestamp, fields["timestamp"].as_i64().unwrap(), "{name}");
                assert_eq!(reading.exported_wh, fields["exported_wh"].as_u64().unwrap(), "{name}");
                assert_eq!(reading.imported_wh, fields["imported_wh"].as_u64().unwrap(), "{name}");
            }
            (Err(got), Some(want)) => assert_eq!(got, want, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, expected {want:?}"),
        }
    }
}

/// Runs one registration case in `check_meter_proof`'s order, after the Ed25519 program's
/// signature check: the signing key must be the meter key registered, and the message its
/// registration to the household in the market. Returns the error's name, if any.
fn register(doc: &Value, case: &Value) -> Result<(), &'static str> {
    let market: [u8; 32] = bytes(&doc["market"]);
    let household: [u8; 32] = bytes(&doc["household"]);
    let meter: [u8; 32] = bytes(&doc["meter_public_key"]);
    let message = hex::decode(case["message"].as_str().unwrap()).unwrap();
    let key: [u8; 32] = bytes(&case["public_key"]);
    let signature = Signature::from_bytes(&bytes(&case["signature"]));

    VerifyingKey::from_bytes(&key)
        .unwrap()
        .verify(&message, &signature)
        .map_err(|_| "InvalidSignature")?;
    if key != meter {
        return Err(NishatiError::InvalidMeterRegistration.name());
    }
    registration::check(&message, &market, &household, &meter).map_err(NishatiError::name)
}

#[test]
fn every_registration_vector_gets_its_expected_outcome() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reading-vectors.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let doc = &doc["registration"];
    assert_eq!(doc["message_len"].as_u64(), Some(registration::LEN as u64));
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        match (register(doc, case), case["error"].as_str()) {
            (Ok(()), None) => {
                // The Ed25519 instruction it documents carries exactly this signed message,
                // in the one layout the program accepts.
                let data = hex::decode(case["ed25519_instruction_data"].as_str().unwrap()).unwrap();
                assert_eq!(ed25519::count(&data, registration::LEN), Ok(1), "{name}");
                let signed = ed25519::signed(&data, registration::LEN, 1, 0).unwrap();
                assert_eq!(signed.public_key[..], bytes::<32>(&case["public_key"])[..], "{name}");
                assert_eq!(
                    signed.message,
                    &hex::decode(case["message"].as_str().unwrap()).unwrap()[..],
                    "{name}"
                );
                let fields = &case["fields"];
                assert_eq!(
                    fields["magic"].as_str(),
                    Some(hex::encode(registration::MAGIC).as_str()),
                    "{name}"
                );
                assert_eq!(
                    fields["version"].as_u64(),
                    Some(registration::VERSION.into()),
                    "{name}"
                );
                assert_eq!(fields["meter"], doc["meter_public_key"], "{name}");
            }
            (Err(got), Some(want)) => assert_eq!(got, want, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, expected {want:?}"),
        }
    }
}
