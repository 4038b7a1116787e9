//! `signet_pdf::check` on arbitrary bytes: the PDF reader every upload goes through before it is
//! stored (`POST /documents`, `POST /orders`). It may refuse anything, but must not panic, nor
//! pass the heap budget of `signet_fuzz` or the run's `-timeout`.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

fuzz_target!(|data: &[u8]| {
    let _ = signet_pdf::check(std::io::Cursor::new(data));
});
