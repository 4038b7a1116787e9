//! CMS structures for PAdES: the SignedAttributes a device signs, and the SignedData spliced into a PDF.
//!
//! Signing is deferred: at preparation the server builds the SignedAttributes for a document's
//! digest and keeps their DER; the device signs those exact bytes; at finish the SignedData is
//! assembled around the *stored* bytes, re-tagged `[0] IMPLICIT` but never re-encoded, so the
//! signature stays valid whatever an encoder would do differently. That is why the SignedData is
//! laid out here by hand from DER parts instead of through the `cms` crate's builder. The
//! attributes are the PAdES baseline set: contentType, messageDigest and signingCertificateV2;
//! the signing time lives in the PDF signature dictionary's `/M`, not in a signingTime attribute.

use const_oid::db::rfc5911::{
    ID_AA_SIGNING_CERTIFICATE_V_2, ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA,
};
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ID_MGF_1, ID_RSASSA_PSS, ID_SHA_256, SHA_256_WITH_RSA_ENCRYPTION,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

pub use crate::verify::SignatureAlgorithm;

/// Why CMS structures could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    /// A certificate did not decode as DER X.509.
    #[error("certificate {index} is not a DER X.509 certificate: {reason}")]
    Certificate {
        /// 0 for the signer's certificate, 1.. for the chain.
        index: usize,
        /// The decoder's complaint.
        reason: String,
    },
    /// The stored SignedAttributes are not a DER `SET OF Attribute`.
    #[error("signed attributes are not a DER SET OF Attribute: {0}")]
    SignedAttributes(String),
    /// The private key could not be read or does not belong to the certificate.
    #[error("private key: {0}")]
    Key(String),
    /// DER encoding failed (only for absurd sizes).
    #[error("DER encoding: {0}")]
    Encoding(#[from] der::Error),
}

/// DER of the SignedAttributes as a `SET OF` (tag 0x31): exactly the bytes the device signs.
///
/// Holds contentType = id-data, messageDigest = `message_digest` (SHA-256 of the PDF's byte
/// ranges) and signingCertificateV2 with the SHA-256 of the signer's certificate (the hash
/// algorithm is omitted because SHA-256 is its DEFAULT). No signingTime: PAdES uses `/M`.
pub fn signed_attributes_der(
    message_digest: &[u8; 32],
    signer_certificate_der: &[u8],
) -> Result<Vec<u8>, CmsError> {
    parse_certificate(signer_certificate_der, 0)?;
    let content_type = attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?;
    let digest = attribute(
        ID_MESSAGE_DIGEST,
        Any::encode_from(&OctetString::new(message_digest.to_vec())?)?,
    )?;
    // SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2 }
    // ESSCertIDv2 ::= SEQUENCE { certHash OCTET STRING }   (hashAlgorithm DEFAULT sha256)
    let cert_hash = Sha256::digest(signer_certificate_der);
    let ess_cert_id = tlv(0x30, &tlv(0x04, &cert_hash));
    let signing_certificate = tlv(0x30, &tlv(0x30, &ess_cert_id));
    let signing_certificate = attribute(
        ID_AA_SIGNING_CERTIFICATE_V_2,
        Any::from_der(&signing_certificate)?,
    )?;
    let set = SetOfVec::try_from(vec![content_type, digest, signing_certificate])?;
    Ok(set.to_der()?)
}

/// ContentInfo { SignedData } DER for a detached PAdES signature.
///
/// `digestAlgorithms` is {sha256}; `certificates` holds the signer's certificate and then
/// `chain_der`; the single SignerInfo names the signer by issuer and serial number, carries
/// `signed_attributes_der` verbatim re-tagged `[0] IMPLICIT`, the `signatureAlgorithm` for
/// `algorithm` and `signature` as given (ECDSA in DER, as [`crate::verify`] normalises it).
pub fn signed_data_der(
    signed_attributes_der: &[u8],
    signature: &[u8],
    algorithm: SignatureAlgorithm,
    signer_certificate_der: &[u8],
    chain_der: &[&[u8]],
) -> Result<Vec<u8>, CmsError> {
    let signer = parse_certificate(signer_certificate_der, 0)?;
    for (index, der) in chain_der.iter().enumerate() {
        parse_certificate(der, index + 1)?;
    }
    check_signed_attributes(signed_attributes_der)?;

    let sid = cms::cert::IssuerAndSerialNumber {
        issuer: signer.tbs_certificate.issuer.clone(),
        serial_number: signer.tbs_certificate.serial_number.clone(),
    }
    .to_der()?;
    let digest_algorithm = algorithm_identifier(ID_SHA_256, None);
    let mut retagged = signed_attributes_der.to_vec();
    retagged[0] = 0xA0; // SET OF (0x31) -> [0] IMPLICIT, the content octets untouched

    let signer_info = tlv(
        0x30,
        &[
            tlv(0x02, &[1]), // CMSVersion 1: sid is issuerAndSerialNumber
            sid,
            digest_algorithm.clone(),
            retagged,
            signature_algorithm_der(algorithm),
            tlv(0x04, signature),
        ]
        .concat(),
    );

    let mut certificates = signer_certificate_der.to_vec();
    for der in chain_der {
        certificates.extend_from_slice(der);
    }
    let signed_data = tlv(
        0x30,
        &[
            tlv(0x02, &[1]),
            tlv(0x31, &digest_algorithm),
            tlv(0x30, &oid_der(ID_DATA)), // detached: no eContent
            tlv(0xA0, &certificates),
            tlv(0x31, &signer_info),
        ]
        .concat(),
    );
    Ok(tlv(
        0x30,
        &[oid_der(ID_SIGNED_DATA), tlv(0xA0, &signed_data)].concat(),
    ))
}

/// Builds SignedAttributes for `message_digest`, signs them with a server-held P-256 key
/// (PKCS#8 DER) and returns the ContentInfo { SignedData } DER.
///
/// Fails with [`CmsError::Key`] when the key is not P-256 or does not match the certificate.
pub fn sign_with_key(
    message_digest: &[u8; 32],
    private_key_pkcs8_der: &[u8],
    signer_certificate_der: &[u8],
    chain_der: &[&[u8]],
) -> Result<Vec<u8>, CmsError> {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    let rng = ring::rand::SystemRandom::new();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, private_key_pkcs8_der, &rng)
            .map_err(|e| CmsError::Key(format!("not a PKCS#8 P-256 key: {e}")))?;
    // A key that is not the certificate's would produce a signature no validator accepts:
    // compare the public keys (cheap) rather than verify a signature (two scalar multiplications).
    let spki = crate::verify::certificate_spki_der(signer_certificate_der)
        .map_err(|e| CmsError::Key(format!("signer certificate: {e}")))?;
    let certified_key = crate::der_bounds::decode::<spki::SubjectPublicKeyInfoRef>(&spki)
        .map_err(|e| CmsError::Key(format!("signer certificate key: {e}")))?
        .subject_public_key
        .raw_bytes()
        .to_vec();
    if certified_key != key.public_key().as_ref() {
        return Err(CmsError::Key(
            "key does not match the certificate".to_owned(),
        ));
    }
    let attributes = signed_attributes_der(message_digest, signer_certificate_der)?;
    let signature = key
        .sign(&rng, &attributes)
        .map_err(|e| CmsError::Key(format!("signing failed: {e}")))?;
    signed_data_der(
        &attributes,
        signature.as_ref(),
        SignatureAlgorithm::EcdsaSha256,
        signer_certificate_der,
        chain_der,
    )
}

/// The signature value of the single SignerInfo in a DER ContentInfo { SignedData }: what a
/// signature timestamp covers (RFC 3161 Appendix A hashes these content octets).
pub fn signature_value(signed_data_der: &[u8]) -> Result<Vec<u8>, CmsError> {
    let info = crate::der_bounds::decode::<cms::content_info::ContentInfo>(signed_data_der)?;
    let signed: cms::signed_data::SignedData = info.content.decode_as()?;
    match signed.signer_infos.0.as_slice() {
        [signer] => Ok(signer.signature.as_bytes().to_vec()),
        _ => Err(CmsError::SignedAttributes(
            "expected exactly one SignerInfo".into(),
        )),
    }
}

/// The certificates a DER ContentInfo { SignedData } carries, as DER (in DER SET order, not
/// necessarily signer first): a
/// signature's chain, or a timestamp token's TSA certificate and chain. What a PAdES B-LT
/// collector puts into the DSS (with revocation data for each).
pub fn certificates(signed_data_der: &[u8]) -> Result<Vec<Vec<u8>>, CmsError> {
    use cms::cert::CertificateChoices;
    let info = crate::der_bounds::decode::<cms::content_info::ContentInfo>(signed_data_der)?;
    let signed: cms::signed_data::SignedData = info.content.decode_as()?;
    let mut out = Vec::new();
    for choice in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let CertificateChoices::Certificate(certificate) = choice {
            out.push(certificate.to_der()?);
        }
    }
    Ok(out)
}

/// The signature timestamp tokens (unsigned attribute id-aa-signatureTimeStampToken) of every
/// SignerInfo in a DER ContentInfo { SignedData }, as DER ContentInfos: where a B-T signature's
/// TSA certificates are found ([`certificates`] of each token).
pub fn signature_timestamp_tokens(signed_data_der: &[u8]) -> Result<Vec<Vec<u8>>, CmsError> {
    let info = crate::der_bounds::decode::<cms::content_info::ContentInfo>(signed_data_der)?;
    let signed: cms::signed_data::SignedData = info.content.decode_as()?;
    let mut out = Vec::new();
    for signer in signed.signer_infos.0.iter() {
        for attribute in signer.unsigned_attrs.iter().flat_map(|a| a.iter()) {
            if attribute.oid == crate::tsp::ID_AA_SIGNATURE_TIME_STAMP_TOKEN {
                for value in attribute.values.iter() {
                    out.push(value.to_der()?);
                }
            }
        }
    }
    Ok(out)
}

/// Adds `token_der` (an RFC 3161 timestamp token over [`signature_value`]) as the unsigned
/// attribute id-aa-signatureTimeStampToken of the single SignerInfo, for PAdES B-T.
///
/// The bytes are spliced, not re-encoded: the SignerInfo (which must not have unsigned attributes
/// yet) gets `[1] IMPLICIT SET OF Attribute` appended and the lengths of its enclosing structures
/// are rewritten; every other byte, the signed attributes included, stays as it was.
pub fn add_signature_timestamp(
    signed_data_der: &[u8],
    token_der: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let malformed = |what: &str| CmsError::SignedAttributes(format!("not a SignedData: {what}"));
    crate::der_bounds::decode::<cms::content_info::ContentInfo>(token_der)
        .map_err(|e| CmsError::SignedAttributes(format!("the token is not a ContentInfo: {e}")))?;
    // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT SignedData }
    let outer = Tlv::read(signed_data_der).ok_or_else(|| malformed("ContentInfo"))?;
    let content_type = Tlv::read(outer.content).ok_or_else(|| malformed("contentType"))?;
    let explicit = Tlv::read(&outer.content[content_type.len..]).ok_or_else(|| malformed("[0]"))?;
    let signed = Tlv::read(explicit.content).ok_or_else(|| malformed("SignedData"))?;
    // The last field of SignedData is signerInfos, a SET with one SignerInfo.
    let mut offset = 0;
    let mut last = None;
    while offset < signed.content.len() {
        let field = Tlv::read(&signed.content[offset..]).ok_or_else(|| malformed("field"))?;
        last = Some((offset, field.len));
        offset += field.len;
    }
    let (set_offset, set_len) = last.ok_or_else(|| malformed("empty"))?;
    let set = Tlv::read(&signed.content[set_offset..]).ok_or_else(|| malformed("signerInfos"))?;
    if set.tag != 0x31 {
        return Err(malformed("signerInfos is not a SET"));
    }
    let signer = Tlv::read(set.content).ok_or_else(|| malformed("SignerInfo"))?;
    if signer.len != set.content.len() {
        return Err(CmsError::SignedAttributes(
            "expected exactly one SignerInfo".into(),
        ));
    }
    let mut field_offset = 0;
    while field_offset < signer.content.len() {
        let field = Tlv::read(&signer.content[field_offset..])
            .ok_or_else(|| malformed("SignerInfo field"))?;
        if field.tag == 0xA1 {
            return Err(CmsError::SignedAttributes(
                "the SignerInfo has unsigned attributes already".into(),
            ));
        }
        field_offset += field.len;
    }
    let attribute = tlv(
        0x30,
        &[
            oid_der(crate::tsp::ID_AA_SIGNATURE_TIME_STAMP_TOKEN),
            tlv(0x31, token_der),
        ]
        .concat(),
    );
    let signer_info = tlv(0x30, &[signer.content, &tlv(0xA1, &attribute)].concat());
    let signed_content = [
        &signed.content[..set_offset],
        &tlv(0x31, &signer_info),
        &signed.content[set_offset + set_len..],
    ]
    .concat();
    let explicit_content = tlv(0x30, &signed_content);
    Ok(tlv(
        0x30,
        &[
            &outer.content[..content_type.len],
            &tlv(0xA0, &explicit_content),
        ]
        .concat(),
    ))
}

/// One DER TLV read from the front of a buffer.
struct Tlv<'a> {
    tag: u8,
    /// The content octets.
    content: &'a [u8],
    /// Header plus content.
    len: usize,
}

impl<'a> Tlv<'a> {
    /// `None` for anything but a single-byte tag with a definite length that fits the buffer.
    fn read(bytes: &'a [u8]) -> Option<Self> {
        let tag = *bytes.first()?;
        let first = *bytes.get(1)? as usize;
        let (content_len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let count = first & 0x7f;
            if count == 0 || count > 4 {
                return None;
            }
            let mut len = 0usize;
            for byte in bytes.get(2..2 + count)? {
                len = (len << 8) | *byte as usize;
            }
            (len, 2 + count)
        };
        let end = header.checked_add(content_len)?;
        Some(Self {
            tag,
            content: bytes.get(header..end)?,
            len: end,
        })
    }
}

/// The DER `AlgorithmIdentifier` a SignerInfo's `signatureAlgorithm` carries for `algorithm`.
pub fn signature_algorithm_der(algorithm: SignatureAlgorithm) -> Vec<u8> {
    match algorithm {
        SignatureAlgorithm::EcdsaSha256 => algorithm_identifier(ECDSA_WITH_SHA_256, None),
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            algorithm_identifier(SHA_256_WITH_RSA_ENCRYPTION, Some(&[0x05, 0x00]))
        }
        SignatureAlgorithm::RsaPssSha256 => {
            // RSASSA-PSS-params { hashAlgorithm [0] sha256, maskGenAlgorithm [1] mgf1(sha256),
            //                     saltLength [2] 32 }   (trailerField keeps its DEFAULT)
            let sha256 = algorithm_identifier(ID_SHA_256, None);
            let mgf1 = algorithm_identifier(ID_MGF_1, Some(&sha256));
            let params = tlv(
                0x30,
                &[
                    tlv(0xA0, &sha256),
                    tlv(0xA1, &mgf1),
                    tlv(0xA2, &tlv(0x02, &[32])),
                ]
                .concat(),
            );
            algorithm_identifier(ID_RSASSA_PSS, Some(&params))
        }
    }
}

fn parse_certificate(der: &[u8], index: usize) -> Result<Certificate, CmsError> {
    crate::der_bounds::decode::<Certificate>(der).map_err(|e| CmsError::Certificate {
        index,
        reason: e.to_string(),
    })
}

/// Checks that the stored bytes are one DER `SET OF Attribute` with a messageDigest, so a
/// mix-up (say, the digest itself stored instead) fails here rather than in a validator.
fn check_signed_attributes(der: &[u8]) -> Result<(), CmsError> {
    let attributes = crate::der_bounds::decode::<SetOfVec<Attribute>>(der)
        .map_err(|e| CmsError::SignedAttributes(e.to_string()))?;
    if !attributes.iter().any(|a| a.oid == ID_MESSAGE_DIGEST) {
        return Err(CmsError::SignedAttributes(
            "no messageDigest attribute".into(),
        ));
    }
    Ok(())
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, CmsError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

pub(crate) fn oid_der(oid: ObjectIdentifier) -> Vec<u8> {
    tlv(0x06, oid.as_bytes())
}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`.
pub(crate) fn algorithm_identifier(
    oid: ObjectIdentifier,
    parameters_der: Option<&[u8]>,
) -> Vec<u8> {
    let mut content = oid_der(oid);
    if let Some(parameters) = parameters_der {
        content.extend_from_slice(parameters);
    }
    tlv(0x30, &content)
}

/// One DER tag-length-value with a definite length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throw-away self-signed P-256 certificate and its PKCS#8 key, made with rcgen.
    fn self_signed() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["signer.test".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }

    #[test]
    fn signed_attributes_are_a_der_set_with_the_three_pades_attributes() {
        let (cert, _) = self_signed();
        let der = signed_attributes_der(&[7; 32], &cert).unwrap();
        assert_eq!(der[0], 0x31);
        let set = SetOfVec::<Attribute>::from_der(&der).unwrap();
        let oids: Vec<_> = set.iter().map(|a| a.oid).collect();
        assert!(oids.contains(&ID_CONTENT_TYPE));
        assert!(oids.contains(&ID_MESSAGE_DIGEST));
        assert!(oids.contains(&ID_AA_SIGNING_CERTIFICATE_V_2));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn signed_data_carries_the_stored_attributes_verbatim() {
        let (cert, key) = self_signed();
        let cms_der = sign_with_key(&[9; 32], &key, &cert, &[]).unwrap();
        let info = cms::content_info::ContentInfo::from_der(&cms_der).unwrap();
        assert_eq!(info.content_type, ID_SIGNED_DATA);
        let signed: cms::signed_data::SignedData = info.content.decode_as().unwrap();
        let signer = signed.signer_infos.0.get(0).unwrap();
        let attrs = signer.signed_attrs.as_ref().unwrap().to_der().unwrap();
        assert_eq!(attrs, signed_attributes_der(&[9; 32], &cert).unwrap());
        assert_eq!(signer.signature_algorithm.oid, ECDSA_WITH_SHA_256);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let (cert, _) = self_signed();
        let (_, other_key) = self_signed();
        let err = sign_with_key(&[1; 32], &other_key, &cert, &[]).unwrap_err();
        assert!(matches!(err, CmsError::Key(_)), "{err:?}");
    }

    #[test]
    fn bytes_that_are_not_signed_attributes_are_refused() {
        let (cert, _) = self_signed();
        let err = signed_data_der(
            &[0x31, 0x00],
            &[1],
            SignatureAlgorithm::EcdsaSha256,
            &cert,
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, CmsError::SignedAttributes(_)), "{err:?}");
    }

    proptest::proptest! {
        #[test]
        fn splicing_a_timestamp_into_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)
        ) {
            let (cert, key) = self_signed();
            let token = sign_with_key(&[3; 32], &key, &cert, &[]).unwrap();
            let _ = add_signature_timestamp(&bytes, &token);
            let _ = signature_value(&bytes);
        }
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        assert_eq!(tlv(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(tlv(0x04, &[0; 0x1234])[..4], [0x04, 0x82, 0x12, 0x34]);
    }
}
