//! A CloudSigner document: one PDF prepared for one signer's signature, and the status machine
//! that says which changes are legal (WAITING → SIGNED | REJECTED; anything → DELETED).

use std::fmt;
use std::str::FromStr;

/// A document's identifier: a random UUID Signet assigns at upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DocumentId(uuid::Uuid);

impl DocumentId {
    /// A fresh random identifier.
    pub fn new_random() -> Self {
        DocumentId(uuid::Uuid::new_v4())
    }

    /// Parses the canonical hyphenated UUID form (what Signet hands out).
    pub fn parse(raw: &str) -> Result<Self, String> {
        uuid::Uuid::try_parse(raw)
            .map(DocumentId)
            .map_err(|_| format!("{raw:?} is not a document id (a UUID)"))
    }

    /// The identifier's 16 bytes: the changing `/ID` of the revision Signet prepares for it, so
    /// every upload has its own data to be signed.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where a document is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DocumentStatus {
    /// Prepared; waiting for the device's signature.
    Waiting,
    /// The signature is embedded; the signed PDF can be downloaded.
    Signed,
    /// The client declined it; it can no longer be signed.
    Rejected,
    /// Deleted by the client; its bytes are gone, the row is kept for audit.
    Deleted,
}

/// A change the status machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} document cannot become {to}")]
pub struct DocumentTransitionError {
    pub from: DocumentStatus,
    pub to: DocumentStatus,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Waiting => "WAITING",
            DocumentStatus::Signed => "SIGNED",
            DocumentStatus::Rejected => "REJECTED",
            DocumentStatus::Deleted => "DELETED",
        }
    }

    /// Whether `self → to` is allowed. Rejecting a rejected document again is a no-op.
    pub fn transition(self, to: DocumentStatus) -> Result<DocumentStatus, DocumentTransitionError> {
        use DocumentStatus::*;
        match (self, to) {
            (Waiting, Signed) | (Waiting, Rejected) | (Rejected, Rejected) => Ok(to),
            (from, Deleted) if from != Deleted => Ok(Deleted),
            (from, to) => Err(DocumentTransitionError { from, to }),
        }
    }
}

impl fmt::Display for DocumentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocumentStatus {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "WAITING" => Ok(DocumentStatus::Waiting),
            "SIGNED" => Ok(DocumentStatus::Signed),
            "REJECTED" => Ok(DocumentStatus::Rejected),
            "DELETED" => Ok(DocumentStatus::Deleted),
            other => Err(format!("unknown document status {other:?}")),
        }
    }
}

/// A SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if raw.len() != 64 || raw.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("{raw:?} is not 64 lowercase hex digits"));
        }
        hex::decode_to_slice(raw, &mut bytes)
            .map_err(|_| format!("{raw:?} is not 64 lowercase hex digits"))?;
        Ok(Sha256Digest(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::DocumentStatus::*;
    use super::*;
    use proptest::prelude::*;

    const ALL: [DocumentStatus; 4] = [Waiting, Signed, Rejected, Deleted];

    #[test]
    fn every_transition_pair_is_decided_as_the_spec_says() {
        for from in ALL {
            for to in ALL {
                let allowed = matches!(
                    (from, to),
                    (Waiting, Signed) | (Waiting, Rejected) | (Rejected, Rejected)
                ) || (to == Deleted && from != Deleted);
                assert_eq!(
                    from.transition(to).is_ok(),
                    allowed,
                    "{from} -> {to} should be allowed: {allowed}"
                );
            }
        }
    }

    #[test]
    fn a_signed_document_cannot_be_rejected_and_the_error_names_both_states() {
        let error = Signed.transition(Rejected).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a SIGNED document cannot become REJECTED"
        );
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in ALL {
            assert_eq!(status.as_str().parse::<DocumentStatus>(), Ok(status));
        }
    }

    proptest! {
        #[test]
        fn digests_round_trip_through_hex(bytes in any::<[u8; 32]>()) {
            let digest = Sha256Digest::from_bytes(bytes);
            prop_assert_eq!(digest.to_string().parse::<Sha256Digest>(), Ok(digest));
        }

        #[test]
        fn document_ids_round_trip(bits in any::<u128>()) {
            let id = DocumentId(uuid::Uuid::from_u128(bits));
            prop_assert_eq!(DocumentId::parse(&id.to_string()), Ok(id));
        }

        #[test]
        fn non_hex_digests_are_refused(raw in "[g-z]{64}") {
            prop_assert!(raw.parse::<Sha256Digest>().is_err());
        }
    }
}
