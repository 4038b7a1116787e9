//! Object identifiers with arcs too large for `const-oid`, which holds each arc in a `u32`.
//!
//! A TSA policy is an OID, and the arc that needs no registration is ITU-T X.667's `2.25`: the
//! arc beneath it is a UUID read as a 128-bit integer (`2.25.84368966124002786473139849535287588283`
//! is Signet's). `const-oid` refuses such an arc when it decodes, so the TSTInfo and the
//! TimeStampReq carry their policy as a [`PolicyId`]: the OID's content octets, checked to be
//! well-formed base-128 arcs, each up to 128 bits.

use std::fmt;
use std::str::FromStr;

use der::{DecodeValue, EncodeValue, FixedTag, Header, Length, Reader, Tag, Writer};

/// The most content octets accepted: a 2.25 UUID OID takes 20; policies in the wild fewer than 30.
const MAX_CONTENT_OCTETS: usize = 64;

/// An object identifier as DER content octets, every arc at most 128 bits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PolicyId(Vec<u8>);

/// Why a text or DER form is not an object identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an object identifier: {0}")]
pub struct InvalidOid(String);

impl PolicyId {
    /// From DER content octets (without tag and length), checked.
    pub fn from_content(octets: &[u8]) -> Result<Self, InvalidOid> {
        arcs(octets)?;
        Ok(Self(octets.to_vec()))
    }

    /// The DER content octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The arcs of content octets, the first two combined in the first value (X.690 §8.19).
fn arcs(octets: &[u8]) -> Result<Vec<u128>, InvalidOid> {
    if octets.is_empty() || octets.len() > MAX_CONTENT_OCTETS {
        return Err(InvalidOid(format!("{} content octets", octets.len())));
    }
    let mut values = Vec::new();
    let mut value: u128 = 0;
    let mut started = false;
    for &byte in octets {
        if !started && byte == 0x80 {
            return Err(InvalidOid("an arc with a leading 0x80 octet".into()));
        }
        started = true;
        if value >> 121 != 0 {
            return Err(InvalidOid("an arc beyond 128 bits".into()));
        }
        value = value << 7 | u128::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            values.push(value);
            value = 0;
            started = false;
        }
    }
    if started {
        return Err(InvalidOid("the last arc is cut off".into()));
    }
    let first = values[0];
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut all = vec![a, b];
    all.extend_from_slice(&values[1..]);
    Ok(all)
}

impl FromStr for PolicyId {
    type Err = InvalidOid;

    fn from_str(text: &str) -> Result<Self, InvalidOid> {
        let arcs: Vec<u128> = text
            .split('.')
            .map(|arc| {
                if arc.is_empty() || !arc.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(InvalidOid(format!("{text:?}")));
                }
                arc.parse::<u128>()
                    .map_err(|_| InvalidOid(format!("{text:?}: an arc beyond 128 bits")))
            })
            .collect::<Result<_, _>>()?;
        let [first, second, rest @ ..] = arcs.as_slice() else {
            return Err(InvalidOid(format!("{text:?}: fewer than two arcs")));
        };
        if *first > 2 || (*first < 2 && *second > 39) {
            return Err(InvalidOid(format!("{text:?}: no such root arc")));
        }
        let combined = first
            .checked_mul(40)
            .and_then(|f| f.checked_add(*second))
            .ok_or_else(|| InvalidOid(format!("{text:?}: the second arc is too large")))?;
        let mut octets = Vec::new();
        for arc in std::iter::once(combined).chain(rest.iter().copied()) {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest != 0 {
                groups.push((rest & 0x7f) as u8 | 0x80);
                rest >>= 7;
            }
            octets.extend(groups.iter().rev());
        }
        Self::from_content(&octets).map_err(|e| InvalidOid(format!("{text:?}: {}", e.0)))
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Checked when built, so this succeeds.
        let arcs = arcs(&self.0).map_err(|_| fmt::Error)?;
        let text: Vec<String> = arcs.iter().map(u128::to_string).collect();
        f.write_str(&text.join("."))
    }
}

impl fmt::Debug for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyId({self})")
    }
}

impl From<der::asn1::ObjectIdentifier> for PolicyId {
    fn from(oid: der::asn1::ObjectIdentifier) -> Self {
        Self(oid.as_bytes().to_vec())
    }
}

impl PartialEq<der::asn1::ObjectIdentifier> for PolicyId {
    fn eq(&self, other: &der::asn1::ObjectIdentifier) -> bool {
        self.0 == other.as_bytes()
    }
}

impl<'a> DecodeValue<'a> for PolicyId {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let octets = reader.read_vec(header.length)?;
        Self::from_content(&octets).map_err(|_| Tag::ObjectIdentifier.value_error())
    }
}

impl EncodeValue for PolicyId {
    fn value_len(&self) -> der::Result<Length> {
        self.0.len().try_into()
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}

impl FixedTag for PolicyId {
    const TAG: Tag = Tag::ObjectIdentifier;
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};
    use proptest::prelude::*;

    #[test]
    fn a_uuid_arc_round_trips_through_text_and_der() {
        let text = "2.25.84368966124002786473139849535287588283";
        let oid: PolicyId = text.parse().unwrap();
        assert_eq!(oid.to_string(), text);
        let der = oid.to_der().unwrap();
        assert_eq!(der[0], 0x06);
        assert_eq!(PolicyId::from_der(&der).unwrap(), oid);
        // const-oid cannot hold the arc, which is why this type exists.
        assert!(der::asn1::ObjectIdentifier::from_der(&der).is_err());
    }

    #[test]
    fn small_oids_match_const_oid() {
        let small = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.3.2.1");
        let ours: PolicyId = "1.3.6.1.4.1.311.3.2.1".parse().unwrap();
        assert_eq!(ours, small);
        assert_eq!(PolicyId::from(small), ours);
    }

    #[test]
    fn malformed_forms_are_refused() {
        for text in [
            "",
            "2",
            "3.1",
            "1.40",
            "1..2",
            "1.2.x",
            "2.25.340282366920938463463374607431768211456",
        ] {
            assert!(text.parse::<PolicyId>().is_err(), "{text}");
        }
        assert!(PolicyId::from_content(&[0x2a, 0x86]).is_err(), "cut off");
        assert!(
            PolicyId::from_content(&[0x2a, 0x80, 0x01]).is_err(),
            "leading 0x80"
        );
        assert!(PolicyId::from_content(&[]).is_err());
    }

    proptest! {
        #[test]
        fn any_arcs_round_trip(second in 0u128..40, rest in proptest::collection::vec(any::<u128>(), 0..3)) {
            let text = std::iter::once("1".to_owned())
                .chain(std::iter::once(second.to_string()))
                .chain(rest.iter().map(u128::to_string))
                .collect::<Vec<_>>()
                .join(".");
            let oid: PolicyId = text.parse().unwrap();
            prop_assert_eq!(oid.to_string(), text);
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = PolicyId::from_content(&bytes).map(|oid| oid.to_string());
        }
    }
}
