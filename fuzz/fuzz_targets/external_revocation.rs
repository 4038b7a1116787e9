//! The checks of another CA's revocation data (`signet_crypto::revocation`), fed by whatever an
//! external TSA's OCSP responder or CRL distribution point answers, and the certificate reader
//! that finds those URLs: bounded, never a panic, and nothing unsigned is ever accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_crypto::ca::CertificateAuthority;
use signet_crypto::revocation;
use std::sync::OnceLock;
use time::{Duration, OffsetDateTime};

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

/// One CA certificate stands in for both the checked certificate and its issuer: the parsers run
/// in full, and no fuzzed bytes can carry its signature.
fn ca_certificate() -> &'static [u8] {
    static CA: OnceLock<Vec<u8>> = OnceLock::new();
    CA.get_or_init(|| {
        let now = OffsetDateTime::now_utc();
        CertificateAuthority::generate("Fuzz CA", now, Duration::days(30))
            .expect("a CA is generated")
            .certificate_der()
            .to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = revocation::locations(data);
    let _ = revocation::is_self_signed(data);
    let certificate = ca_certificate();
    let now = OffsetDateTime::now_utc();
    assert!(
        revocation::verify_ocsp_response(data, certificate, certificate, now).is_err(),
        "fuzzed bytes were accepted as an OCSP response signed by the CA"
    );
    assert!(
        revocation::verify_crl(data, certificate, certificate, now).is_err(),
        "fuzzed bytes were accepted as a CRL signed by the CA"
    );
});
