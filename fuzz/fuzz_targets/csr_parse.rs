//! The CSR parser (`signet_crypto::csr::CertificationRequest::parse`) behind `POST /signers`:
//! PEM or base64 text straight from a request body. The first byte picks the shape of the rest:
//! even: the rest is the text as sent; odd: the rest is DER, sent as base64 (so mutations reach
//! the ASN.1 parser instead of stopping at the text decoding). Every byte also goes to the
//! key-policy parser of a bare SubjectPublicKeyInfo.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use signet_crypto::csr::{CertificationRequest, PublicKey};

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = CertificationRequest::parse(text);
        }
    } else {
        let text = base64::engine::general_purpose::STANDARD.encode(rest);
        if let Ok(request) = CertificationRequest::parse(&text) {
            assert_eq!(request.der(), rest, "the DER kept is the DER received");
        }
        let _ = PublicKey::from_spki_der(rest);
    }
});
