//! Ed25519 verification of meter readings, accepting exactly what Solana's Ed25519 program
//! accepts: the program parses the key with `VerifyingKey::from_bytes` and checks the signature
//! with ed25519-dalek's `verify_strict` (feature `ed25519_precompile_verify_strict`, active on
//! every cluster). A reading the oracle stores is then one `meter_attest` is not refused for.
//!
//! Many signatures are checked one by one, in one call that releases the GIL once, not by
//! ed25519-dalek's batch equation: that equation is cofactorless but random-weighted, so a
//! signature whose R or key has a torsion component (which `verify_strict` refuses, or accepts,
//! by the exact equation) passes it or not by the weights' parity (`tests/vectors.rs` shows one).
//! Making a batch agree needs a prime-order check of every R, a scalar multiplication by ℓ that
//! costs about what the batch saves (`docs/ed25519-vectors.md` has the measured rates).

use ed25519_dalek::{Signature, VerifyingKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH};

/// One signature to check: the signer's public key, the signature, the signed message.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    pub public_key: &'a [u8],
    pub signature: &'a [u8],
    pub message: &'a [u8],
}

/// The key and signature as the Ed25519 program parses them; `None` where it refuses them.
fn parse(signed: &Signed) -> Option<(VerifyingKey, Signature)> {
    let key: &[u8; PUBLIC_KEY_LENGTH] = signed.public_key.try_into().ok()?;
    if signed.signature.len() != SIGNATURE_LENGTH {
        return None;
    }
    let signature = Signature::from_slice(signed.signature).ok()?;
    Some((VerifyingKey::from_bytes(key).ok()?, signature))
}

/// The Ed25519 program's verdict on one signature.
pub fn verify_strict(signed: &Signed) -> bool {
    parse(signed)
        .is_some_and(|(key, signature)| key.verify_strict(signed.message, &signature).is_ok())
}

/// [`verify_strict`]'s verdict on each signature, in order.
pub fn verify_many(items: &[Signed]) -> Vec<bool> {
    items.iter().map(verify_strict).collect()
}

/// The Python module `nishati_verify` (built by maturin with the `python` feature).
#[cfg(feature = "python")]
mod python {
    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    use super::{verify_many, verify_strict, Signed};

    /// Whether `signature` is `public_key`'s over `message`, as the Ed25519 program decides it
    /// (`False` for a key or signature of the wrong length). Releases the GIL while it checks.
    #[pyfunction]
    fn verify(py: Python<'_>, public_key: &[u8], signature: &[u8], message: &[u8]) -> bool {
        let signed = Signed { public_key, signature, message };
        py.detach(|| verify_strict(&signed))
    }

    /// :func:`verify`'s verdict on each ``(public_key, signature, message)``, in order. Releases
    /// the GIL while it checks.
    #[pyfunction]
    #[allow(clippy::type_complexity)]
    fn verify_batch(
        py: Python<'_>,
        items: Vec<(Bound<'_, PyBytes>, Bound<'_, PyBytes>, Bound<'_, PyBytes>)>,
    ) -> Vec<bool> {
        let signed: Vec<Signed> = items
            .iter()
            .map(|(public_key, signature, message)| Signed {
                public_key: public_key.as_bytes(),
                signature: signature.as_bytes(),
                message: message.as_bytes(),
            })
            .collect();
        py.detach(|| verify_many(&signed))
    }

    #[pymodule]
    fn nishati_verify(module: &Bound<'_, PyModule>) -> PyResult<()> {
        module.add_function(wrap_pyfunction!(verify, module)?)?;
        module.add_function(wrap_pyfunction!(verify_batch, module)?)?;
        Ok(())
    }
}
