//! The meter's signer against the shared vectors (docs/reading-vectors.json, turned into the
//! table below at build time): with the vectors' meter seed it makes exactly their bytes and
//! signatures.

use nishati_reading::Reading;

use crate::signer::{MeterKey, SignedReading};

/// One reading case of the vectors.
pub struct Case {
    pub name: &'static str,
    pub message: &'static [u8],
    pub signature: [u8; 64],
    pub meter_public_key: [u8; 32],
    /// The market's error for it; `None`: accepted.
    pub error: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/vectors.rs"));

pub fn the_vectors_meter_key() {
    let key = MeterKey::from_seed(&METER_SEED);
    assert_eq!(key.public_key(), METER_PUBLIC_KEY);
    let mut text = [0u8; 44];
    assert_eq!(key.public_key_base58(&mut text), "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB");
}

/// Every case the vectors' meter signed over a well-framed reading, valid or refused for what
/// it says (replayed, from the future, backwards), is remade byte for byte.
pub fn signs_every_reading_of_the_vectors_as_they_are() {
    let key = MeterKey::from_seed(&METER_SEED);
    let mut remade = 0;
    for case in CASES {
        let name = case.name;
        let Ok(reading) = Reading::parse(case.message, &MARKET) else { continue };
        let signed = key.sign_reading(&reading, &MARKET);
        assert_eq!(signed.message[..], case.message[..], "{name}");
        let by_this_key = case.meter_public_key == key.public_key();
        let same = signed.signature == case.signature;
        match case.error {
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

pub fn signs_the_vectors_registration() {
    let key = MeterKey::from_seed(&REGISTRATION_METER_SEED);
    let signed = key.sign_registration(&REGISTRATION_MARKET, &REGISTRATION_HOUSEHOLD);
    assert_eq!(signed.message, REGISTRATION_MESSAGE);
    assert_eq!(signed.signature, REGISTRATION_SIGNATURE);
    // The Ed25519 instruction the market is sent carries the signature, key and message.
    let data = &REGISTRATION_ED25519_INSTRUCTION_DATA;
    assert_eq!(data[16..80], signed.signature[..]);
    assert_eq!(data[80..112], key.public_key()[..]);
    assert_eq!(data[112..], signed.message[..]);
}
