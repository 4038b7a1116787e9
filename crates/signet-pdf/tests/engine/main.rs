//! The PDF engine judged by real tools: pyHanko, pdfsig, `openssl cms -verify` and qpdf.
//! One test binary, so the crate links once.

mod support;

mod signing;
