//! A CloudSigner signer: a device enrolled with a key pair, and the status machine that governs it.

use signet_crypto::ca::RevocationReason;
use std::fmt;
use std::str::FromStr;

/// Identifier a client gives its signer (PowerAuth's activation id in the reference product).
/// Non-empty, at most 128 printable characters, so it is safe in URLs, logs and database keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignerId(String);

/// The client's user identifier for a signer; same shape rules as [`SignerId`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserId(String);

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("must contain only printable characters without '/' or whitespace")]
    BadCharacter,
}

const MAX_IDENTIFIER_LEN: usize = 128;

fn parse_identifier(raw: &str) -> Result<String, IdentifierError> {
    if raw.is_empty() {
        return Err(IdentifierError::Empty);
    }
    if raw.chars().count() > MAX_IDENTIFIER_LEN {
        return Err(IdentifierError::TooLong {
            max: MAX_IDENTIFIER_LEN,
        });
    }
    // '/' would make the id unreachable through `/signers/{id}`; control characters and
    // whitespace have no business in an identifier and would poison logs.
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(IdentifierError::BadCharacter);
    }
    Ok(raw.to_owned())
}

macro_rules! identifier_newtype {
    ($name:ident) => {
        impl $name {
            /// Parses a client-supplied identifier.
            pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
                parse_identifier(raw).map(Self)
            }

            /// The identifier as given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier_newtype!(SignerId);
identifier_newtype!(UserId);

/// The life-cycle state of a signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignerStatus {
    Active,
    Blocked,
    Removed,
    Revoked,
    Expired,
}

/// A status change the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a signer cannot go from {from} to {to}")]
pub struct TransitionError {
    pub from: SignerStatus,
    pub to: SignerStatus,
}

impl SignerStatus {
    pub const ALL: [SignerStatus; 5] = [
        SignerStatus::Active,
        SignerStatus::Blocked,
        SignerStatus::Removed,
        SignerStatus::Revoked,
        SignerStatus::Expired,
    ];

    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SignerStatus::Active => "ACTIVE",
            SignerStatus::Blocked => "BLOCKED",
            SignerStatus::Removed => "REMOVED",
            SignerStatus::Revoked => "REVOKED",
            SignerStatus::Expired => "EXPIRED",
        }
    }

    /// REMOVED, REVOKED and EXPIRED are final: no API call brings such a signer back.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SignerStatus::Removed | SignerStatus::Revoked | SignerStatus::Expired
        )
    }

    /// May a client enroll (or re-enroll with a new CSR) a signer in this state?
    /// The reference product silently reactivates terminal signers; we refuse, because
    /// reviving a revoked identity with a fresh key defeats the revocation.
    pub fn accepts_enrollment(self) -> bool {
        !self.is_terminal()
    }

    /// May this signer sign documents right now?
    pub fn can_sign(self) -> bool {
        self == SignerStatus::Active
    }

    /// A status change requested by a client through `PUT /signers/{id}`: `Ok(None)` when the
    /// signer already has that status (a no-op), `Ok(Some(to))` for a legal move.
    /// EXPIRED is Signet's own verdict and never a client's request.
    pub fn request(self, to: SignerStatus) -> Result<Option<SignerStatus>, TransitionError> {
        use SignerStatus::*;
        if self == to {
            return Ok(None);
        }
        match (self, to) {
            (Active, Blocked) | (Blocked, Active) | (Active | Blocked, Removed | Revoked) => {
                Ok(Some(to))
            }
            _ => Err(TransitionError { from: self, to }),
        }
    }

    /// Entering this status revokes every certificate of the signer; the value is the CRL reason
    /// used when the client gave none. REVOKED is the explicit case. REMOVED revokes too: an
    /// operator removing a device expects its key to stop producing trusted signatures.
    pub fn revocation_reason_default(self) -> Option<RevocationReason> {
        match self {
            SignerStatus::Revoked => Some(RevocationReason::Unspecified),
            SignerStatus::Removed => Some(RevocationReason::CessationOfOperation),
            _ => None,
        }
    }

    /// Signet's own verdict when a certificate ran out without renewal.
    pub fn expire(self) -> Result<SignerStatus, TransitionError> {
        match self {
            SignerStatus::Active | SignerStatus::Blocked => Ok(SignerStatus::Expired),
            from => Err(TransitionError {
                from,
                to: SignerStatus::Expired,
            }),
        }
    }
}

impl fmt::Display for SignerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status spelling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signer status {0:?}; expected one of ACTIVE, BLOCKED, REMOVED, REVOKED, EXPIRED")]
pub struct UnknownStatus(pub String);

impl FromStr for SignerStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SignerStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use SignerStatus::*;

    #[test]
    fn every_pair_of_statuses_follows_the_documented_machine() {
        for from in SignerStatus::ALL {
            for to in SignerStatus::ALL {
                let result = from.request(to);
                let expected_legal = from == to
                    || matches!(
                        (from, to),
                        (Active, Blocked)
                            | (Blocked, Active)
                            | (Active | Blocked, Removed)
                            | (Active | Blocked, Revoked)
                    );
                assert_eq!(result.is_ok(), expected_legal, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn revoking_and_removing_revoke_certificates() {
        assert_eq!(Active.request(Revoked), Ok(Some(Revoked)));
        assert!(Revoked.revocation_reason_default().is_some());
        assert!(Removed.revocation_reason_default().is_some());
        assert!(Blocked.revocation_reason_default().is_none());
        assert_eq!(Blocked.request(Blocked), Ok(None));
    }

    #[test]
    fn clients_cannot_expire_a_signer_but_signet_can() {
        assert!(Active.request(Expired).is_err());
        assert_eq!(Active.expire(), Ok(Expired));
        assert!(Revoked.expire().is_err());
    }

    #[test]
    fn terminal_signers_refuse_enrollment() {
        assert!(Active.accepts_enrollment() && Blocked.accepts_enrollment());
        assert!(!Removed.accepts_enrollment());
        assert!(!Revoked.accepts_enrollment());
        assert!(!Expired.accepts_enrollment());
    }

    #[test]
    fn identifiers_refuse_empty_long_and_slashed_values() {
        assert_eq!(SignerId::parse(""), Err(IdentifierError::Empty));
        assert!(SignerId::parse(&"a".repeat(129)).is_err());
        assert_eq!(SignerId::parse("a/b"), Err(IdentifierError::BadCharacter));
        assert_eq!(SignerId::parse("a b"), Err(IdentifierError::BadCharacter));
        assert!(SignerId::parse("456def").is_ok());
    }

    proptest! {
        #[test]
        fn statuses_round_trip_through_their_spelling(index in 0usize..5) {
            let status = SignerStatus::ALL[index];
            prop_assert_eq!(status.as_str().parse::<SignerStatus>(), Ok(status));
        }

        #[test]
        fn valid_identifiers_round_trip(raw in "[A-Za-z0-9._~:-]{1,128}") {
            let id = SignerId::parse(&raw).unwrap();
            prop_assert_eq!(id.as_str(), raw.as_str());
        }

        #[test]
        fn identifier_parsing_never_panics(raw in ".*") {
            let _ = UserId::parse(&raw);
        }
    }
}
