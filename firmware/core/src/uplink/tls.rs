//! embedded-tls's provider and verifier for a pinned server (feature `tls`): the server is
//! trusted only if its certificate has the pinned SHA-256 fingerprint and its CertificateVerify
//! verifies with that certificate's key (`pin`). No root certificates are carried, so there is
//! no other way in. The chip's uplink uses it over embassy-net, the host tests over std TCP
//! against OpenSSL's TLS 1.3 server.

use core::cell::Cell;

use embedded_tls::{
    Aes128GcmSha256, CertificateEntryRef, CertificateRef, CertificateVerifyRef, CryptoProvider,
    CryptoRngCore, Sha256, TlsError, TlsVerifier,
};
use sha2::Digest;

use super::pin::{self, PinError, PublicKey};
use crate::settings::FINGERPRINT_LEN;

/// The server's record may be TLS's largest (RFC 8446 §5.1: 2^14 bytes and the record's
/// overhead): the server is not asked for smaller ones, since not every server honours it.
pub const READ_RECORD_LEN: usize = 16_640;
/// The meter's own records are small: a PUBLISH is 140 bytes, an HTTP POST under 600.
pub const WRITE_RECORD_LEN: usize = 2_048;

/// The pinned certificate's key, kept from its Certificate message to its CertificateVerify.
#[derive(Clone, Copy)]
enum ServerKey {
    P256([u8; 65]),
    Ed25519([u8; 32]),
}

impl ServerKey {
    fn from_certificate(der: &[u8]) -> Result<Self, PinError> {
        match pin::public_key(der)? {
            PublicKey::P256(point) => {
                Ok(Self::P256(point.try_into().map_err(|_| PinError::BadCertificate)?))
            }
            PublicKey::Ed25519(point) => {
                Ok(Self::Ed25519(point.try_into().map_err(|_| PinError::BadCertificate)?))
            }
        }
    }

    fn public_key(&self) -> PublicKey<'_> {
        match self {
            Self::P256(point) => PublicKey::P256(point),
            Self::Ed25519(point) => PublicKey::Ed25519(point),
        }
    }
}

pub struct PinnedServer<'a, R> {
    rng: R,
    pin: [u8; FINGERPRINT_LEN],
    /// The presented certificate's key and the handshake's hash up to it, once it matched.
    accepted: Option<(ServerKey, [u8; 32])>,
    /// Why the server was refused, for the console (embedded-tls's own error only says
    /// `InvalidCertificate` or `InvalidSignature`).
    refused: &'a Cell<Option<PinError>>,
}

impl<'a, R: CryptoRngCore> PinnedServer<'a, R> {
    /// `rng`: the handshake's ephemeral keys come from it, so it must be a real entropy source.
    pub fn new(rng: R, pin: [u8; FINGERPRINT_LEN], refused: &'a Cell<Option<PinError>>) -> Self {
        refused.set(None);
        Self { rng, pin, accepted: None, refused }
    }

    fn refuse(&self, error: PinError, tls: TlsError) -> TlsError {
        self.refused.set(Some(error));
        tls
    }
}

impl<R: CryptoRngCore> CryptoProvider for PinnedServer<'_, R> {
    type CipherSuite = Aes128GcmSha256;
    /// The meter presents no client certificate, so it never signs.
    type Signature = [u8; 64];

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Self::CipherSuite>, TlsError> {
        Ok(self)
    }
}

impl<R: CryptoRngCore> TlsVerifier<Aes128GcmSha256> for PinnedServer<'_, R> {
    /// The pin names the one certificate accepted, whatever names it carries.
    fn set_hostname_verification(&mut self, _hostname: &str) -> Result<(), TlsError> {
        Ok(())
    }

    fn verify_certificate(
        &mut self,
        transcript: &Sha256,
        certificate: CertificateRef,
    ) -> Result<(), TlsError> {
        let Some(CertificateEntryRef::X509(der)) = certificate.entries.first() else {
            return Err(self.refuse(PinError::NoCertificate, TlsError::InvalidCertificate));
        };
        let key = pin::check_fingerprint(der, &self.pin)
            .and_then(|()| ServerKey::from_certificate(der))
            .map_err(|error| self.refuse(error, TlsError::InvalidCertificate))?;
        self.accepted = Some((key, transcript.clone().finalize().into()));
        Ok(())
    }

    fn verify_signature(&mut self, verify: CertificateVerifyRef) -> Result<(), TlsError> {
        let Some((key, transcript)) = self.accepted.take() else {
            return Err(self.refuse(PinError::NoCertificate, TlsError::InvalidCertificate));
        };
        pin::check_signature(
            key.public_key(),
            verify.signature_scheme.as_u16(),
            verify.signature,
            &transcript,
        )
        .map_err(|error| self.refuse(error, TlsError::InvalidSignature))
    }
}
