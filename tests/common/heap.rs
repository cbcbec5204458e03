//! Heap accounting for the allocation and memory tests: a counting global allocator (each test
//! binary installs it with `#[global_allocator]`) and a recorder whose handles never allocate.
//!
//! Only the current thread's allocations are counted, and only inside [`count`] or
//! [`net_bytes`].
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Counts this thread's allocations, bytes requested and net bytes while counting is on.
pub struct Counting;

thread_local! {
    /// Const-initialised: no allocation, no destructor, safe to touch from inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
    static NET: Cell<i64> = const { Cell::new(0) };
}

fn note(new: usize, freed: usize, is_alloc: bool) {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            if is_alloc {
                let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
                let _ = BYTES.try_with(|b| b.set(b.get() + new as u64));
            }
            let _ = NET.try_with(|n| n.set(n.get() + new as i64 - freed as i64));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0, true);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0, true);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, layout.size(), true);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, layout.size(), false);
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn counting<T>(f: impl FnOnce() -> T) -> T {
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    out
}

/// Runs `f` and returns (allocations, bytes requested) made by this thread meanwhile.
pub fn count(f: impl FnOnce()) -> (u64, u64) {
    let (a0, b0) = (ALLOCS.with(Cell::get), BYTES.with(Cell::get));
    counting(f);
    (ALLOCS.with(Cell::get) - a0, BYTES.with(Cell::get) - b0)
}

/// Runs `f`; returns its result and the bytes this thread allocated minus those it freed.
pub fn net_bytes<T>(f: impl FnOnce() -> T) -> (T, i64) {
    let before = NET.with(Cell::get);
    let out = counting(f);
    (out, NET.with(Cell::get) - before)
}

/// One series: a count (counter value or histogram observations) and the last value's bits.
#[derive(Default)]
pub struct Cell64 {
    count: AtomicU64,
    bits: AtomicU64,
}

impl CounterFn for Cell64 {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.count.fetch_max(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell64 {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl HistogramFn for Cell64 {
    fn record(&self, value: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// A minimal recorder: one `Arc` of two atomics per series, in a map keyed by `Key`. Recording
/// on its handles never allocates.
#[derive(Default)]
pub struct AtomicRecorder {
    series: Mutex<HashMap<Key, Arc<Cell64>>>,
}

impl AtomicRecorder {
    fn cell(&self, key: &Key) -> Arc<Cell64> {
        self.series
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Total count over every series of `name`.
    pub fn total(&self, name: &str) -> u64 {
        self.series
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.name() == name)
            .map(|(_, c)| c.count.load(Ordering::Relaxed))
            .sum()
    }

    /// How many series exist.
    pub fn len(&self) -> usize {
        self.series.lock().unwrap().len()
    }
}

impl Recorder for AtomicRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}
