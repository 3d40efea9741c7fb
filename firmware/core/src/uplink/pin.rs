//! Trusting a broker by its pinned certificate, as the meter's `tls SHA256` setting asks: the
//! certificate the server presents must have that SHA-256 fingerprint (over its DER, as
//! `openssl x509 -noout -fingerprint -sha256` prints it), and its TLS 1.3 CertificateVerify
//! must be signed by that certificate's key over the handshake so far (RFC 8446 §4.4.3), so a
//! server that replays the broker's public certificate without its private key is refused.
//!
//! Keys: ECDSA P-256 (`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256`) and
//! Ed25519. RSA is not offered: its verifier needs a heap and most of the image's flash.

// ed25519-dalek's and p256's `verify` are both the `signature` crate's `Verifier`.
use ed25519_dalek::Verifier as _;
use sha2::{Digest, Sha256};

use crate::settings::FINGERPRINT_LEN;

/// TLS 1.3 SignatureScheme code points (RFC 8446 §4.2.3) the meter accepts.
pub const ECDSA_SECP256R1_SHA256: u16 = 0x0403;
pub const ED25519: u16 = 0x0807;

/// Bytes of the CertificateVerify message over a SHA-256 transcript hash.
pub const VERIFY_MESSAGE_LEN: usize = 64 + CONTEXT.len() + 32;
const CONTEXT: &[u8] = b"TLS 1.3, server CertificateVerify\x00";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinError {
    /// The server's certificate is not the pinned one; its fingerprint is this.
    FingerprintMismatch { presented: [u8; FINGERPRINT_LEN] },
    /// The server sent no X.509 certificate (none, or a raw public key).
    NoCertificate,
    /// The certificate's DER does not parse as X.509 as far as its public key.
    BadCertificate,
    /// The certificate's key is neither ECDSA P-256 nor Ed25519.
    UnsupportedKey,
    /// The server signed with a scheme the meter does not offer, or not its key's.
    UnsupportedScheme(u16),
    /// The CertificateVerify signature does not verify with the certificate's key.
    BadSignature,
}

/// A certificate's public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicKey<'a> {
    /// SEC1 point.
    P256(&'a [u8]),
    Ed25519(&'a [u8]),
}

pub fn fingerprint(der: &[u8]) -> [u8; FINGERPRINT_LEN] {
    Sha256::digest(der).into()
}

pub fn check_fingerprint(der: &[u8], pinned: &[u8; FINGERPRINT_LEN]) -> Result<(), PinError> {
    let presented = fingerprint(der);
    if &presented == pinned {
        Ok(())
    } else {
        Err(PinError::FingerprintMismatch { presented })
    }
}

/// One DER element: its tag, its contents, and what follows it.
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), PinError> {
    let (&tag, rest) = input.split_first().ok_or(PinError::BadCertificate)?;
    let (&first, rest) = rest.split_first().ok_or(PinError::BadCertificate)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 3 || rest.len() < count {
            return Err(PinError::BadCertificate);
        }
        let len = rest[..count].iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return Err(PinError::BadCertificate);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(tag: u8, input: &[u8]) -> Result<(&[u8], &[u8]), PinError> {
    match element(input)? {
        (found, contents, rest) if found == tag => Ok((contents, rest)),
        _ => Err(PinError::BadCertificate),
    }
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const VERSION: u8 = 0xA0;
/// id-ecPublicKey (1.2.840.10045.2.1) and prime256v1 (1.2.840.10045.3.1.7).
const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// id-Ed25519 (1.3.101.112).
const ED25519_KEY: &[u8] = &[0x2B, 0x65, 0x70];

/// The subject public key of an X.509 certificate (RFC 5280 §4.1).
pub fn public_key(der: &[u8]) -> Result<PublicKey<'_>, PinError> {
    let (certificate, _) = expect(SEQUENCE, der)?;
    let (tbs, _) = expect(SEQUENCE, certificate)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = element(rest)?.2;
    }
    // serial, signature algorithm, issuer, validity, subject
    for _ in 0..5 {
        rest = element(rest)?.2;
    }
    let (spki, _) = expect(SEQUENCE, rest)?;
    let (algorithm, spki_rest) = expect(SEQUENCE, spki)?;
    let (bits, _) = expect(BIT_STRING, spki_rest)?;
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(PinError::BadCertificate),
    };
    let (kind, parameters) = expect(OID, algorithm)?;
    match kind {
        EC_PUBLIC_KEY => match expect(OID, parameters)? {
            (PRIME256V1, _) => Ok(PublicKey::P256(key)),
            _ => Err(PinError::UnsupportedKey),
        },
        ED25519_KEY => Ok(PublicKey::Ed25519(key)),
        _ => Err(PinError::UnsupportedKey),
    }
}

/// What the server signs in its CertificateVerify: 64 spaces, the context string, and the
/// transcript hash up to its Certificate message.
pub fn verify_message(transcript_hash: &[u8; 32]) -> [u8; VERIFY_MESSAGE_LEN] {
    let mut message = [0x20u8; VERIFY_MESSAGE_LEN];
    message[64..64 + CONTEXT.len()].copy_from_slice(CONTEXT);
    message[64 + CONTEXT.len()..].copy_from_slice(transcript_hash);
    message
}

/// Checks the server's CertificateVerify: `scheme` and `signature` as it sent them (ECDSA in
/// DER), against the key of the certificate `der` it presented.
pub fn check_certificate_verify(
    der: &[u8],
    scheme: u16,
    signature: &[u8],
    transcript_hash: &[u8; 32],
) -> Result<(), PinError> {
    check_signature(public_key(der)?, scheme, signature, transcript_hash)
}

/// [`check_certificate_verify`] with the certificate's key already taken out of it.
pub fn check_signature(
    key: PublicKey<'_>,
    scheme: u16,
    signature: &[u8],
    transcript_hash: &[u8; 32],
) -> Result<(), PinError> {
    let message = verify_message(transcript_hash);
    match (key, scheme) {
        (PublicKey::P256(point), ECDSA_SECP256R1_SHA256) => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| PinError::BadCertificate)?;
            let signature =
                p256::ecdsa::Signature::from_der(signature).map_err(|_| PinError::BadSignature)?;
            key.verify(&message, &signature).map_err(|_| PinError::BadSignature)
        }
        (PublicKey::Ed25519(point), ED25519) => {
            let point: &[u8; 32] = point.try_into().map_err(|_| PinError::BadCertificate)?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(point)
                .map_err(|_| PinError::BadCertificate)?;
            let signature = ed25519_dalek::Signature::from_slice(signature)
                .map_err(|_| PinError::BadSignature)?;
            key.verify(&message, &signature).map_err(|_| PinError::BadSignature)
        }
        (_, other) => Err(PinError::UnsupportedScheme(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with openssl 3.0 (`req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256`, and
    // `-newkey ed25519`); the signatures are openssl's over `verify_message(&[0, 1, .., 31])`.
    const P256_CERT: &[u8] = include_bytes!("testdata/broker-p256.der");
    const ED25519_CERT: &[u8] = include_bytes!("testdata/broker-ed25519.der");
    const P256_SIGNATURE: &[u8] = include_bytes!("testdata/cv-p256.sig");
    const ED25519_SIGNATURE: &[u8] = include_bytes!("testdata/cv-ed25519.sig");

    fn transcript() -> [u8; 32] {
        core::array::from_fn(|i| i as u8)
    }

    #[test]
    fn the_fingerprint_is_the_one_openssl_prints() {
        let openssl = "21:EA:06:0E:F0:21:CA:C6:90:BC:06:4A:12:B6:86:83:53:6A:F8:D0:F2:BD:76:7A:9A:7A:7F:B7:2A:61:25:48";
        let crate::settings::Tls::Pinned(pin) = crate::settings::Tls::parse(openssl).unwrap()
        else {
            panic!("a fingerprint parses as a pin");
        };
        assert_eq!(check_fingerprint(P256_CERT, &pin), Ok(()));
        assert_eq!(
            check_fingerprint(ED25519_CERT, &pin),
            Err(PinError::FingerprintMismatch { presented: fingerprint(ED25519_CERT) })
        );
    }

    #[test]
    fn the_public_key_is_found_in_either_kind_of_certificate() {
        let PublicKey::P256(point) = public_key(P256_CERT).unwrap() else { panic!("P-256") };
        assert_eq!((point.len(), point[0]), (65, 0x04));
        let PublicKey::Ed25519(point) = public_key(ED25519_CERT).unwrap() else {
            panic!("Ed25519")
        };
        assert_eq!(point.len(), 32);
        assert_eq!(public_key(&P256_CERT[..200]), Err(PinError::BadCertificate));
        assert_eq!(public_key(b"\x04\x03abc"), Err(PinError::BadCertificate));
    }

    #[test]
    fn the_servers_signature_over_the_handshake_is_checked() {
        let hash = transcript();
        assert_eq!(
            check_certificate_verify(P256_CERT, ECDSA_SECP256R1_SHA256, P256_SIGNATURE, &hash),
            Ok(())
        );
        assert_eq!(
            check_certificate_verify(ED25519_CERT, ED25519, ED25519_SIGNATURE, &hash),
            Ok(())
        );
        let mut other = hash;
        other[31] ^= 1;
        assert_eq!(
            check_certificate_verify(P256_CERT, ECDSA_SECP256R1_SHA256, P256_SIGNATURE, &other),
            Err(PinError::BadSignature)
        );
        assert_eq!(
            check_certificate_verify(ED25519_CERT, ED25519, ED25519_SIGNATURE, &other),
            Err(PinError::BadSignature)
        );
        // The broker's certificate with another key's signature: a replayed certificate.
        assert_eq!(
            check_certificate_verify(P256_CERT, ED25519, ED25519_SIGNATURE, &hash),
            Err(PinError::UnsupportedScheme(ED25519))
        );
    }
}
