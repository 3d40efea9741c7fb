//! The edge-case vectors of `docs/ed25519-vectors.json`: built here from their definitions,
//! checked against the file (`NISHATI_WRITE_VECTORS=1 cargo test` writes it), and each one's
//! stated verdict held against `verify_strict`. The Python suites hold the extension, the
//! `cryptography` fallback and LiteSVM's Ed25519 program to the same file.

use std::fmt::Write as _;
use std::path::PathBuf;

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Signer, SigningKey};
use nishati_verify::{verify_many, verify_strict, Signed};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

// p = 2^255 - 19, little-endian.
const FIELD_PRIME: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};
// ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const SIGN_BIT: u8 = 0x80;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Little-endian 256-bit addition (no carry out: the sums here stay below 2^256).
fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// `y` (below 19) as a 32-byte little-endian y-coordinate, plus p when `beyond_p`, sign bit set
/// when `sign`.
fn y_encoding(y: u8, beyond_p: bool, sign: bool) -> [u8; 32] {
    let mut small = [0u8; 32];
    small[0] = y;
    let mut bytes = if beyond_p { add_le(&small, &FIELD_PRIME) } else { small };
    if sign {
        bytes[31] |= SIGN_BIT;
    }
    bytes
}

/// Every 32-byte string that decompresses to a point of order dividing 8: the eight torsion
/// points' canonical encodings, each with the sign bit flipped where x = 0, and the encodings
/// with y ≥ p (y = p, p + 1: the points with y = 0, 1).
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    for point in EIGHT_TORSION {
        let canonical = point.compress().to_bytes();
        candidates.push(canonical);
        let mut flipped = canonical;
        flipped[31] ^= SIGN_BIT;
        candidates.push(flipped);
    }
    for y in 0..19 {
        for sign in [false, true] {
            candidates.push(y_encoding(y, true, sign));
        }
    }
    let mut found: Vec<[u8; 32]> = Vec::new();
    for bytes in candidates {
        let small =
            CompressedEdwardsY(bytes).decompress().is_some_and(|point| point.is_small_order());
        if small && !found.contains(&bytes) {
            found.push(bytes);
        }
    }
    found
}

fn challenge(r: &[u8; 32], key: &[u8; 32], message: &[u8]) -> Scalar {
    let mut hash = Sha512::new();
    hash.update(r);
    hash.update(key);
    hash.update(message);
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
}

fn scalar(seed: u8) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&[seed; 64])
}

fn base(s: &Scalar) -> EdwardsPoint {
    ED25519_BASEPOINT_POINT * s
}

/// The signature `(r_bytes, r + k·a)` under `key_bytes`, whose discrete log is `a` up to
/// torsion: the exact equation holds exactly when R's and the key's torsion cancel.
fn forged(a: &Scalar, r: &Scalar, key_bytes: [u8; 32], r_bytes: [u8; 32], m: &[u8]) -> [u8; 64] {
    let s = r + challenge(&r_bytes, &key_bytes, m) * a;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&r_bytes);
    signature[32..].copy_from_slice(s.as_bytes());
    signature
}

/// The low three bits of k: how the key's order-8 torsion enters the equation.
fn k_mod_8(r_bytes: &[u8; 32], key_bytes: &[u8; 32], message: &[u8]) -> u8 {
    challenge(r_bytes, key_bytes, message).as_bytes()[0] & 7
}

/// A reading-sized message, numbered.
fn message(n: u32) -> Vec<u8> {
    let mut m = b"NSHR\x02edge-case".to_vec();
    m.extend_from_slice(&n.to_le_bytes());
    m.resize(37, 0);
    m
}

/// The first numbered message whose challenge under `(r_bytes, key_bytes)` passes `wanted`.
fn message_where(
    r_bytes: impl Fn(&[u8]) -> [u8; 32],
    key: &[u8; 32],
    wanted: impl Fn(u8) -> bool,
) -> Vec<u8> {
    (0..).map(message).find(|m| wanted(k_mod_8(&r_bytes(m), key, m))).expect("some message")
}

struct Vector {
    name: String,
    why: &'static str,
    key: Vec<u8>,
    signature: Vec<u8>,
    message: Vec<u8>,
    valid: bool,
}

fn vector(
    name: impl Into<String>,
    why: &'static str,
    key: &[u8],
    signature: &[u8],
    message: &[u8],
    valid: bool,
) -> Vector {
    Vector {
        name: name.into(),
        why,
        key: key.to_vec(),
        signature: signature.to_vec(),
        message: message.to_vec(),
        valid,
    }
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let signer = SigningKey::from_bytes(&[7; 32]);
    let key = signer.verifying_key().to_bytes();
    let m = message(0);
    let honest = signer.sign(&m).to_bytes();
    out.push(vector("honest", "a meter's signature", &key, &honest, &m, true));
    let mut other = m.clone();
    other[36] ^= 1;
    out.push(vector(
        "other message",
        "one bit of the message changed",
        &key,
        &honest,
        &other,
        false,
    ));
    let mut flipped = honest;
    flipped[40] ^= 1;
    out.push(vector("other S", "one bit of S changed", &key, &flipped, &m, false));

    let identity = EdwardsPoint::default().compress().to_bytes();
    let a = scalar(3);
    let r = scalar(5);
    let a_key = base(&a).compress().to_bytes();
    let zero_s = {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&identity);
        s
    };
    for (i, encoding) in small_order_encodings().into_iter().enumerate() {
        out.push(vector(
            format!("small-order key {i}"),
            "the key decodes to a point of order dividing 8 (R = identity, S = 0 passes the \
             cofactorless equation for the identity key: refused as weak)",
            &encoding,
            &zero_s,
            &m,
            false,
        ));
        let signature = forged(&a, &Scalar::ZERO, a_key, encoding, &m);
        out.push(vector(
            format!("small-order R {i}"),
            "R decodes to a point of order dividing 8, S = k·a (for R = identity the \
             cofactorless equation holds: refused for R's order)",
            &a_key,
            &signature,
            &m,
            false,
        ));
    }

    let s_plus_order = {
        let mut s = [0u8; 32];
        s.copy_from_slice(&honest[32..]);
        let mut sig = honest;
        sig[32..].copy_from_slice(&add_le(&s, &GROUP_ORDER));
        sig
    };
    out.push(vector(
        "S + ℓ",
        "the honest S plus the group order: the same scalar, non-canonical",
        &key,
        &s_plus_order,
        &m,
        false,
    ));
    let mut s_high_bit = honest;
    s_high_bit[63] |= 0x80;
    out.push(vector("S with bit 255", "S's top bit set", &key, &s_high_bit, &m, false));

    // Two points with a y below 19 (so with an encoding y + p), not of small order.
    let non_canonical = (2..19).map(|y| (y, y_encoding(y, true, false))).filter(|(_, e)| {
        CompressedEdwardsY(*e).decompress().is_some_and(|point| !point.is_small_order())
    });
    for (y, encoding) in non_canonical.take(2) {
        let signature = forged(&a, &r, a_key, encoding, &m);
        out.push(vector(
            format!("non-canonical R (y = p + {y})"),
            "R's y-coordinate encoded as y + p",
            &a_key,
            &signature,
            &m,
            false,
        ));
        out.push(vector(
            format!("non-canonical key (y = p + {y})"),
            "the key's y-coordinate encoded as y + p",
            &encoding,
            &honest,
            &m,
            false,
        ));
    }
    let off_curve = (2..=u8::MAX)
        .map(|y| y_encoding(y, false, false))
        .find(|e| CompressedEdwardsY(*e).decompress().is_none())
        .expect("an encoding off the curve");
    out.push(vector("key off the curve", "no point has this y", &off_curve, &honest, &m, false));
    let mut r_off_curve = honest;
    r_off_curve[..32].copy_from_slice(&off_curve);
    out.push(vector("R off the curve", "no point has this y", &key, &r_off_curve, &m, false));

    let order_8 = EIGHT_TORSION[1];
    let mixed_key = (base(&a) + order_8).compress().to_bytes();
    let rb = base(&r).compress().to_bytes();
    let m_k0 = message_where(|_| rb, &mixed_key, |k| k == 0);
    out.push(vector(
        "mixed-order key, 8 | k",
        "key = a·B + an order-8 point, k ≡ 0 mod 8: the exact equation holds and \
         verify_strict accepts a key that is not of prime order",
        &mixed_key,
        &forged(&a, &r, mixed_key, rb, &m_k0),
        &m_k0,
        true,
    ));
    let m_k1 = message_where(|_| rb, &mixed_key, |k| k != 0);
    out.push(vector(
        "mixed-order key, 8 ∤ k",
        "key = a·B + an order-8 point, k ≢ 0 mod 8: off by k times that point",
        &mixed_key,
        &forged(&a, &r, mixed_key, rb, &m_k1),
        &m_k1,
        false,
    ));

    let order_2 = EIGHT_TORSION[4];
    let mixed_r = (base(&r) + order_2).compress().to_bytes();
    out.push(vector(
        "mixed-order R",
        "R = r·B + the order-2 point: off by that point (a batch equation may miss it)",
        &a_key,
        &forged(&a, &r, a_key, mixed_r, &m),
        &m,
        false,
    ));
    let half_key = (base(&a) + order_2).compress().to_bytes();
    let m_odd = message_where(|_| mixed_r, &half_key, |k| k % 2 == 1);
    out.push(vector(
        "mixed-order R and key, k odd",
        "R and key each carry the order-2 point, k odd: the torsion cancels, verify_strict \
         accepts",
        &half_key,
        &forged(&a, &r, half_key, mixed_r, &m_odd),
        &m_odd,
        true,
    ));
    let m_even = message_where(|_| mixed_r, &half_key, |k| k % 2 == 0);
    out.push(vector(
        "mixed-order R and key, k even",
        "R and key each carry the order-2 point, k even: off by the order-2 point",
        &half_key,
        &forged(&a, &r, half_key, mixed_r, &m_even),
        &m_even,
        false,
    ));
    out
}

fn wrong_lengths() -> Vec<Vector> {
    let signer = SigningKey::from_bytes(&[7; 32]);
    let key = signer.verifying_key().to_bytes();
    let m = message(0);
    let sig = signer.sign(&m).to_bytes();
    let why = "a key of 32 bytes and a signature of 64, or nothing verifies";
    vec![
        vector("key of 31 bytes", why, &key[..31], &sig, &m, false),
        vector("key of 33 bytes", why, &[&key[..], &[0]].concat(), &sig, &m, false),
        vector("signature of 63 bytes", why, &key, &sig[..63], &m, false),
        vector("signature of 65 bytes", why, &key, &[&sig[..], &[0]].concat(), &m, false),
        vector("empty signature", why, &key, &[], &m, false),
    ]
}

fn as_json(v: &Vector) -> Value {
    json!({
        "name": v.name,
        "why": v.why,
        "public_key": hex(&v.key),
        "signature": hex(&v.signature),
        "message": hex(&v.message),
        "valid": v.valid,
    })
}

fn document() -> String {
    let doc = json!({
        "about": "Ed25519 edge cases and the verdict of Solana's Ed25519 program (ed25519-dalek \
                  verify_strict) on each; docs/ed25519-vectors.md says what each group is. \
                  Written by native/nishati-verify/tests/vectors.rs.",
        "small_order_encodings": small_order_encodings().iter().map(|e| hex(e)).collect::<Vec<_>>(),
        "vectors": vectors().iter().map(as_json).collect::<Vec<_>>(),
        "wrong_lengths": wrong_lengths().iter().map(as_json).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&doc).expect("JSON") + "\n"
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/ed25519-vectors.json")
}

fn signed(v: &Vector) -> Signed<'_> {
    Signed { public_key: &v.key, signature: &v.signature, message: &v.message }
}

#[test]
fn the_file_holds_the_vectors() {
    let want = document();
    if std::env::var_os("NISHATI_WRITE_VECTORS").is_some() {
        std::fs::write(vectors_path(), &want).expect("write the vectors");
    }
    let have = std::fs::read_to_string(vectors_path()).expect("docs/ed25519-vectors.json");
    assert!(have == want, "docs/ed25519-vectors.json is stale: NISHATI_WRITE_VECTORS=1 cargo test");
}

#[test]
fn fourteen_encodings_of_small_order_points() {
    // 8 canonical, the identity and the order-2 point with x = 0 and the sign bit, y = p (the
    // two order-4 points) and y = p + 1 (the identity) with either sign.
    assert_eq!(small_order_encodings().len(), 14);
}

#[test]
fn each_verdict_is_the_stated_one() {
    for v in vectors().iter().chain(&wrong_lengths()) {
        assert_eq!(verify_strict(&signed(v)), v.valid, "{}", v.name);
    }
}

#[test]
fn many_at_once_give_each_ones_verdict_at_every_position() {
    let all = vectors();
    let honest = &all[0];
    assert!(verify_many(&[]).is_empty());
    for bad in all.iter().filter(|v| !v.valid) {
        for position in 0..4 {
            let mut items = vec![signed(honest); 4];
            items[position] = signed(bad);
            let verdicts = verify_many(&items);
            for (i, verdict) in verdicts.iter().enumerate() {
                assert_eq!(*verdict, i != position, "{} at {position}", bad.name);
            }
        }
    }
}

/// Why `verify_many` does not use the batch equation: a signature `verify_strict` refuses for
/// its R's torsion passes ed25519-dalek's `verify_batch` beside an honest one whenever the
/// random weight it gets is even, about every other message.
#[test]
fn the_batch_equation_accepts_what_verify_strict_refuses() {
    let signer = SigningKey::from_bytes(&[7; 32]);
    let a = signer.to_scalar();
    let key = signer.verifying_key();
    let r = scalar(5);
    let mixed_r = (base(&r) + EIGHT_TORSION[4]).compress().to_bytes();
    let passed = (0..64).map(message).find(|m| {
        let bad = Signature::from_bytes(&forged(&a, &r, key.to_bytes(), mixed_r, m));
        assert!(key.verify_strict(m, &bad).is_err());
        let honest = signer.sign(m);
        ed25519_dalek::verify_batch(&[m, m], &[honest, bad], &[key, key]).is_ok()
    });
    assert!(passed.is_some(), "the batch equation caught every mixed-order R");
}
