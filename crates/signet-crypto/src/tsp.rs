//! RFC 3161 timestamps: requests, tokens issued by Signet's own timestamp authority, and the
//! verification of tokens from any TSA (Signet's or an external one).
//!
//! A token is a CMS SignedData over a DER `TSTInfo` (the imprint, the time, a serial), signed by a
//! key whose certificate carries the critical extended key usage timeStamping. The SignedData is
//! laid out by hand from DER parts, like [`crate::cms`], because the TSA is on a hot path (one
//! P-256 signature and a few hundred bytes of DER per token) and everything that does not depend
//! on the request — the signer identifier, the ESS signing-certificate-v2 attribute (RFC 5816),
//! the certificate — is encoded once when the TSA is built. Request parsing takes untrusted bytes:
//! it is bounded in size, never panics, and maps every refusal onto an RFC 3161 `PKIFailureInfo`
//! so the caller can answer with a `TimeStampResp` rather than an HTTP error.

use std::sync::atomic::{AtomicU64, Ordering};

use const_oid::db::rfc5280::ID_KP_TIME_STAMPING;
use const_oid::db::rfc5911::{
    ID_AA_SIGNING_CERTIFICATE, ID_AA_SIGNING_CERTIFICATE_V_2, ID_CONTENT_TYPE, ID_MESSAGE_DIGEST,
    ID_SIGNED_DATA,
};
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_EC_PUBLIC_KEY, ID_SHA_256, ID_SHA_384, ID_SHA_512,
    RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1, SHA_256_WITH_RSA_ENCRYPTION,
    SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
};
use der::asn1::{Any, BitString, GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Tagged};
use ring::signature::{self as ring_signature, EcdsaKeyPair, UnparsedPublicKey};
use time::OffsetDateTime;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::Certificate;
use x509_tsp::{Accuracy, MessageImprint, TspVersion};

use crate::cms::{algorithm_identifier, oid_der, tlv};
pub use crate::oid::PolicyId;

/// `id-ct-TSTInfo` (RFC 3161 §2.4.2): the eContentType of a timestamp token.
pub const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// `id-aa-signatureTimeStampToken` (RFC 3161 Appendix A): the unsigned attribute that carries a
/// token over a SignerInfo's signature value (PAdES B-T).
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// Requests are about 60 to 200 bytes; anything beyond this is not a timestamp request.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Responses and tokens carry certificates; this bounds what a verifier reads from a TSA.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How far a certificate chain is followed from the TSA's certificate to a trust anchor.
const MAX_CHAIN: usize = 4;

/// A digest algorithm a message imprint may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The algorithm's OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha256 => ID_SHA_256,
            Self::Sha384 => ID_SHA_384,
            Self::Sha512 => ID_SHA_512,
        }
    }

    /// The algorithm for `oid`, if Signet accepts it (SHA-1 is refused: collisions are practical).
    pub fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [Self::Sha256, Self::Sha384, Self::Sha512]
            .into_iter()
            .find(|algorithm| algorithm.oid() == oid)
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        self.ring().output_len()
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        ring::digest::digest(self.ring(), data).as_ref().to_vec()
    }

    fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            Self::Sha256 => &ring::digest::SHA256,
            Self::Sha384 => &ring::digest::SHA384,
            Self::Sha512 => &ring::digest::SHA512,
        }
    }
}

/// Why a timestamp request was refused, as RFC 3161's `PKIFailureInfo` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureInfo {
    /// badAlg: unrecognized or unsupported hash algorithm.
    BadAlg,
    /// badRequest: transaction not permitted or supported.
    BadRequest,
    /// badDataFormat: the data submitted has the wrong format.
    BadDataFormat,
    /// unacceptedPolicy: the requested TSA policy is not supported.
    UnacceptedPolicy,
    /// unacceptedExtension: the requested extension is not supported.
    UnacceptedExtension,
    /// systemFailure: the request cannot be handled due to system failure.
    SystemFailure,
}

impl FailureInfo {
    /// The bit's number in `PKIFailureInfo` (RFC 3161 §2.4.2). Encoded here rather than with
    /// cmpv2's flag set, whose 0.2 values are masks where numbers were meant.
    fn bit(self) -> usize {
        match self {
            Self::BadAlg => 0,
            Self::BadRequest => 2,
            Self::BadDataFormat => 5,
            Self::UnacceptedPolicy => 15,
            Self::UnacceptedExtension => 16,
            Self::SystemFailure => 25,
        }
    }

    /// `PKIFailureInfo` as a DER named BIT STRING with only this bit set.
    fn bit_string(self) -> Result<BitString, der::Error> {
        let bit = self.bit();
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        BitString::new((7 - bit % 8) as u8, bytes)
    }
}

/// `PKIStatusInfo` (RFC 3161 §2.4.2), decoded leniently: any failure bits, any status text.
#[derive(Clone, Debug, der::Sequence)]
struct StatusInfo {
    status: u32,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// `TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }`.
#[derive(Clone, Debug, der::Sequence)]
struct TimeStampResponse {
    status: StatusInfo,
    #[asn1(optional = "true")]
    token: Option<cms::content_info::ContentInfo>,
}

/// `TimeStampReq` (RFC 3161 §2.4.1) as `x509_tsp` has it, but with a [`PolicyId`] that takes
/// arcs beyond 32 bits (a `2.25` UUID policy, Signet's own among them).
#[derive(Clone, Debug, der::Sequence)]
struct TimeStampReq {
    version: TspVersion,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    req_policy: Option<PolicyId>,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(default = "Default::default")]
    cert_req: bool,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// `TSTInfo` (RFC 3161 §2.4.2) as `x509_tsp` has it, with a [`PolicyId`] policy.
#[derive(Clone, Debug, der::Sequence)]
struct TstInfo {
    version: TspVersion,
    policy: PolicyId,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: GeneralizedTime,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// A timestamp request that was refused: the failure bit and a sentence for `statusString`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timestamp request refused ({info:?}): {reason}")]
pub struct Rejection {
    /// The RFC 3161 failure bit.
    pub info: FailureInfo,
    /// What was wrong, for the status string and logs.
    pub reason: String,
}

impl Rejection {
    fn new(info: FailureInfo, reason: impl Into<String>) -> Self {
        Self {
            info,
            reason: reason.into(),
        }
    }
}

/// A parsed, acceptable `TimeStampReq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeStampRequest {
    /// The imprint's hash algorithm.
    pub hash_algorithm: HashAlgorithm,
    /// The hashed message (exactly the algorithm's output length).
    pub hashed_message: Vec<u8>,
    /// The policy the requester asks for, if any.
    pub policy: Option<PolicyId>,
    /// The nonce as the INTEGER's content octets, echoed verbatim in the token.
    pub nonce: Option<Vec<u8>>,
    /// Whether the TSA's certificate must be in the token.
    pub cert_req: bool,
}

impl TimeStampRequest {
    /// A request for `hashed_message`, with a nonce and asking for the certificate.
    pub fn new(hash_algorithm: HashAlgorithm, hashed_message: Vec<u8>, nonce: Option<u64>) -> Self {
        Self {
            hash_algorithm,
            hashed_message,
            policy: None,
            nonce: nonce.map(|n| positive_integer_bytes(&n.to_be_bytes())),
            cert_req: true,
        }
    }

    /// Parses a DER `TimeStampReq` from untrusted bytes (bounded, never panics).
    pub fn from_der(der: &[u8]) -> Result<Self, Rejection> {
        if der.len() > MAX_REQUEST_BYTES {
            return Err(Rejection::new(
                FailureInfo::BadDataFormat,
                format!("a timestamp request is at most {MAX_REQUEST_BYTES} bytes"),
            ));
        }
        let request = crate::der_bounds::decode::<TimeStampReq>(der).map_err(|e| {
            Rejection::new(
                FailureInfo::BadDataFormat,
                format!("not a DER TimeStampReq: {e}"),
            )
        })?;
        if request.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err(Rejection::new(
                FailureInfo::UnacceptedExtension,
                "request extensions are not supported",
            ));
        }
        let imprint = &request.message_imprint;
        let hash_algorithm =
            HashAlgorithm::from_oid(imprint.hash_algorithm.oid).ok_or_else(|| {
                Rejection::new(
                    FailureInfo::BadAlg,
                    format!(
                        "hash algorithm {} is not accepted (SHA-256, SHA-384 or SHA-512)",
                        imprint.hash_algorithm.oid
                    ),
                )
            })?;
        // Absent and NULL parameters are both seen in the wild for SHA-2.
        if let Some(parameters) = &imprint.hash_algorithm.parameters {
            if !parameters.is_null() {
                return Err(Rejection::new(
                    FailureInfo::BadDataFormat,
                    "hash algorithm parameters must be absent or NULL",
                ));
            }
        }
        let hashed_message = imprint.hashed_message.as_bytes().to_vec();
        if hashed_message.len() != hash_algorithm.output_len() {
            return Err(Rejection::new(
                FailureInfo::BadDataFormat,
                format!(
                    "the hashed message is {} bytes; {hash_algorithm:?} gives {}",
                    hashed_message.len(),
                    hash_algorithm.output_len()
                ),
            ));
        }
        Ok(Self {
            hash_algorithm,
            hashed_message,
            policy: request.req_policy,
            nonce: request.nonce.map(|n| n.as_bytes().to_vec()),
            cert_req: request.cert_req,
        })
    }

    /// The DER `TimeStampReq`.
    pub fn to_der(&self) -> Result<Vec<u8>, TspError> {
        let request = TimeStampReq {
            version: TspVersion::V1,
            message_imprint: self.message_imprint()?,
            req_policy: self.policy.clone(),
            nonce: self.nonce.as_deref().map(Int::new).transpose()?,
            cert_req: self.cert_req,
            extensions: None,
        };
        Ok(request.to_der()?)
    }

    fn message_imprint(&self) -> Result<MessageImprint, TspError> {
        Ok(MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier {
                oid: self.hash_algorithm.oid(),
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(self.hashed_message.clone())?,
        })
    }
}

/// Why a token could not be issued, or a response not verified.
#[derive(Debug, thiserror::Error)]
pub enum TspError {
    /// The TSA's certificate or key cannot serve as a TSA.
    #[error("unusable TSA certificate or key: {0}")]
    Setup(String),
    /// DER encoding failed (only for absurd sizes).
    #[error("DER encoding: {0}")]
    Encoding(#[from] der::Error),
    /// Signing failed.
    #[error("signing failed")]
    Signing,
    /// The TSA answered with a status other than granted.
    #[error("the TSA refused the request: {0}")]
    Refused(String),
    /// The response or token is not what RFC 3161 describes.
    #[error("malformed timestamp response: {0}")]
    Malformed(String),
    /// The token is well-formed but does not prove what was asked.
    #[error("timestamp token does not verify: {0}")]
    Invalid(String),
}

/// Signet's timestamp authority: a P-256 key, its certificate (EKU timeStamping, critical),
/// a policy, an accuracy and a serial counter.
///
/// Serials are a random 63-bit prefix chosen when the TSA is built followed by a 64-bit counter,
/// so they are unique across restarts and replicas without any shared state.
pub struct TimeStampAuthority {
    key: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    certificate_der: Vec<u8>,
    /// `[0] IMPLICIT CertificateSet` holding the certificate, for requests with certReq.
    certificates_field: Vec<u8>,
    /// The SignerInfo's `sid`: IssuerAndSerialNumber.
    sid: Vec<u8>,
    /// The signingCertificateV2 attribute, fixed for the certificate.
    signing_certificate: Attribute,
    /// `tsa [0] EXPLICIT GeneralName` (directoryName of the certificate's subject).
    tsa_name: GeneralName,
    policy: PolicyId,
    accuracy_seconds: u64,
    serial_prefix: [u8; 8],
    counter: AtomicU64,
}

impl std::fmt::Debug for TimeStampAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeStampAuthority")
            .field("policy", &self.policy)
            .field("private_key", &"[elided]")
            .finish_non_exhaustive()
    }
}

/// What [`TimeStampAuthority::respond`] produced.
#[derive(Debug, Clone)]
pub struct TsaReply {
    /// The DER `TimeStampResp` to send back.
    pub der: Vec<u8>,
    /// `None` when a token was granted, else why not.
    pub rejection: Option<Rejection>,
}

impl TimeStampAuthority {
    /// A TSA from its certificate DER and PKCS#8 P-256 private key DER, answering under `policy`
    /// with the given accuracy. The certificate must carry the critical extended key usage
    /// timeStamping (alone) and certify this key.
    pub fn new(
        certificate_der: &[u8],
        private_key_pkcs8_der: &[u8],
        policy: impl Into<PolicyId>,
        accuracy_seconds: u64,
    ) -> Result<Self, TspError> {
        let policy = policy.into();
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ring_signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            private_key_pkcs8_der,
            &rng,
        )
        .map_err(|e| TspError::Setup(format!("not a PKCS#8 P-256 key: {e}")))?;
        let certificate = crate::der_bounds::decode::<Certificate>(certificate_der)
            .map_err(|e| TspError::Setup(format!("not a DER certificate: {e}")))?;
        let tbs = &certificate.tbs_certificate;
        if tbs.subject_public_key_info.subject_public_key.raw_bytes()
            != ring::signature::KeyPair::public_key(&key).as_ref()
        {
            return Err(TspError::Setup(
                "the key does not match the certificate".into(),
            ));
        }
        check_time_stamping_eku(certificate_der).map_err(TspError::Setup)?;

        let sid = cms::cert::IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }
        .to_der()?;
        // SigningCertificateV2 { certs SEQUENCE OF ESSCertIDv2 { certHash, issuerSerial } }, the
        // hash algorithm omitted because SHA-256 is its DEFAULT (RFC 5816, RFC 5035).
        let issuer_serial = tlv(
            0x30,
            &[
                tlv(0x30, &tlv(0xA4, &tbs.issuer.to_der()?)),
                tbs.serial_number.to_der()?,
            ]
            .concat(),
        );
        let cert_hash = HashAlgorithm::Sha256.digest(certificate_der);
        let ess_cert_id = tlv(0x30, &[tlv(0x04, &cert_hash), issuer_serial].concat());
        let signing_certificate = Attribute {
            oid: ID_AA_SIGNING_CERTIFICATE_V_2,
            values: SetOfVec::try_from(vec![Any::from_der(&tlv(0x30, &tlv(0x30, &ess_cert_id)))?])?,
        };
        let mut serial_prefix = [0u8; 8];
        ring::rand::SecureRandom::fill(&rng, &mut serial_prefix).map_err(|_| TspError::Signing)?;
        serial_prefix[0] &= 0x7f;
        serial_prefix[0] |= 0x01 << 6; // never a leading zero byte: every serial is 16 bytes
        Ok(Self {
            key,
            rng,
            certificates_field: tlv(0xA0, certificate_der),
            certificate_der: certificate_der.to_vec(),
            sid,
            signing_certificate,
            tsa_name: GeneralName::DirectoryName(tbs.subject.clone()),
            policy,
            accuracy_seconds,
            serial_prefix,
            counter: AtomicU64::new(0),
        })
    }

    /// The TSA's certificate DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The policy every token is issued under.
    pub fn policy(&self) -> &PolicyId {
        &self.policy
    }

    /// Answers a DER `TimeStampReq` with a DER `TimeStampResp`: granted with a token, or a
    /// rejection with its failure info (RFC 3161 §2.4.2). Never panics on any input.
    pub fn respond(&self, request_der: &[u8], now: OffsetDateTime) -> TsaReply {
        let outcome = TimeStampRequest::from_der(request_der)
            .and_then(|request| self.check_policy(&request).map(|()| request))
            .and_then(|request| {
                self.issue(&request, now).map_err(|e| {
                    Rejection::new(FailureInfo::SystemFailure, format!("issuing failed: {e}"))
                })
            });
        match outcome {
            Ok(token) => match granted_response(&token) {
                Ok(der) => TsaReply {
                    der,
                    rejection: None,
                },
                Err(e) => {
                    let rejection =
                        Rejection::new(FailureInfo::SystemFailure, format!("encoding: {e}"));
                    TsaReply {
                        der: rejection_response(&rejection),
                        rejection: Some(rejection),
                    }
                }
            },
            Err(rejection) => TsaReply {
                der: rejection_response(&rejection),
                rejection: Some(rejection),
            },
        }
    }

    fn check_policy(&self, request: &TimeStampRequest) -> Result<(), Rejection> {
        match &request.policy {
            Some(policy) if *policy != self.policy => Err(Rejection::new(
                FailureInfo::UnacceptedPolicy,
                format!("this TSA issues under policy {}, not {policy}", self.policy),
            )),
            _ => Ok(()),
        }
    }

    /// Issues a token (a DER `ContentInfo` holding the SignedData) for `request` at `now`.
    /// The request's policy is not checked here; [`Self::respond`] does that.
    pub fn issue(
        &self,
        request: &TimeStampRequest,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, TspError> {
        let serial = self.next_serial();
        let seconds = u64::try_from(now.unix_timestamp())
            .map_err(|_| TspError::Setup("the clock is before 1970".into()))?;
        let tst_info = TstInfo {
            version: TspVersion::V1,
            policy: self.policy.clone(),
            message_imprint: request.message_imprint()?,
            serial_number: Int::new(&serial)?,
            gen_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(seconds))?,
            accuracy: Some(Accuracy {
                seconds: Some(self.accuracy_seconds),
                millis: None,
                micros: None,
            }),
            ordering: false,
            nonce: request.nonce.as_deref().map(Int::new).transpose()?,
            tsa: Some(self.tsa_name.clone()),
            extensions: None,
        }
        .to_der()?;

        let content_type = Attribute {
            oid: ID_CONTENT_TYPE,
            values: SetOfVec::try_from(vec![Any::encode_from(&ID_CT_TST_INFO)?])?,
        };
        let message_digest = Attribute {
            oid: ID_MESSAGE_DIGEST,
            values: SetOfVec::try_from(vec![Any::encode_from(&OctetString::new(
                HashAlgorithm::Sha256.digest(&tst_info),
            )?)?])?,
        };
        let attributes = SetOfVec::try_from(vec![
            content_type,
            message_digest,
            self.signing_certificate.clone(),
        ])?
        .to_der()?;
        let signature = self
            .key
            .sign(&self.rng, &attributes)
            .map_err(|_| TspError::Signing)?;
        let mut retagged = attributes;
        retagged[0] = 0xA0; // SET OF -> [0] IMPLICIT, content octets untouched

        let digest_algorithm = algorithm_identifier(ID_SHA_256, None);
        let signer_info = tlv(
            0x30,
            &[
                tlv(0x02, &[1]),
                self.sid.clone(),
                digest_algorithm.clone(),
                retagged,
                algorithm_identifier(ECDSA_WITH_SHA_256, None),
                tlv(0x04, signature.as_ref()),
            ]
            .concat(),
        );
        let encapsulated = tlv(
            0x30,
            &[oid_der(ID_CT_TST_INFO), tlv(0xA0, &tlv(0x04, &tst_info))].concat(),
        );
        let mut signed_data = [
            tlv(0x02, &[3]), // CMSVersion 3: eContentType is not id-data
            tlv(0x31, &digest_algorithm),
            encapsulated,
        ]
        .concat();
        if request.cert_req {
            signed_data.extend_from_slice(&self.certificates_field);
        }
        signed_data.extend_from_slice(&tlv(0x31, &signer_info));
        Ok(tlv(
            0x30,
            &[oid_der(ID_SIGNED_DATA), tlv(0xA0, &tlv(0x30, &signed_data))].concat(),
        ))
    }

    fn next_serial(&self) -> [u8; 16] {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut serial = [0u8; 16];
        serial[..8].copy_from_slice(&self.serial_prefix);
        serial[8..].copy_from_slice(&count.to_be_bytes());
        serial
    }
}

/// `TimeStampResp { status granted, timeStampToken }`.
fn granted_response(token: &[u8]) -> Result<Vec<u8>, der::Error> {
    // PKIStatusInfo { status INTEGER 0 }
    let status = tlv(0x30, &tlv(0x02, &[0]));
    Ok(tlv(0x30, &[status, token.to_vec()].concat()))
}

/// `TimeStampResp { status rejection, statusString, failInfo }` for `rejection`.
pub fn rejection_response(rejection: &Rejection) -> Vec<u8> {
    let response = rejection
        .info
        .bit_string()
        .map(|fail_info| TimeStampResponse {
            status: StatusInfo {
                status: 2, // rejection
                status_string: Some(vec![rejection.reason.clone()]),
                fail_info: Some(fail_info),
            },
            token: None,
        });
    response
        .and_then(|r| r.to_der())
        .unwrap_or_else(|_| tlv(0x30, &tlv(0x30, &tlv(0x02, &[2]))))
}

/// `r` with one leading zero byte when its top bit is set, so a DER INTEGER reads it as positive.
fn positive_integer_bytes(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    let trimmed = &bytes[start..];
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        [&[0u8][..], trimmed].concat()
    } else {
        trimmed.to_vec()
    }
}

/// The certificate's extended key usage must be exactly timeStamping and critical (RFC 3161 §2.3).
fn check_time_stamping_eku(certificate_der: &[u8]) -> Result<(), String> {
    use x509_parser::extensions::ParsedExtension;
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let eku = certificate
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(eku) => Some((ext.critical, eku)),
            _ => None,
        })
        .ok_or("the certificate has no extended key usage")?;
    let (critical, eku) = eku;
    if !critical {
        return Err("the extended key usage is not critical".into());
    }
    let only_time_stamping = eku.time_stamping
        && !eku.any
        && !eku.server_auth
        && !eku.client_auth
        && !eku.code_signing
        && !eku.email_protection
        && !eku.ocsp_signing
        && eku.other.is_empty();
    if !only_time_stamping {
        return Err(format!(
            "the extended key usage must be timeStamping ({ID_KP_TIME_STAMPING}) alone"
        ));
    }
    Ok(())
}

/// What a verified token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTimestamp {
    /// The TSA's time (genTime).
    pub time: OffsetDateTime,
    /// The token's serial number (INTEGER content octets).
    pub serial: Vec<u8>,
    /// The policy it was issued under.
    pub policy: PolicyId,
    /// The TSA certificate that signed it.
    pub tsa_certificate_der: Vec<u8>,
    /// The token itself (DER ContentInfo), ready to embed.
    pub token_der: Vec<u8>,
}

/// What a token must prove and whom to trust.
#[derive(Debug, Clone)]
pub struct Expectation<'a> {
    /// The imprint's algorithm and value the token must carry.
    pub hash_algorithm: HashAlgorithm,
    /// The hashed message.
    pub hashed_message: &'a [u8],
    /// The nonce sent in the request (INTEGER content octets), which the token must echo.
    pub nonce: Option<&'a [u8]>,
    /// The policy the token must carry, if the relying party insists on one.
    pub policy: Option<PolicyId>,
    /// DER certificates trusted as roots for the TSA's chain.
    pub trust_anchors: &'a [&'a [u8]],
    /// Further DER certificates (the TSA's own, intermediates) when the token does not carry them.
    pub extra_certificates: &'a [&'a [u8]],
}

/// Verifies a DER `TimeStampResp` from a TSA against `expected`: status granted, the token's
/// imprint and nonce, its policy, its signature and ESS signing-certificate attribute, and the
/// signer's certificate (critical EKU timeStamping, valid at genTime) chaining to a trust anchor.
pub fn verify_response(
    response_der: &[u8],
    expected: &Expectation<'_>,
) -> Result<VerifiedTimestamp, TspError> {
    if response_der.len() > MAX_RESPONSE_BYTES {
        return Err(TspError::Malformed(format!(
            "the response is more than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    let response = crate::der_bounds::decode::<TimeStampResponse>(response_der)
        .map_err(|e| TspError::Malformed(format!("not a DER TimeStampResp: {e}")))?;
    // 0 granted, 1 grantedWithMods; 2 rejection, 3 waiting, 4 and 5 revocation notices.
    if response.status.status > 1 {
        let text = response
            .status
            .status_string
            .iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(TspError::Refused(format!(
            "status {}{}",
            response.status.status,
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        )));
    }
    let token = response
        .token
        .ok_or_else(|| TspError::Malformed("granted but no token".into()))?
        .to_der()?;
    verify_token(&token, expected)
}

/// Verifies a DER timestamp token (ContentInfo { SignedData { TSTInfo } }), as
/// [`verify_response`] does after the status.
pub fn verify_token(
    token_der: &[u8],
    expected: &Expectation<'_>,
) -> Result<VerifiedTimestamp, TspError> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::{SignedData, SignerIdentifier};

    let malformed = |what: &str| {
        let what = what.to_owned();
        move |e: der::Error| TspError::Malformed(format!("{what}: {e}"))
    };
    let info = crate::der_bounds::decode::<ContentInfo>(token_der)
        .map_err(malformed("token ContentInfo"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(TspError::Malformed("the token is not a SignedData".into()));
    }
    let signed: SignedData = info.content.decode_as().map_err(malformed("SignedData"))?;
    let encapsulated = &signed.encap_content_info;
    if encapsulated.econtent_type != ID_CT_TST_INFO {
        return Err(TspError::Malformed(format!(
            "the token's content type is {}, not id-ct-TSTInfo",
            encapsulated.econtent_type
        )));
    }
    let tst_info_der = encapsulated
        .econtent
        .as_ref()
        .ok_or_else(|| TspError::Malformed("the token has no TSTInfo".into()))?
        .decode_as::<OctetString>()
        .map_err(malformed("eContent"))?
        .as_bytes()
        .to_vec();
    let tst_info =
        crate::der_bounds::decode::<TstInfo>(&tst_info_der).map_err(malformed("TSTInfo"))?;

    // What the token says.
    let imprint = &tst_info.message_imprint;
    if imprint.hash_algorithm.oid != expected.hash_algorithm.oid()
        || imprint.hashed_message.as_bytes() != expected.hashed_message
    {
        return Err(TspError::Invalid(
            "the token's message imprint is not the one requested".into(),
        ));
    }
    let token_nonce = tst_info.nonce.as_ref().map(|n| n.as_bytes());
    if expected.nonce.map(strip_leading_zeros) != token_nonce.map(strip_leading_zeros) {
        return Err(TspError::Invalid(
            "the token's nonce is not the one sent".into(),
        ));
    }
    if let Some(policy) = &expected.policy {
        if tst_info.policy != *policy {
            return Err(TspError::Invalid(format!(
                "the token's policy is {}, not {policy}",
                tst_info.policy
            )));
        }
    }
    let time = OffsetDateTime::from_unix_timestamp(
        i64::try_from(tst_info.gen_time.to_unix_duration().as_secs())
            .map_err(|_| TspError::Malformed("genTime out of range".into()))?,
    )
    .map_err(|e| TspError::Malformed(format!("genTime: {e}")))?;

    // Who signed it.
    let signer_info = match signed.signer_infos.0.as_slice() {
        [one] => one,
        _ => {
            return Err(TspError::Malformed(
                "a token has exactly one SignerInfo".into(),
            ))
        }
    };
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    if let Some(set) = &signed.certificates {
        for choice in set.0.iter() {
            if let cms::cert::CertificateChoices::Certificate(certificate) = choice {
                candidates.push(certificate.to_der()?);
            }
        }
    }
    candidates.extend(expected.extra_certificates.iter().map(|c| c.to_vec()));
    let signer_der = candidates
        .iter()
        .find(|der| {
            let Ok(certificate) = crate::der_bounds::decode::<Certificate>(der) else {
                return false;
            };
            let tbs = &certificate.tbs_certificate;
            match &signer_info.sid {
                SignerIdentifier::IssuerAndSerialNumber(id) => {
                    id.issuer == tbs.issuer && id.serial_number == tbs.serial_number
                }
                SignerIdentifier::SubjectKeyIdentifier(ski) => {
                    subject_key_identifier(der).as_deref() == Some(ski.0.as_bytes())
                }
            }
        })
        .cloned()
        .ok_or_else(|| {
            TspError::Invalid("the TSA's certificate is neither in the token nor given".into())
        })?;

    // The signed attributes: content type, digest of the TSTInfo, ESS certificate hash.
    let attributes = signer_info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| TspError::Malformed("the SignerInfo has no signed attributes".into()))?;
    let attribute = |oid: ObjectIdentifier| {
        attributes
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.get(0))
    };
    let content_type = attribute(ID_CONTENT_TYPE)
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| TspError::Malformed("no contentType attribute".into()))?;
    if content_type != ID_CT_TST_INFO {
        return Err(TspError::Invalid(
            "the contentType attribute is not id-ct-TSTInfo".into(),
        ));
    }
    let digest_algorithm =
        HashAlgorithm::from_oid(signer_info.digest_alg.oid).ok_or_else(|| {
            TspError::Invalid(format!(
                "digest algorithm {} is not accepted",
                signer_info.digest_alg.oid
            ))
        })?;
    let message_digest = attribute(ID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| TspError::Malformed("no messageDigest attribute".into()))?;
    if message_digest.as_bytes() != digest_algorithm.digest(&tst_info_der) {
        return Err(TspError::Invalid(
            "the messageDigest attribute does not match the TSTInfo".into(),
        ));
    }
    check_ess_certificate(&attribute, &signer_der)?;
    let signed_attributes_der = attributes.to_der()?;
    verify_signature(
        &signer_der,
        signer_info.signature_algorithm.oid,
        &signed_attributes_der,
        signer_info.signature.as_bytes(),
    )?;

    // The TSA's certificate: for timestamping, valid at genTime, chaining to an anchor.
    check_time_stamping_eku(&signer_der)
        .map_err(|e| TspError::Invalid(format!("the TSA's certificate: {e}")))?;
    check_chain(&signer_der, &candidates, expected.trust_anchors, time)?;

    Ok(VerifiedTimestamp {
        time,
        serial: tst_info.serial_number.as_bytes().to_vec(),
        policy: tst_info.policy,
        tsa_certificate_der: signer_der,
        token_der: token_der.to_vec(),
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn subject_key_identifier(certificate_der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::extensions::ParsedExtension;
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der).ok()?;
    certificate
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

/// The ESS signing-certificate(-v2) attribute must name the signer's certificate by hash
/// (RFC 3161 §2.4.1, RFC 5816): it binds the signature to that certificate.
fn check_ess_certificate<'a>(
    attribute: &dyn Fn(ObjectIdentifier) -> Option<&'a Any>,
    signer_der: &[u8],
) -> Result<(), TspError> {
    // SigningCertificate(V2) ::= SEQUENCE { certs SEQUENCE OF ESSCertID(v2), policies OPTIONAL }
    // ESSCertIDv2 ::= SEQUENCE { hashAlgorithm DEFAULT sha256, certHash OCTET STRING, issuerSerial OPTIONAL }
    // ESSCertID ::= SEQUENCE { certHash OCTET STRING (SHA-1), issuerSerial OPTIONAL }
    let first_cert_id = |value: &Any| -> Option<Vec<Any>> {
        let outer: Vec<Any> = value.decode_as().ok()?;
        let certs: Vec<Any> = outer.first()?.decode_as().ok()?;
        certs.first()?.decode_as().ok()
    };
    if let Some(value) = attribute(ID_AA_SIGNING_CERTIFICATE_V_2) {
        let fields = first_cert_id(value)
            .ok_or_else(|| TspError::Malformed("signingCertificateV2 is malformed".into()))?;
        let (algorithm, hash) = match fields.as_slice() {
            [first, ..] if first.tag() == der::Tag::OctetString => {
                (HashAlgorithm::Sha256, first.value().to_vec())
            }
            [first, second, ..] => {
                let identifier: spki::AlgorithmIdentifierOwned =
                    first.decode_as().map_err(|e| {
                        TspError::Malformed(format!("signingCertificateV2 hash algorithm: {e}"))
                    })?;
                let algorithm = HashAlgorithm::from_oid(identifier.oid).ok_or_else(|| {
                    TspError::Invalid(format!(
                        "signingCertificateV2 hash algorithm {} is not accepted",
                        identifier.oid
                    ))
                })?;
                (algorithm, second.value().to_vec())
            }
            _ => {
                return Err(TspError::Malformed(
                    "signingCertificateV2 has no certificate hash".into(),
                ))
            }
        };
        if hash != algorithm.digest(signer_der) {
            return Err(TspError::Invalid(
                "signingCertificateV2 names another certificate".into(),
            ));
        }
        return Ok(());
    }
    if let Some(value) = attribute(ID_AA_SIGNING_CERTIFICATE) {
        let fields = first_cert_id(value)
            .ok_or_else(|| TspError::Malformed("signingCertificate is malformed".into()))?;
        let hash = fields
            .first()
            .filter(|f| f.tag() == der::Tag::OctetString)
            .ok_or_else(|| TspError::Malformed("signingCertificate has no hash".into()))?;
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, signer_der);
        if hash.value() != sha1.as_ref() {
            return Err(TspError::Invalid(
                "signingCertificate names another certificate".into(),
            ));
        }
        return Ok(());
    }
    Err(TspError::Invalid(
        "no ESS signing-certificate attribute".into(),
    ))
}

/// Verifies a signature by the key of `certificate_der` with the algorithm a SignerInfo names.
pub(crate) fn verify_signature(
    certificate_der: &[u8],
    algorithm: ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), TspError> {
    let certificate = crate::der_bounds::decode::<Certificate>(certificate_der)
        .map_err(|e| TspError::Malformed(format!("TSA certificate: {e}")))?;
    let spki = &certificate.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.raw_bytes();
    let curve = if spki.algorithm.oid == ID_EC_PUBLIC_KEY {
        spki.algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
    } else {
        None
    };
    let verification: &'static dyn ring_signature::VerificationAlgorithm =
        match (algorithm, spki.algorithm.oid, curve) {
            (ECDSA_WITH_SHA_256, _, Some(SECP_256_R_1)) => &ring_signature::ECDSA_P256_SHA256_ASN1,
            (ECDSA_WITH_SHA_384, _, Some(SECP_256_R_1)) => &ring_signature::ECDSA_P256_SHA384_ASN1,
            (ECDSA_WITH_SHA_256, _, Some(SECP_384_R_1)) => &ring_signature::ECDSA_P384_SHA256_ASN1,
            (ECDSA_WITH_SHA_384, _, Some(SECP_384_R_1)) => &ring_signature::ECDSA_P384_SHA384_ASN1,
            (SHA_256_WITH_RSA_ENCRYPTION | RSA_ENCRYPTION, RSA_ENCRYPTION, _) => {
                &ring_signature::RSA_PKCS1_2048_8192_SHA256
            }
            (SHA_384_WITH_RSA_ENCRYPTION, RSA_ENCRYPTION, _) => {
                &ring_signature::RSA_PKCS1_2048_8192_SHA384
            }
            (SHA_512_WITH_RSA_ENCRYPTION, RSA_ENCRYPTION, _) => {
                &ring_signature::RSA_PKCS1_2048_8192_SHA512
            }
            _ => {
                return Err(TspError::Invalid(format!(
                    "signature algorithm {algorithm} with key {} is not supported",
                    spki.algorithm.oid
                )))
            }
        };
    UnparsedPublicKey::new(verification, key)
        .verify(message, signature)
        .map_err(|_| TspError::Invalid("the token's signature does not verify".into()))
}

/// Follows issuers from `leaf_der` through `intermediates` to one of `anchors`, checking each
/// signature and each certificate's validity at `at`.
fn check_chain(
    leaf_der: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &[&[u8]],
    at: OffsetDateTime,
) -> Result<(), TspError> {
    let parse = |der: &[u8]| -> Result<Vec<u8>, TspError> { Ok(der.to_vec()) };
    let mut current = parse(leaf_der)?;
    for _ in 0..MAX_CHAIN {
        let (_, certificate) = x509_parser::parse_x509_certificate(&current)
            .map_err(|e| TspError::Malformed(format!("certificate in the chain: {e}")))?;
        let at_unix = at.unix_timestamp();
        let validity = certificate.validity();
        if at_unix < validity.not_before.timestamp() || at_unix > validity.not_after.timestamp() {
            return Err(TspError::Invalid(format!(
                "certificate {} was not valid at the token's time",
                certificate.subject()
            )));
        }
        let issued_by = |issuer_der: &[u8]| -> bool {
            let Ok((_, issuer)) = x509_parser::parse_x509_certificate(issuer_der) else {
                return false;
            };
            issuer.subject().as_raw() == certificate.issuer().as_raw()
                && certificate
                    .verify_signature(Some(issuer.public_key()))
                    .is_ok()
        };
        if anchors.iter().any(|anchor| issued_by(anchor)) {
            return Ok(());
        }
        let next = intermediates
            .iter()
            .filter(|candidate| candidate.as_slice() != current.as_slice())
            .find(|candidate| {
                issued_by(candidate)
                    && x509_parser::parse_x509_certificate(candidate).is_ok_and(
                        |(_, c)| matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca),
                    )
            })
            .cloned();
        match next {
            Some(next) => current = next,
            None => break,
        }
    }
    Err(TspError::Invalid(
        "the TSA's certificate does not chain to a trusted CA".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_integer_bytes_keep_the_sign_bit_clear() {
        assert_eq!(positive_integer_bytes(&[0, 0, 0x80]), vec![0, 0x80]);
        assert_eq!(positive_integer_bytes(&[0, 0, 0x7f]), vec![0x7f]);
        assert_eq!(positive_integer_bytes(&[0, 0]), vec![0]);
    }

    #[test]
    fn rejections_carry_their_failure_bit() {
        let der = rejection_response(&Rejection::new(FailureInfo::BadDataFormat, "garbage"));
        let response = TimeStampResponse::from_der(&der).unwrap();
        assert_eq!(response.status.status, 2);
        let info = response.status.fail_info.unwrap();
        // badDataFormat is bit 5: one byte 0b0000_0100 with two unused bits.
        assert_eq!(info.raw_bytes(), [0x04]);
        assert_eq!(info.unused_bits(), 2);
        assert!(response.token.is_none());
        let error = verify_response(
            &der,
            &Expectation {
                hash_algorithm: HashAlgorithm::Sha256,
                hashed_message: &[0; 32],
                nonce: None,
                policy: None,
                trust_anchors: &[],
                extra_certificates: &[],
            },
        )
        .unwrap_err();
        assert!(
            matches!(error, TspError::Refused(ref m) if m.contains("garbage")),
            "{error}"
        );
    }

    #[test]
    fn system_failure_is_bit_25() {
        let bits = FailureInfo::SystemFailure.bit_string().unwrap();
        assert_eq!(bits.raw_bytes(), [0, 0, 0, 0x40]);
        assert_eq!(bits.unused_bits(), 6);
    }
}
