//! Signet's pure cryptography: CSR intake and key policy, the internal certificate authority
//! (issue, re-certify, revoke, CRL), and CMS structures for PAdES signatures.
//! No I/O: callers hand in bytes and a clock reading, and persist what comes back.

pub mod ca;
pub mod cms;
pub mod csr;
pub mod verify;
