//! The shared vectors (docs/reading-vectors.json) against the layouts: every reading parses to
//! its framing error or to values that encode back to the same bytes, and the valid
//! registration is built from its fields.

use nishati_reading::{registration, FormatError, Reading};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reading-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn key(text: &Value) -> [u8; 32] {
    hex::decode(text.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn name(error: FormatError) -> &'static str {
    match error {
        FormatError::InvalidReadingLength => "InvalidReadingLength",
        FormatError::InvalidReadingMagic => "InvalidReadingMagic",
        FormatError::UnsupportedReadingVersion => "UnsupportedReadingVersion",
        FormatError::ReadingForAnotherMarket => "ReadingForAnotherMarket",
    }
}

#[test]
fn every_reading_parses_to_its_framing_error_or_encodes_back() {
    let doc = vectors();
    let market = key(&doc["market"]);
    let framing = [
        "InvalidReadingLength",
        "InvalidReadingMagic",
        "UnsupportedReadingVersion",
        "ReadingForAnotherMarket",
    ];
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 19);
    for case in cases {
        let case_name = case["name"].as_str().unwrap();
        let message = hex::decode(case["message"].as_str().unwrap()).unwrap();
        let want = case["error"].as_str().filter(|e| framing.contains(e));
        match (Reading::parse(&message, &market), want) {
            (Ok(reading), None) => {
                assert_eq!(reading.encode(&market)[..], message[..], "{case_name}");
                if let Some(fields) = case.get("fields") {
                    let expected = Reading {
                        counter: fields["counter"].as_u64().unwrap().try_into().unwrap(),
                        timestamp: fields["timestamp"].as_u64().unwrap().try_into().unwrap(),
                        exported_wh: fields["exported_wh"].as_u64().unwrap(),
                        imported_wh: fields["imported_wh"].as_u64().unwrap(),
                    };
                    assert_eq!(reading, expected, "{case_name}");
                }
            }
            (Err(got), Some(want)) => assert_eq!(name(got), want, "{case_name}"),
            (got, want) => panic!("{case_name}: got {got:?}, expected {want:?}"),
        }
    }
}

#[test]
fn registration_is_built_from_its_fields_and_refuses_every_other_message() {
    let doc = vectors();
    let reg = &doc["registration"];
    let (market, household, meter) =
        (key(&reg["market"]), key(&reg["household"]), key(&reg["meter_public_key"]));
    assert_eq!(reg["message_len"].as_u64(), Some(registration::LEN as u64));
    let built = registration::message(&market, &household, &meter);
    for case in reg["cases"].as_array().unwrap() {
        let case_name = case["name"].as_str().unwrap();
        let message = hex::decode(case["message"].as_str().unwrap()).unwrap();
        // Two broken cases carry the right message: a wrong signer or a bad signature.
        let same = message[..] == built[..];
        assert_eq!(registration::is(&message, &market, &household, &meter), same, "{case_name}");
        if case["error"].is_null() {
            assert!(same, "{case_name}");
        }
    }
}
