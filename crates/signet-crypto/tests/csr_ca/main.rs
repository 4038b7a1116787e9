//! CSR intake and the internal CA checked against the real `openssl` CLI: requests made by
//! openssl are parsed (or refused) by Signet, and what Signet's CA issues is verified by openssl.
//! The timestamp authority and the OCSP responder built on that CA are judged the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ca;
mod csr;
mod ltv_support;
mod ocsp;
mod revocation;
mod support;
mod tsp;
