//! The timestamp authority's two parsers of untrusted bytes: `TimeStampRequest::from_der` (what
//! any client posts to `POST /tsa`) and `verify_response` (what an external TSA answers). A request
//! it accepts must encode again and parse back to itself; a response must never verify without a
//! trust anchor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_crypto::tsp::{verify_response, Expectation, HashAlgorithm, TimeStampRequest};

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = TimeStampRequest::from_der(data) {
        let der = request.to_der().expect("an accepted request encodes");
        let again = TimeStampRequest::from_der(&der).expect("its encoding parses");
        assert_eq!(again, request, "the request changed through DER");
    }
    let expected = Expectation {
        hash_algorithm: HashAlgorithm::Sha256,
        hashed_message: &[0; 32],
        nonce: None,
        policy: None,
        trust_anchors: &[],
        extra_certificates: &[],
    };
    assert!(
        verify_response(data, &expected).is_err(),
        "a response verified with no trust anchor"
    );
});
