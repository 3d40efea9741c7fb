//! With feature `checks`: turns the shared reading vectors (docs/reading-vectors.json) into a
//! Rust table, so the checks hold the firmware to them on targets with no file system.

const VECTORS: &str = "../../docs/reading-vectors.json";

fn main() {
    println!("cargo::rerun-if-changed={VECTORS}");
    #[cfg(feature = "checks")]
    vectors::write();
}

/// Compiled only with `checks`, the one feature that brings `serde_json` in.
#[cfg(feature = "checks")]
mod vectors {
    use std::{env, fmt::Write as _, fs, path::Path};

    use serde_json::Value;

    use super::VECTORS;

    fn bytes(value: &Value) -> Vec<u8> {
        let text = value.as_str().expect("a hex string");
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn text(value: &Value) -> String {
        format!("{:?}", value.as_str().expect("a string"))
    }

    fn error(value: &Value) -> String {
        match value.as_str() {
            Some(name) => format!("Some({name:?})"),
            None => "None".into(),
        }
    }

    pub fn write() {
        let doc: Value = serde_json::from_str(&fs::read_to_string(VECTORS).expect(VECTORS))
            .expect("the vectors are JSON");
        let mut out = String::new();
        let reg = &doc["registration"];
        let valid = &reg["cases"][0];
        assert!(valid["error"].is_null(), "the first registration case is the valid one");
        for (name, value) in [
            ("MARKET", &doc["market"]),
            ("METER_SEED", &doc["registered_meter_seed"]),
            ("METER_PUBLIC_KEY", &doc["registered_meter_public_key"]),
            ("REGISTRATION_MARKET", &reg["market"]),
            ("REGISTRATION_HOUSEHOLD", &reg["household"]),
            ("REGISTRATION_METER_SEED", &reg["meter_seed"]),
            ("REGISTRATION_MESSAGE", &valid["message"]),
            ("REGISTRATION_SIGNATURE", &valid["signature"]),
            ("REGISTRATION_ED25519_INSTRUCTION_DATA", &valid["ed25519_instruction_data"]),
        ] {
            let b = bytes(value);
            writeln!(out, "pub const {name}: [u8; {}] = {b:?};", b.len()).unwrap();
        }
        out.push_str("pub const CASES: &[Case] = &[\n");
        for case in doc["cases"].as_array().expect("cases") {
            writeln!(
                out,
                "Case {{ name: {}, message: &{:?}, signature: {:?}, meter_public_key: {:?}, error: {} }},",
                text(&case["name"]),
                bytes(&case["message"]),
                bytes(&case["signature"]),
                bytes(&case["meter_public_key"]),
                error(&case["error"]),
            )
            .unwrap();
        }
        out.push_str("];\n");
        let path = Path::new(&env::var("OUT_DIR").unwrap()).join("vectors.rs");
        fs::write(path, out).unwrap();
    }
}
