//! What the fuzz targets share: an exact heap budget.
//!
//! libFuzzer's `-rss_limit_mb` samples the RSS about once a second, so an input that takes
//! 540 MiB for 0.9 s and then frees it slips through (measured with issue 10's object-stream
//! bomb), and without AddressSanitizer `-malloc_limit_mb` does nothing. Each target therefore
//! installs [`HeapBudget`] as its global allocator: an allocation that would take the live Rust
//! heap past [`HEAP_LIMIT`] fails, the process aborts with "memory allocation of N bytes
//! failed", and libFuzzer keeps the input as a crash, however short the peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most bytes the Rust heap may hold at once: the same 256 MiB as the runs' `-rss_limit_mb`.
pub const HEAP_LIMIT: usize = 256 << 20;

/// Live bytes handed out by [`HeapBudget`].
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, refusing to grow the live heap past [`HEAP_LIMIT`].
pub struct HeapBudget;

/// Counts `bytes` as taken, or leaves the count alone and says no when they would not fit.
fn reserve(bytes: usize) -> bool {
    let before = LIVE.fetch_add(bytes, Ordering::Relaxed);
    if before.saturating_add(bytes) > HEAP_LIMIT {
        LIVE.fetch_sub(bytes, Ordering::Relaxed);
        return false;
    }
    true
}

fn release(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; the only addition is refusing (returning
// null, which the `GlobalAlloc` contract allows) when the budget is spent.
unsafe impl GlobalAlloc for HeapBudget {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        let pointer = unsafe { System.alloc(layout) };
        if pointer.is_null() {
            release(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if pointer.is_null() {
            release(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        release(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_size = layout.size();
        if new_size > old_size && !reserve(new_size - old_size) {
            return std::ptr::null_mut();
        }
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if moved.is_null() {
            if new_size > old_size {
                release(new_size - old_size);
            }
        } else if new_size < old_size {
            release(old_size - new_size);
        }
        moved
    }
}
