//! Signet's domain: identifiers, statuses and the state machines that say which changes are legal.
//! Nothing here knows about HTTP or SQL; the API and the store translate to and from these types.

pub mod document;
pub mod order;
pub mod person;
pub mod signature_level;
pub mod signer;

pub use document::{DocumentId, DocumentStatus, DocumentTransitionError, Sha256Digest};
pub use order::{
    LinkType, OrderId, OrderOption, OrderState, OrderTransitionError, PriorityGroup, TaskStatus,
};
pub use person::{PersonSource, PersonalNumber, PersonalNumberError, UnknownSource};
pub use signature_level::{SignatureLevel, UnknownSignatureLevel};
pub use signer::{IdentifierError, SignerId, SignerStatus, TransitionError, UserId};
