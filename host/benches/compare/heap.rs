//! How far the heap grows during a stretch of the bench: the system
//! allocator behind a counter that runs only while watched, so the other
//! rows pay one relaxed load per allocation and nothing more.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// The bench binary's allocator.
pub struct Counting;

static WATCHING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated minus bytes freed since [`watch`].
static NET: AtomicIsize = AtomicIsize::new(0);
/// The highest `NET` seen since [`watch`].
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if WATCHING.load(Ordering::Relaxed) {
        let net = NET.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(net, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to `System` unchanged; the counters
// allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts watching from here: growth is counted from zero.
pub fn watch() {
    WATCHING.store(false, Ordering::SeqCst);
    NET.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
}

/// Stops watching and returns the most the heap grew, in bytes, since
/// [`watch`] (by the whole process: keep the rest of the bench idle).
pub fn peak_growth() -> usize {
    WATCHING.store(false, Ordering::SeqCst);
    PEAK.load(Ordering::SeqCst).max(0) as usize
}
