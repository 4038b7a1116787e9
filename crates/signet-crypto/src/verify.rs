//! Verification of a signer's signature over SHA-256 of given bytes, with the key from its certificate.
//!
//! A signing device hands back a bare signature over the CMS SignedAttributes. Before anything is
//! written into a document we check it against the signer's public key and learn two things the
//! CMS SignerInfo needs: which signature algorithm was used (its `signatureAlgorithm` must say so)
//! and the signature in the form CMS carries (ECDSA as a DER `SEQUENCE { r, s }`, also when the
//! device produced the raw `r || s` concatenation). The signature arithmetic is ring's (constant
//! time, assembly): it is on the path of every signed document.

use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1};
use ring::signature::{self as ring_signature, UnparsedPublicKey};
use spki::SubjectPublicKeyInfoRef;

/// ECDSA over a SHA-256 prehash, trying DER first and then the raw `r || s` form.
///
/// A macro rather than a generic function: the `ecdsa` crate's DER bounds are long and the two
/// curves are all Signet accepts.
macro_rules! verify_ecdsa {
    ($curve:ident, $key:expr, $message:expr, $signature:expr, $scalar_len:expr) => {{
        let signature: &[u8] = $signature;
        let mut candidates: Vec<$curve::ecdsa::Signature> = Vec::with_capacity(2);
        if let Ok(parsed) = $curve::ecdsa::Signature::from_der(signature) {
            candidates.push(parsed);
        }
        if candidates.is_empty() {
            // Lenient DER: non-minimal integers from a sloppy encoder, normalised below.
            if let Some(raw) = loose_der_components(signature, $scalar_len) {
                if let Ok(parsed) = $curve::ecdsa::Signature::from_slice(&raw) {
                    candidates.push(parsed);
                }
            }
        }
        if signature.len() == 2 * $scalar_len {
            if let Ok(parsed) = $curve::ecdsa::Signature::from_slice(signature) {
                candidates.push(parsed);
            }
        }
        if candidates.is_empty() {
            Err(SignatureError::Malformed(format!(
                "ECDSA signature is neither DER nor {}-byte r||s ({} bytes given)",
                2 * $scalar_len,
                signature.len()
            )))
        } else {
            candidates
                .into_iter()
                .map(|candidate| candidate.to_der().as_bytes().to_vec())
                .find(|der| $key.verify($message, der).is_ok())
                .map(|der| VerifiedSignature {
                    algorithm: SignatureAlgorithm::EcdsaSha256,
                    signature: der,
                })
                .ok_or(SignatureError::Mismatch)
        }
    }};
}

/// `r || s` from a `SEQUENCE { INTEGER r, INTEGER s }` whose integers may carry redundant
/// leading zero bytes (strict DER forbids them; some devices emit them anyway).
fn loose_der_components(signature: &[u8], scalar_len: usize) -> Option<Vec<u8>> {
    fn header(bytes: &[u8], tag: u8) -> Option<(usize, &[u8])> {
        if *bytes.first()? != tag {
            return None;
        }
        let first = *bytes.get(1)? as usize;
        let (len, skip) = if first < 0x80 {
            (first, 2)
        } else if first == 0x81 {
            (*bytes.get(2)? as usize, 3)
        } else {
            return None;
        };
        let body = bytes.get(skip..skip + len)?;
        Some((skip + len, body))
    }
    let (total, body) = header(signature, 0x30)?;
    if total != signature.len() {
        return None;
    }
    let mut out = Vec::with_capacity(2 * scalar_len);
    let mut rest = body;
    for _ in 0..2 {
        let (used, integer) = header(rest, 0x02)?;
        let digits = integer
            .iter()
            .position(|b| *b != 0)
            .map_or(&[][..], |i| &integer[i..]);
        if digits.len() > scalar_len || integer.first().is_some_and(|b| *b & 0x80 != 0) {
            return None;
        }
        out.resize(out.len() + scalar_len - digits.len(), 0);
        out.extend_from_slice(digits);
        rest = &rest[used..];
    }
    rest.is_empty().then_some(out)
}

/// Why a signature was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The signature or the key bytes could not be decoded.
    #[error("malformed signature or key: {0}")]
    Malformed(String),
    /// The signature is well-formed but does not verify with this key over these bytes.
    #[error("signature does not match the key and message")]
    Mismatch,
    /// The key type or curve is not one Signet accepts.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
}

/// The signature algorithm a verified signature used; it decides the CMS `signatureAlgorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// ECDSA over SHA-256 (`ecdsa-with-SHA256`), on P-256 or P-384.
    EcdsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-256 (`sha256WithRSAEncryption`).
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    RsaPssSha256,
}

/// A signature that verified, with its algorithm and its bytes as CMS embeds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The algorithm the signature was made with.
    pub algorithm: SignatureAlgorithm,
    /// The signature in CMS form: DER `SEQUENCE { r, s }` for ECDSA, unchanged for RSA.
    pub signature: Vec<u8>,
}

/// Verifies `signature` over SHA-256 of `message` with the key in `spki_der`
/// (a DER `SubjectPublicKeyInfo`).
///
/// Accepts ECDSA on P-256 and P-384 (DER `SEQUENCE { r, s }` or raw `r || s`), RSA PKCS#1 v1.5
/// and RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt). Returns the algorithm that matched and the
/// signature normalised for CMS.
pub fn verify_sha256_signature(
    spki_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<VerifiedSignature, SignatureError> {
    let spki = crate::der_bounds::decode::<SubjectPublicKeyInfoRef>(spki_der)
        .map_err(|e| SignatureError::Malformed(format!("public key info: {e}")))?;
    let public_key = spki.subject_public_key.raw_bytes();
    let oid = spki.algorithm.oid;
    if oid == ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters_oid()
            .map_err(|e| SignatureError::Malformed(format!("EC curve parameter: {e}")))?;
        if curve == SECP_256_R_1 {
            let key = UnparsedPublicKey::new(&ring_signature::ECDSA_P256_SHA256_ASN1, public_key);
            verify_ecdsa!(p256, key, message, signature, 32)
        } else if curve == SECP_384_R_1 {
            let key = UnparsedPublicKey::new(&ring_signature::ECDSA_P384_SHA256_ASN1, public_key);
            verify_ecdsa!(p384, key, message, signature, 48)
        } else {
            Err(SignatureError::UnsupportedKey(format!("EC curve {curve}")))
        }
    } else if oid == RSA_ENCRYPTION {
        verify_rsa(public_key, message, signature)
    } else {
        Err(SignatureError::UnsupportedKey(format!(
            "key algorithm {oid}"
        )))
    }
}

/// Verifies `signature` over SHA-256 of `message` with the public key of a DER certificate.
pub fn verify_with_certificate(
    certificate_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<VerifiedSignature, SignatureError> {
    let spki = certificate_spki_der(certificate_der)?;
    verify_sha256_signature(&spki, message, signature)
}

/// The DER `SubjectPublicKeyInfo` of a DER certificate.
pub fn certificate_spki_der(certificate_der: &[u8]) -> Result<Vec<u8>, SignatureError> {
    use der::Encode;
    let certificate = crate::der_bounds::decode::<x509_cert::Certificate>(certificate_der)
        .map_err(|e| SignatureError::Malformed(format!("certificate: {e}")))?;
    certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| SignatureError::Malformed(format!("public key info: {e}")))
}

/// RSA over SHA-256 of `message`: PKCS#1 v1.5 first, then PSS (MGF1-SHA-256, 32-byte salt).
/// `public_key` is the DER `RSAPublicKey` from the certificate.
fn verify_rsa(
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<VerifiedSignature, SignatureError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::traits::PublicKeyParts;
    let modulus_len = rsa::RsaPublicKey::from_pkcs1_der(public_key)
        .map_err(|e| SignatureError::Malformed(format!("RSA key: {e}")))?
        .size();
    if signature.len() != modulus_len {
        return Err(SignatureError::Malformed(format!(
            "RSA signature is {} bytes, the key's modulus {modulus_len}",
            signature.len()
        )));
    }
    let verifies = |algorithm: &'static ring_signature::RsaParameters| {
        UnparsedPublicKey::new(algorithm, public_key)
            .verify(message, signature)
            .is_ok()
    };
    let algorithm = if verifies(&ring_signature::RSA_PKCS1_2048_8192_SHA256) {
        SignatureAlgorithm::RsaPkcs1Sha256
    } else if verifies(&ring_signature::RSA_PSS_2048_8192_SHA256) {
        SignatureAlgorithm::RsaPssSha256
    } else {
        return Err(SignatureError::Mismatch);
    };
    Ok(VerifiedSignature {
        algorithm,
        signature: signature.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePublicKey;
    use sha2::{Digest, Sha256};
    use signature::Signer;

    fn p256_pair() -> (p256::ecdsa::SigningKey, Vec<u8>) {
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        (key, spki)
    }

    #[test]
    fn a_der_ecdsa_signature_verifies_and_stays_der() {
        let (key, spki) = p256_pair();
        let sig: p256::ecdsa::Signature = key.sign(b"hello");
        let der = sig.to_der().as_bytes().to_vec();
        let verified = verify_sha256_signature(&spki, b"hello", &der).unwrap();
        assert_eq!(verified.algorithm, SignatureAlgorithm::EcdsaSha256);
        assert_eq!(verified.signature, der);
    }

    #[test]
    fn a_raw_ecdsa_signature_is_normalised_to_der() {
        let (key, spki) = p256_pair();
        let sig: p256::ecdsa::Signature = key.sign(b"hello");
        let raw = sig.to_bytes().to_vec();
        let verified = verify_sha256_signature(&spki, b"hello", &raw).unwrap();
        assert_eq!(verified.signature, sig.to_der().as_bytes().to_vec());
    }

    #[test]
    fn a_der_signature_with_redundant_leading_zeros_is_normalised() {
        let (key, spki) = p256_pair();
        let sig: p256::ecdsa::Signature = key.sign(b"hello");
        let raw = sig.to_bytes();
        let integer = |half: &[u8]| [&[0x02, 34, 0, 0][..], half].concat();
        let body = [integer(&raw[..32]), integer(&raw[32..])].concat();
        let sloppy = [&[0x30, body.len() as u8][..], &body].concat();
        assert!(p256::ecdsa::Signature::from_der(&sloppy).is_err());
        let verified = verify_sha256_signature(&spki, b"hello", &sloppy).unwrap();
        assert_eq!(verified.signature, sig.to_der().as_bytes().to_vec());
    }

    #[test]
    fn a_signature_over_other_bytes_is_a_mismatch() {
        let (key, spki) = p256_pair();
        let sig: p256::ecdsa::Signature = key.sign(b"hello");
        let err = verify_sha256_signature(&spki, b"hellO", &sig.to_bytes()).unwrap_err();
        assert!(matches!(err, SignatureError::Mismatch), "{err:?}");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let (_, spki) = p256_pair();
        let err = verify_sha256_signature(&spki, b"x", &[1, 2, 3]).unwrap_err();
        assert!(matches!(err, SignatureError::Malformed(_)), "{err:?}");
        let err = verify_sha256_signature(b"not a key", b"x", &[1, 2, 3]).unwrap_err();
        assert!(matches!(err, SignatureError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn p384_keys_sign_sha256_digests() {
        let key = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let digest = Sha256::digest(b"doc");
        let sig: p384::ecdsa::Signature =
            signature::hazmat::PrehashSigner::sign_prehash(&key, &digest).unwrap();
        let verified = verify_sha256_signature(spki.as_bytes(), b"doc", &sig.to_bytes()).unwrap();
        assert_eq!(verified.algorithm, SignatureAlgorithm::EcdsaSha256);
    }

    proptest::proptest! {
        #[test]
        fn random_signatures_never_panic(sig in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let (_, spki) = p256_pair();
            let _ = verify_sha256_signature(&spki, b"m", &sig);
        }
    }
}
