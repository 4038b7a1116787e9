//! The PDF engine judged by real tools: pyHanko, pdfsig, `openssl cms -verify` and qpdf.
//! One test binary, so the crate links once.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod support;

mod corpus;
mod ltv;
mod negatives;
mod signing;
