//! What the process really holds on the heap, counted by the allocator.
//!
//! `limits.memory` bounds memory, not an estimate of it: the forward
//! connections stop reading while the heap's live bytes beyond start-up
//! hold 5/8 of the budget (`MemoryBudget::with_heap_gauge`). Estimates missed what a record costs
//! once decoded, rendered, batched and serialized (a 64 MiB budget let RSS
//! reach 170 MiB in a burst); the allocator sees every byte.
//!
//! Counting must cost next to nothing per allocation, so each thread keeps
//! its own running difference and adds it to the shared total only when it
//! passes [`FLUSH_BYTES`]: one relaxed atomic operation per 64 KiB of
//! change, and a total that is exact to within that much per thread.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

use tikv_jemallocator::Jemalloc;

/// jemalloc, counting live bytes.
///
/// jemalloc rather than glibc's malloc: in a 300k-record burst glibc kept
/// 45-80 MiB beyond the live heap (per-thread arenas, chunks freed on
/// another thread) and spent 60-80 % more CPU per event; jemalloc with one
/// arena and free pages purged after a second kept 25-30 MiB beyond it
/// (BENCHMARKS.md, "Memory").
pub struct CountingAllocator;

/// Live bytes of all threads, less what each still keeps to itself.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The highest [`LIVE`] has been.
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// How far a thread's own count may drift before it is added to [`LIVE`].
const FLUSH_BYTES: isize = 64 << 10;

thread_local! {
    static UNFLUSHED: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with` fails only while the thread's locals are torn down; the
    // change then goes straight to the total.
    let kept = UNFLUSHED.try_with(|unflushed| {
        let sum = unflushed.get() + delta;
        if sum.abs() >= FLUSH_BYTES {
            add(sum);
            unflushed.set(0);
        } else {
            unflushed.set(sum);
        }
    });
    if kept.is_err() {
        add(delta);
    }
}

fn add(delta: isize) {
    let live = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is passed to jemalloc unchanged; only the sizes it
// reports are counted.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = Jemalloc.alloc(layout);
        if !ptr.is_null() {
            note(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = Jemalloc.alloc_zeroed(layout);
        if !ptr.is_null() {
            note(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Jemalloc.dealloc(ptr, layout);
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Jemalloc.realloc(ptr, layout, new_size);
        if !new.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// Bytes allocated and not freed, to within [`FLUSH_BYTES`] per thread;
/// 0 when [`CountingAllocator`] is not the global allocator.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed).max(0) as usize
}

/// The most [`live_bytes`] has been since the process started.
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed).max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_changes_stay_with_the_thread_until_they_add_up() {
        let before = LIVE.load(Ordering::Relaxed);
        std::thread::spawn(move || {
            note(FLUSH_BYTES - 1);
            assert_eq!(LIVE.load(Ordering::Relaxed), before);
            note(1);
            assert_eq!(LIVE.load(Ordering::Relaxed), before + FLUSH_BYTES);
            note(-FLUSH_BYTES);
            assert_eq!(LIVE.load(Ordering::Relaxed), before);
        })
        .join()
        .unwrap();
    }
}
