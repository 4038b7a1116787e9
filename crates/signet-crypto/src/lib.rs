//! Signet's pure cryptography: CSR intake and key policy, the internal certificate authority
//! (issue, re-certify, revoke, CRL), CMS structures for PAdES signatures, RFC 3161 timestamps
//! and RFC 6960 OCSP responses.
//! No I/O: callers hand in bytes and a clock reading, and persist what comes back.

pub mod ca;
pub mod cms;
pub mod csr;
pub mod der_bounds;
pub mod ocsp;
pub mod oid;
pub mod revocation;
pub mod tsp;
pub mod verify;
