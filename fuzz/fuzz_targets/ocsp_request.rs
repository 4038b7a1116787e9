//! The OCSP responder's request parser (`OcspRequest::from_der`), fed by anyone through
//! `POST /ca/ocsp` and `GET /ca/ocsp/{base64}`: bounded, never a panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_crypto::ocsp::OcspRequest;

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = OcspRequest::from_der(data) {
        let _ = request.nonce();
    }
});
