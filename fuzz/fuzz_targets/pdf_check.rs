//! `signet_pdf::check` on arbitrary bytes: the PDF reader every upload goes through before it is
//! stored (`POST /documents`, `POST /orders`). It may refuse anything, but must not panic, and
//! (under the run's `-rss_limit_mb` and `-timeout`) must not blow up memory or time.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = signet_pdf::check(std::io::Cursor::new(data));
});
