//! The PAdES baseline level a signature is made at (ETSI EN 319 142-1): what a validator can
//! check years later. B-B is the signature alone; B-T adds a timestamp over the signature value
//! (proof it existed at that time); B-LT adds, in a `/DSS` revision, every certificate and OCSP
//! answer needed to validate offline; B-LTA adds a document timestamp over all of it, renewed
//! before its certificate expires. Each level includes the ones below it.

use std::fmt;
use std::str::FromStr;

/// A PAdES baseline level, as the API spells it (`PADES_B_B` … `PADES_B_LTA`).
///
/// The variants are ordered: a level needs everything every lower level needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SignatureLevel {
    /// The signature alone (basic).
    PadesBB,
    /// Plus a signature timestamp.
    PadesBT,
    /// Plus the validation data (certificates, OCSP) in a `/DSS` revision: offline validation.
    /// The default: it is the first level that survives a later revocation of the signer.
    #[default]
    PadesBLT,
    /// Plus a document timestamp over the whole file, renewed as archive timestamps.
    PadesBLTA,
}

/// A level name that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a signature level (PADES_B_B, PADES_B_T, PADES_B_LT or PADES_B_LTA)")]
pub struct UnknownSignatureLevel(pub String);

impl SignatureLevel {
    /// Every level, lowest first.
    pub const ALL: [SignatureLevel; 4] = [
        SignatureLevel::PadesBB,
        SignatureLevel::PadesBT,
        SignatureLevel::PadesBLT,
        SignatureLevel::PadesBLTA,
    ];

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureLevel::PadesBB => "PADES_B_B",
            SignatureLevel::PadesBT => "PADES_B_T",
            SignatureLevel::PadesBLT => "PADES_B_LT",
            SignatureLevel::PadesBLTA => "PADES_B_LTA",
        }
    }

    /// Whether a signature at this level carries a signature timestamp (B-T and above).
    pub fn needs_signature_timestamp(self) -> bool {
        self >= SignatureLevel::PadesBT
    }
}

impl fmt::Display for SignatureLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignatureLevel {
    type Err = UnknownSignatureLevel;

    /// Exactly the API's spelling: the contract names four strings, and a near miss
    /// (`pades_b_t`, `B-T`) is more likely a mistake than a wish.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SignatureLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| UnknownSignatureLevel(s.to_owned()))
    }
}

impl TryFrom<String> for SignatureLevel {
    type Error = UnknownSignatureLevel;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<SignatureLevel> for String {
    fn from(level: SignatureLevel) -> Self {
        level.as_str().to_owned()
    }
}

// Settings (figment) and request bodies (serde_json) read the level as its string.
impl serde::Serialize for SignatureLevel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SignatureLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_level_reads_back_from_its_name() {
        for level in SignatureLevel::ALL {
            assert_eq!(level.as_str().parse::<SignatureLevel>(), Ok(level));
            assert_eq!(level.to_string(), level.as_str());
        }
    }

    #[test]
    fn the_default_is_b_lt() {
        assert_eq!(SignatureLevel::default(), SignatureLevel::PadesBLT);
    }

    #[test]
    fn near_misses_are_refused_with_the_value_named() {
        for wrong in ["pades_b_t", "PADES-B-T", "B-T", "PADES_B_T ", "", "PADES_B"] {
            let error = wrong.parse::<SignatureLevel>().unwrap_err();
            assert_eq!(error.0, wrong);
            assert!(error.to_string().contains("PADES_B_LTA"), "{error}");
        }
    }

    #[test]
    fn levels_from_b_t_up_need_a_signature_timestamp() {
        assert!(!SignatureLevel::PadesBB.needs_signature_timestamp());
        assert!(SignatureLevel::PadesBT.needs_signature_timestamp());
        assert!(SignatureLevel::PadesBLT.needs_signature_timestamp());
        assert!(SignatureLevel::PadesBLTA.needs_signature_timestamp());
    }

    #[test]
    fn json_carries_the_api_spelling() {
        let json = serde_json::to_string(&SignatureLevel::PadesBLTA).unwrap();
        assert_eq!(json, "\"PADES_B_LTA\"");
        let back: SignatureLevel = serde_json::from_str("\"PADES_B_T\"").unwrap();
        assert_eq!(back, SignatureLevel::PadesBT);
        let error = serde_json::from_str::<SignatureLevel>("\"PADES_X\"").unwrap_err();
        assert!(error.to_string().contains("PADES_X"), "{error}");
    }

    proptest! {
        #[test]
        fn only_the_four_names_parse(text in "\\PC{0,16}") {
            let parsed = text.parse::<SignatureLevel>();
            let known = SignatureLevel::ALL.iter().any(|l| l.as_str() == text);
            prop_assert_eq!(parsed.is_ok(), known);
        }
    }
}
