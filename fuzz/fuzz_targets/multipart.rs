//! The one upload reader's parser core (`signet::api::upload::MultipartParser`), which reads every
//! multipart body of both APIs before anything else looks at it. The first byte picks the chunk
//! size the body is fed in (every split must give the same parts), the rest is the body under a
//! fixed boundary. Whatever it accepts must respect the limits: no header block or part count
//! beyond them, and the same parts however the body was split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::api::upload::{parse_complete, MultipartLimits};

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

const BOUNDARY: &[u8] = b"XyZ-boundary";

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let limits = MultipartLimits {
        max_header_block: 512,
        max_parts: 16,
    };
    let chunked = parse_complete(BOUNDARY, body, usize::from(chunk).max(1), limits);
    let whole = parse_complete(BOUNDARY, body, body.len().max(1), limits);
    match (&chunked, &whole) {
        (Ok(a), Ok(b)) => {
            assert!(a.len() <= limits.max_parts, "more parts than the limit");
            assert_eq!(a.len(), b.len(), "the split changed the parts");
            for (x, y) in a.iter().zip(b) {
                assert_eq!(x.head, y.head, "the split changed a part's headers");
                assert_eq!(x.body, y.body, "the split changed a part's body");
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!("the split changed the outcome: {chunked:?} vs {whole:?}"),
    }
});
