//! `signet_pdf::prepare` and `prepare_appending` on arbitrary bytes. Both share the reader with
//! `check`; this target also holds the writer to its promises whenever preparation succeeds:
//! the output starts with the input untouched, its byte range digests to the returned digest,
//! the placeholder is empty and takes a CMS, and appending in place gives the same bytes.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use signet_pdf::{
    byte_range_digest, embed, placeholder_is_empty, prepare, prepare_appending, PrepareOptions,
};
use time::OffsetDateTime;

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

fuzz_target!(|data: &[u8]| {
    // A fixed time keeps every run of one input identical (preparation is deterministic).
    let mut options = PrepareOptions::new(OffsetDateTime::UNIX_EPOCH);
    // A small placeholder keeps each execution cheap; its size is not what is being tested.
    options.placeholder_capacity = 64;
    let mut output = Vec::new();
    let Ok(prepared) = prepare(Cursor::new(data), &mut output, &options) else {
        return;
    };
    assert!(
        output.starts_with(data),
        "the input must be an untouched prefix"
    );
    assert_eq!(prepared.output_len, output.len() as u64);

    let mut appended = Cursor::new(data.to_vec());
    let in_place = prepare_appending(&mut appended, &options).expect("prepare accepted it");
    assert_eq!(
        in_place, prepared,
        "prepare_appending must agree with prepare"
    );
    assert!(
        appended.get_ref() == &output,
        "prepare_appending wrote other bytes"
    );

    let mut file = Cursor::new(output);
    let digest = byte_range_digest(&mut file, &prepared.byte_range).expect("own byte range");
    assert_eq!(
        digest, prepared.digest,
        "the byte range must digest to the returned digest"
    );
    assert!(placeholder_is_empty(&mut file, &prepared.byte_range).expect("own placeholder"));
    embed(
        &mut file,
        &prepared.byte_range,
        &[0x30, 0x03, 0x02, 0x01, 0x01],
    )
    .expect("embed");
    let signed = byte_range_digest(&mut file, &prepared.byte_range).expect("own byte range");
    assert_eq!(
        signed, prepared.digest,
        "embedding must not touch the signed bytes"
    );
});
