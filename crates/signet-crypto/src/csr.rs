//! CSR intake: turn the text a device sends (PEM or bare base64 of a PKCS#10 request) into a
//! subject and a public key the internal CA may certify. The request's self-signature is checked
//! (proof of possession) and the key must pass Signet's policy: ECDSA P-256, ECDSA P-384 or RSA
//! of 2048 to 8192 bits. Everything else in the request (requested extensions, attributes) is
//! ignored: the CA decides what goes into a certificate.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use const_oid::db::{rfc5912, rfc8410};
use const_oid::ObjectIdentifier;
use der::asn1::AnyRef;
use der::{Decode, Encode};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::der_parser::asn1_rs::{FromDer, Tag};
use x509_parser::error::X509Error;
use x509_parser::x509::X509Name;

/// The largest input [`CertificationRequest::parse`] looks at. An RSA-8192 request with a long
/// subject is well under 8 KiB of PEM; anything this large is refused before decoding.
const MAX_INPUT_BYTES: usize = 64 * 1024;

/// The advice appended to every key-policy refusal.
const KEY_ADVICE: &str = "use ECDSA P-256, P-384 or RSA >= 2048";

/// Smallest and largest accepted RSA modulus sizes, in bits.
const RSA_MIN_BITS: u32 = 2048;
const RSA_MAX_BITS: u32 = 8192;

/// Why a certificate signing request (or a bare public key) was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// The input was empty or only whitespace.
    #[error("the certificate signing request is empty")]
    Empty,
    /// The input is not a well-formed PKCS#10 request; the message says what was found instead.
    #[error("malformed certificate signing request: {0}")]
    Malformed(String),
    /// The request's self-signature does not verify with the public key it carries.
    #[error("the certificate signing request's signature does not verify with its own public key")]
    BadSignature,
    /// The key is well-formed but refused by policy; the message says why.
    #[error("key refused: {0}")]
    KeyRefused(String),
}

/// A parsed PKCS#10 certificate signing request whose self-signature verified and whose key
/// passed the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificationRequest {
    subject: Subject,
    public_key: PublicKey,
    der: Vec<u8>,
}

impl CertificationRequest {
    /// Accepts PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST` label, tolerant of `\r\n`
    /// and surrounding whitespace) or bare base64 of the DER (whitespace and newlines inside are
    /// ignored). Applies the key policy, verifies the self-signature (proof of possession) and
    /// copies the subject.
    pub fn parse(input: &str) -> Result<Self, CsrError> {
        let der = decode_text(input)?;
        let (rest, request) = match X509CertificationRequest::from_der(&der) {
            Ok(parsed) => parsed,
            Err(error) => return Err(CsrError::Malformed(describe_non_csr(&der, &error))),
        };
        if !rest.is_empty() {
            return Err(CsrError::Malformed(format!(
                "{} unexpected bytes follow the certificate signing request",
                rest.len()
            )));
        }
        let info = &request.certification_request_info;
        if info.version.0 != 0 {
            return Err(CsrError::Malformed(format!(
                "unsupported PKCS#10 version {} (only version 1 exists)",
                u64::from(info.version.0) + 1
            )));
        }
        // The policy runs before the signature check so that a DSA or Ed25519 request is told
        // what is wrong with its key rather than that its signature cannot be checked.
        let public_key = PublicKey::from_spki_der(info.subject_pki.raw)?;
        match request.verify_signature() {
            Ok(()) => {}
            Err(X509Error::SignatureUnsupportedAlgorithm) => {
                return Err(CsrError::Malformed(format!(
                    "the request is signed with an unsupported signature algorithm ({})",
                    request.signature_algorithm.algorithm
                )))
            }
            Err(_) => return Err(CsrError::BadSignature),
        }
        let subject = Subject::from_x509_name(&info.subject).map_err(CsrError::Malformed)?;
        Ok(Self {
            subject,
            public_key,
            der,
        })
    }

    /// The request's DER encoding, as received (kept so renewal can re-certify the same key).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject distinguished name, attribute by attribute as the request had it.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The first common name (CN) of the subject, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.subject.common_name()
    }

    /// The requested public key (it passed the key policy).
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
}

/// Turns PEM or bare base64 into DER, refusing other PEM types with a helpful message.
fn decode_text(input: &str) -> Result<Vec<u8>, CsrError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(CsrError::Malformed(format!(
            "the input is {} bytes; a certificate signing request is at most {MAX_INPUT_BYTES}",
            input.len()
        )));
    }
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(CsrError::Empty);
    }
    let body = if trimmed.starts_with("-----BEGIN") {
        pem_body(trimmed)?
    } else {
        trimmed
    };
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(CsrError::Malformed("the PEM block has no content".into()));
    }
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    standard
        .decode(&compact)
        .or_else(|_| url_safe.decode(&compact))
        .map_err(|error| {
            CsrError::Malformed(format!(
                "neither a PEM certificate signing request nor base64 of one ({error})"
            ))
        })
}

/// The base64 text between the BEGIN and END lines of a single PEM block.
fn pem_body(pem: &str) -> Result<&str, CsrError> {
    let (first_line, rest) = pem.split_once('\n').unwrap_or((pem, ""));
    let label = first_line
        .trim_end()
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| CsrError::Malformed("the PEM BEGIN line is malformed".into()))?;
    match label {
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {}
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
            return Err(CsrError::Malformed(format!(
                "this is a certificate (PEM label {label:?}), not a certificate signing request; \
                 send the request (BEGIN CERTIFICATE REQUEST)"
            )))
        }
        l if l.contains("PRIVATE KEY") => {
            return Err(CsrError::Malformed(format!(
                "this is a private key (PEM label {label:?}), not a certificate signing request; \
                 never send a private key: send the request made with it"
            )))
        }
        other => {
            return Err(CsrError::Malformed(format!(
                "unexpected PEM label {other:?}; expected \"CERTIFICATE REQUEST\""
            )))
        }
    }
    let end_line = format!("-----END {label}-----");
    let body = rest
        .trim_end()
        .strip_suffix(end_line.as_str())
        .ok_or_else(|| {
            CsrError::Malformed(format!(
                "the PEM block does not end with {end_line:?} (truncated, or text after it)"
            ))
        })?;
    if body.contains("-----") {
        return Err(CsrError::Malformed(
            "more than one PEM block; send exactly one certificate signing request".into(),
        ));
    }
    Ok(body)
}

/// Says what the DER is when it is not a PKCS#10 request.
fn describe_non_csr(der: &[u8], error: &x509_parser::nom::Err<X509Error>) -> String {
    if x509_parser::parse_x509_certificate(der).is_ok() {
        "this is an X.509 certificate, not a certificate signing request".into()
    } else {
        format!("not a PKCS#10 certificate signing request ({error})")
    }
}

/// A subject public key that passed the policy: ECDSA P-256, ECDSA P-384, or RSA of 2048 to
/// 8192 bits with an odd public exponent between 3 and 2^32.
///
/// The stored SubjectPublicKeyInfo is the canonical DER encoding (RSA with NULL parameters, EC
/// points uncompressed), which is exactly what goes into an issued certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    spki_der: Vec<u8>,
    /// The contents of the SPKI's BIT STRING: the SEC1 point or the PKCS#1 RSAPublicKey.
    key_bytes: Vec<u8>,
    algorithm: KeyAlgorithm,
}

/// The kind of an accepted public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (secp256r1).
    EcdsaP256,
    /// ECDSA on NIST P-384 (secp384r1).
    EcdsaP384,
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// The modulus size in bits.
        bits: u32,
    },
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcdsaP256 => f.write_str("ECDSA P-256"),
            Self::EcdsaP384 => f.write_str("ECDSA P-384"),
            Self::Rsa { bits } => write!(f, "RSA-{bits}"),
        }
    }
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo and applies the key policy.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CsrError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|error| {
            CsrError::Malformed(format!(
                "the public key is not a DER SubjectPublicKeyInfo ({error})"
            ))
        })?;
        let key = spki.subject_public_key.as_bytes().ok_or_else(|| {
            CsrError::Malformed("the public key BIT STRING has unused bits".into())
        })?;
        let oid = spki.algorithm.oid;
        let (algorithm, key_bytes) = if oid == rfc5912::RSA_ENCRYPTION {
            rsa_key(spki.algorithm.parameters, key)?
        } else if oid == rfc5912::ID_EC_PUBLIC_KEY {
            ec_key(spki.algorithm.parameters, key)?
        } else {
            return Err(CsrError::KeyRefused(refused_algorithm(oid)));
        };
        let mut public_key = Self {
            spki_der: Vec::new(),
            key_bytes,
            algorithm,
        };
        // Encode the SPKI exactly as rcgen will write it into the certificate.
        public_key.spki_der =
            rcgen::PublicKeyData::subject_public_key_info(&RcgenPublicKey(&public_key));
        Ok(public_key)
    }

    /// The canonical DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key's algorithm (and size for RSA).
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

/// Hands a policy-checked key to rcgen with the SPKI algorithm taken from the key itself (never
/// from the signature algorithm of a request; see rcgen issue #448).
pub(crate) struct RcgenPublicKey<'a>(pub(crate) &'a PublicKey);

impl rcgen::PublicKeyData for RcgenPublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.0.key_bytes
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        // Only the SPKI algorithm identifier of these constants is used for a subject key.
        match self.0.algorithm {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

fn rsa_key(
    parameters: Option<AnyRef<'_>>,
    key: &[u8],
) -> Result<(KeyAlgorithm, Vec<u8>), CsrError> {
    if parameters.is_some_and(|p| !p.is_null()) {
        return Err(CsrError::Malformed(
            "rsaEncryption parameters must be NULL".into(),
        ));
    }
    let rsa = rsa::pkcs1::RsaPublicKey::from_der(key).map_err(|error| {
        CsrError::Malformed(format!("the RSA public key is not valid DER ({error})"))
    })?;
    let modulus = rsa.modulus.as_bytes();
    let bits = match modulus.first() {
        Some(first) => {
            let bytes = u32::try_from(modulus.len()).unwrap_or(u32::MAX);
            bytes
                .saturating_mul(8)
                .saturating_sub(first.leading_zeros())
        }
        None => 0,
    };
    if bits < RSA_MIN_BITS {
        return Err(CsrError::KeyRefused(format!(
            "RSA keys must have at least {RSA_MIN_BITS} bits; this one has {bits}"
        )));
    }
    if bits > RSA_MAX_BITS {
        return Err(CsrError::KeyRefused(format!(
            "RSA keys may have at most {RSA_MAX_BITS} bits; this one has {bits}"
        )));
    }
    if modulus.last().is_some_and(|b| b % 2 == 0) {
        return Err(CsrError::Malformed("the RSA modulus is even".into()));
    }
    let exponent = rsa.public_exponent.as_bytes();
    let exponent_value = (exponent.len() <= 4).then(|| {
        exponent
            .iter()
            .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
    });
    match exponent_value {
        Some(e) if e >= 3 && e % 2 == 1 => {}
        _ => {
            return Err(CsrError::KeyRefused(
                "the RSA public exponent must be odd and between 3 and 2^32 (65537 is usual)"
                    .into(),
            ))
        }
    }
    let canonical = rsa.to_der().map_err(|error| {
        CsrError::Malformed(format!("the RSA public key cannot be re-encoded ({error})"))
    })?;
    Ok((KeyAlgorithm::Rsa { bits }, canonical))
}

fn ec_key(parameters: Option<AnyRef<'_>>, key: &[u8]) -> Result<(KeyAlgorithm, Vec<u8>), CsrError> {
    let curve = parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| {
            CsrError::KeyRefused(format!(
                "EC keys must name their curve (explicit or missing curve parameters are not \
                 supported): {KEY_ADVICE}"
            ))
        })?;
    if curve == rfc5912::SECP_256_R_1 {
        let point = p256::PublicKey::from_sec1_bytes(key).map_err(|_| {
            CsrError::Malformed("the EC public key is not a valid P-256 point".into())
        })?;
        Ok((
            KeyAlgorithm::EcdsaP256,
            point.to_encoded_point(false).as_bytes().to_vec(),
        ))
    } else if curve == rfc5912::SECP_384_R_1 {
        let point = p384::PublicKey::from_sec1_bytes(key).map_err(|_| {
            CsrError::Malformed("the EC public key is not a valid P-384 point".into())
        })?;
        Ok((
            KeyAlgorithm::EcdsaP384,
            point.to_encoded_point(false).as_bytes().to_vec(),
        ))
    } else {
        let name = if curve == rfc5912::SECP_521_R_1 {
            "P-521 (secp521r1)".to_owned()
        } else {
            OTHER_CURVES
                .iter()
                .find(|(oid, _)| curve.to_string() == *oid)
                .map(|(_, name)| (*name).to_owned())
                .unwrap_or_else(|| oid_name(curve))
        };
        Err(CsrError::KeyRefused(format!(
            "EC curve {name} is not supported: {KEY_ADVICE}"
        )))
    }
}

/// Curves people do try, named in refusals (const-oid's database lacks some of them).
const OTHER_CURVES: &[(&str, &str)] = &[
    ("1.3.132.0.10", "secp256k1"),
    ("1.3.132.0.33", "P-224 (secp224r1)"),
    ("1.2.840.10045.3.1.1", "P-192 (prime192v1)"),
    ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1"),
    ("1.3.36.3.3.2.8.1.1.11", "brainpoolP384r1"),
    ("1.3.36.3.3.2.8.1.1.13", "brainpoolP512r1"),
];

/// The refusal message for a key algorithm that is neither RSA nor EC.
fn refused_algorithm(oid: ObjectIdentifier) -> String {
    let name = if oid == rfc8410::ID_ED_25519 {
        "Ed25519".to_owned()
    } else if oid == rfc8410::ID_ED_448 {
        "Ed448".to_owned()
    } else if oid == rfc8410::ID_X_25519 {
        "X25519".to_owned()
    } else if oid == rfc8410::ID_X_448 {
        "X448".to_owned()
    } else if oid == rfc5912::ID_DSA {
        "DSA".to_owned()
    } else if oid == rfc5912::ID_RSASSA_PSS {
        "RSASSA-PSS (PSS-restricted RSA)".to_owned()
    } else {
        format!("{} algorithm", oid_name(oid))
    };
    format!("{name} keys are not supported: {KEY_ADVICE}")
}

/// A readable name for an OID: its registered name and dotted form, or just the dotted form.
fn oid_name(oid: ObjectIdentifier) -> String {
    match const_oid::db::DB.by_oid(&oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_string(),
    }
}

/// A distinguished name copied attribute by attribute, keeping order and string types as far
/// as rcgen can reproduce them. Multi-valued RDNs and repeated attribute types are refused
/// because rcgen cannot encode them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    attributes: Vec<Attribute>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Attribute {
    oid: Vec<u64>,
    value: AttributeValue,
}

/// A decoded attribute value with the ASN.1 string type it was (or will be) encoded with.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AttributeValue {
    Utf8(String),
    Printable(String),
    Ia5(String),
    Teletex(String),
    Bmp(String),
    Universal(String),
}

impl AttributeValue {
    fn text(&self) -> &str {
        match self {
            Self::Utf8(s)
            | Self::Printable(s)
            | Self::Ia5(s)
            | Self::Teletex(s)
            | Self::Bmp(s)
            | Self::Universal(s) => s,
        }
    }

    /// The rcgen value, falling back to UTF8String when rcgen refuses the original type.
    fn to_rcgen(&self) -> rcgen::DnValue {
        use rcgen::string::{
            BmpString, Ia5String, PrintableString, TeletexString, UniversalString,
        };
        use rcgen::DnValue;
        let kept = match self {
            Self::Utf8(_) => None,
            Self::Printable(s) => PrintableString::try_from(s.as_str())
                .ok()
                .map(DnValue::PrintableString),
            Self::Ia5(s) => Ia5String::try_from(s.as_str()).ok().map(DnValue::Ia5String),
            Self::Teletex(s) => TeletexString::try_from(s.as_str())
                .ok()
                .map(DnValue::TeletexString),
            Self::Bmp(s) => BmpString::try_from(s.as_str()).ok().map(DnValue::BmpString),
            Self::Universal(s) => UniversalString::try_from(s.as_str())
                .ok()
                .map(DnValue::UniversalString),
        };
        kept.unwrap_or_else(|| DnValue::Utf8String(self.text().to_owned()))
    }
}

const OID_COMMON_NAME: [u64; 4] = [2, 5, 4, 3];
const OID_SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];
const OID_COUNTRY: [u64; 4] = [2, 5, 4, 6];
const OID_ORGANIZATION: [u64; 4] = [2, 5, 4, 10];
const OID_EMAIL: [u64; 7] = [1, 2, 840, 113549, 1, 9, 1];

/// Short names for the attribute types people usually see, for [`Subject`]'s `Display`.
const SHORT_NAMES: &[(&[u64], &str)] = &[
    (&OID_COMMON_NAME, "CN"),
    (&OID_SERIAL_NUMBER, "serialNumber"),
    (&OID_COUNTRY, "C"),
    (&[2, 5, 4, 7], "L"),
    (&[2, 5, 4, 8], "ST"),
    (&[2, 5, 4, 9], "street"),
    (&OID_ORGANIZATION, "O"),
    (&[2, 5, 4, 11], "OU"),
    (&[2, 5, 4, 4], "SN"),
    (&[2, 5, 4, 42], "GN"),
    (&[2, 5, 4, 12], "title"),
    (&[0, 9, 2342, 19200300, 100, 1, 25], "DC"),
    (&[0, 9, 2342, 19200300, 100, 1, 1], "UID"),
    (&OID_EMAIL, "emailAddress"),
];

impl Subject {
    /// Starts an empty subject; attributes appear in the order they are set.
    pub fn builder() -> SubjectBuilder {
        SubjectBuilder::default()
    }

    /// The first common name (CN), if any.
    pub fn common_name(&self) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.oid == OID_COMMON_NAME)
            .map(|a| a.value.text())
    }

    /// Whether the subject has no attributes at all.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// Copies an X.509 name. Refuses what rcgen cannot re-encode (multi-valued RDNs, repeated
    /// attribute types) and non-string values; the error is a human-readable reason.
    pub(crate) fn from_x509_name(name: &X509Name<'_>) -> Result<Self, String> {
        let mut attributes: Vec<Attribute> = Vec::new();
        for rdn in name.iter() {
            let mut entries = rdn.iter();
            let (Some(entry), None) = (entries.next(), entries.next()) else {
                return Err(
                    "the subject has a multi-valued (or empty) RDN, which cannot be copied".into(),
                );
            };
            let oid: Vec<u64> = entry
                .attr_type()
                .iter()
                .ok_or("a subject attribute type has an OID arc too large to handle")?
                .collect();
            let value = decode_value(entry.attr_value().header.tag(), entry.attr_value().data)
                .ok_or_else(|| {
                    format!(
                        "the subject attribute {} does not hold a valid string",
                        attribute_name(&oid)
                    )
                })?;
            if attributes.iter().any(|a| a.oid == oid) {
                return Err(format!(
                    "the subject repeats the attribute {}, which cannot be copied",
                    attribute_name(&oid)
                ));
            }
            attributes.push(Attribute { oid, value });
        }
        Ok(Self { attributes })
    }

    /// The rcgen distinguished name with the same attributes in the same order.
    pub(crate) fn to_rcgen(&self) -> rcgen::DistinguishedName {
        let mut dn = rcgen::DistinguishedName::new();
        for attribute in &self.attributes {
            dn.push(
                rcgen::DnType::from_oid(&attribute.oid),
                attribute.value.to_rcgen(),
            );
        }
        dn
    }
}

/// Decodes a string-typed attribute value; `None` when it is not a valid string.
fn decode_value(tag: Tag, data: &[u8]) -> Option<AttributeValue> {
    let utf8 = || std::str::from_utf8(data).ok().map(str::to_owned);
    let ascii = || utf8().filter(|s| s.is_ascii());
    Some(match tag {
        Tag::Utf8String => AttributeValue::Utf8(utf8()?),
        Tag::PrintableString => AttributeValue::Printable(ascii()?),
        // rcgen has no NumericString; digits and spaces are valid PrintableString.
        Tag::NumericString => AttributeValue::Printable(ascii()?),
        Tag::Ia5String => AttributeValue::Ia5(ascii()?),
        Tag::VisibleString => AttributeValue::Utf8(ascii()?),
        // Teletex is treated as Latin-1, as most software does.
        Tag::T61String => AttributeValue::Teletex(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let pairs = data.chunks_exact(2);
            if !pairs.remainder().is_empty() {
                return None;
            }
            let units = pairs.map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            AttributeValue::Bmp(
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .ok()?,
            )
        }
        Tag::UniversalString => {
            let quads = data.chunks_exact(4);
            if !quads.remainder().is_empty() {
                return None;
            }
            let text = quads
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                })
                .collect::<Option<String>>()?;
            AttributeValue::Universal(text)
        }
        _ => return None,
    })
}

fn attribute_name(oid: &[u64]) -> String {
    SHORT_NAMES
        .iter()
        .find(|(known, _)| *known == oid)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| oid.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}

impl fmt::Display for Subject {
    /// `CN=Alice, O=Example` style, in the stored order (for logs and messages, not parsing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attribute) in self.attributes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{}={}",
                attribute_name(&attribute.oid),
                attribute.value.text()
            )?;
        }
        Ok(())
    }
}

/// Builds a [`Subject`] for Signet's own certificates; setting an attribute twice replaces it.
#[derive(Clone, Debug, Default)]
pub struct SubjectBuilder {
    attributes: Vec<Attribute>,
}

impl SubjectBuilder {
    fn set(mut self, oid: &[u64], value: AttributeValue) -> Self {
        match self.attributes.iter_mut().find(|a| a.oid == oid) {
            Some(existing) => existing.value = value,
            None => self.attributes.push(Attribute {
                oid: oid.to_vec(),
                value,
            }),
        }
        self
    }

    /// Common name (CN, UTF8String).
    pub fn common_name(self, value: &str) -> Self {
        self.set(&OID_COMMON_NAME, AttributeValue::Utf8(value.to_owned()))
    }

    /// Subject serial number (X.520 serialNumber, PrintableString; UTF8String if it has other
    /// characters), e.g. a personal number.
    pub fn serial_number(self, value: &str) -> Self {
        self.set(
            &OID_SERIAL_NUMBER,
            AttributeValue::Printable(value.to_owned()),
        )
    }

    /// E-mail address (PKCS#9 emailAddress, IA5String).
    pub fn email(self, value: &str) -> Self {
        self.set(&OID_EMAIL, AttributeValue::Ia5(value.to_owned()))
    }

    /// Organization (O, UTF8String).
    pub fn organization(self, value: &str) -> Self {
        self.set(&OID_ORGANIZATION, AttributeValue::Utf8(value.to_owned()))
    }

    /// Country (C, PrintableString), a two-letter ISO 3166 code.
    pub fn country(self, value: &str) -> Self {
        self.set(&OID_COUNTRY, AttributeValue::Printable(value.to_owned()))
    }

    /// The finished subject.
    pub fn build(self) -> Subject {
        Subject {
            attributes: self.attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_whitespace_input_is_empty() {
        assert!(matches!(
            CertificationRequest::parse(""),
            Err(CsrError::Empty)
        ));
        assert!(matches!(
            CertificationRequest::parse(" \r\n\t "),
            Err(CsrError::Empty)
        ));
    }

    #[test]
    fn a_megabyte_of_text_is_malformed() {
        let input = "A".repeat(1024 * 1024);
        assert!(matches!(
            CertificationRequest::parse(&input),
            Err(CsrError::Malformed(_))
        ));
    }

    #[test]
    fn a_private_key_pem_is_refused_with_advice() {
        let input = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let Err(CsrError::Malformed(message)) = CertificationRequest::parse(input) else {
            panic!("expected Malformed");
        };
        assert!(message.contains("private key"), "{message}");
    }

    #[test]
    fn the_builder_keeps_order_and_replaces_repeats() {
        let subject = Subject::builder()
            .common_name("Alice")
            .country("SE")
            .common_name("Bob")
            .build();
        assert_eq!(subject.common_name(), Some("Bob"));
        assert_eq!(subject.to_string(), "CN=Bob, C=SE");
    }

    #[test]
    fn an_invalid_printable_string_falls_back_to_utf8() {
        let subject = Subject::builder().serial_number("ÅÄÖ-1").build();
        let dn = subject.to_rcgen();
        assert_eq!(
            dn.get(&rcgen::DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec())),
            Some(&rcgen::DnValue::Utf8String("ÅÄÖ-1".into()))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(input in ".{0,2000}") {
            let _ = CertificationRequest::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_base64_of_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let _ = CertificationRequest::parse(&text);
            let pem = format!("-----BEGIN CERTIFICATE REQUEST-----\n{text}\n-----END CERTIFICATE REQUEST-----\n");
            let _ = CertificationRequest::parse(&pem);
        }

        #[test]
        fn parse_never_panics_on_mutated_der_prefixes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            // A plausible start (SEQUENCE, long length) followed by noise exercises deeper paths.
            let mut der = vec![0x30, 0x82, 0x01, 0x00, 0x30, 0x81, 0xf0, 0x02, 0x01, 0x00];
            der.extend_from_slice(&bytes);
            let text = base64::engine::general_purpose::STANDARD.encode(&der);
            let _ = CertificationRequest::parse(&text);
            let _ = PublicKey::from_spki_der(&bytes);
        }
    }
}
