//! The meter's signer against the shared vectors (docs/reading-vectors.json): with the vectors'
//! meter seed it makes exactly their bytes and signatures.

use nishati_meter_core::signer::{MeterKey, SignedReading};
use nishati_reading::Reading;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reading-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn array<const N: usize>(text: &Value) -> [u8; N] {
    hex::decode(text.as_str().unwrap()).unwrap().try_into().unwrap()
}

#[test]
fn the_vectors_meter_key() {
    let doc = vectors();
    let key = MeterKey::from_seed(&array(&doc["registered_meter_seed"]));
    assert_eq!(key.public_key(), array::<32>(&doc["registered_meter_public_key"]));
    let mut text = [0u8; 44];
    assert_eq!(key.public_key_base58(&mut text), "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB");
}

/// Every case the vectors' meter signed over a well-framed reading, valid or refused for what
/// it says (replayed, from the future, backwards), is remade byte for byte.
#[test]
fn signs_every_reading_of_the_vectors_as_they_are() {
    let doc = vectors();
    let market = array::<32>(&doc["market"]);
    let key = MeterKey::from_seed(&array(&doc["registered_meter_seed"]));
    let mut remade = 0;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let message = hex::decode(case["message"].as_str().unwrap()).unwrap();
        let Ok(reading) = Reading::parse(&message, &market) else { continue };
        let signed = key.sign_reading(&reading, &market);
        assert_eq!(signed.message[..], message[..], "{name}");
        let by_this_key = array::<32>(&case["meter_public_key"]) == key.public_key();
        let same = signed.signature == array::<64>(&case["signature"]);
        match case["error"].as_str() {
            Some("InvalidSignature") | Some("MeterMismatch") => assert!(!same, "{name}"),
            _ => {
                assert!(by_this_key && same, "{name}");
                remade += 1;
            }
        }
        assert_eq!(SignedReading::from_bytes(&signed.to_bytes()), Some(signed), "{name}");
        assert_eq!(u64::from(signed.counter()), u64::from(reading.counter), "{name}");
    }
    assert!(remade >= 10, "only {remade} vectors remade");
}

#[test]
fn signs_the_vectors_registration() {
    let doc = vectors();
    let reg = &doc["registration"];
    let key = MeterKey::from_seed(&array(&reg["meter_seed"]));
    let valid = &reg["cases"][0];
    assert!(valid["error"].is_null());
    let signed = key.sign_registration(&array(&reg["market"]), &array(&reg["household"]));
    assert_eq!(signed.message, array::<101>(&valid["message"]));
    assert_eq!(signed.signature, array::<64>(&valid["signature"]));
    // The Ed25519 instruction the market is sent carries the signature, key and message.
    let data = hex::decode(valid["ed25519_instruction_data"].as_str().unwrap()).unwrap();
    assert_eq!(data[16..80], signed.signature[..]);
    assert_eq!(data[80..112], key.public_key()[..]);
    assert_eq!(data[112..], signed.message[..]);
}
