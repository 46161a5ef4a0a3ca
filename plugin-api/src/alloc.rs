//! The allocator of a policy module: a bump allocator over the module's linear memory.
//!
//! Every decision runs in a fresh instance that is thrown away afterwards, so nothing needs to
//! be given back: memory is taken from the end of the static data upwards, the initial memory
//! first, and grown a page range at a time only when that is used up (the host's memory limit
//! stops a module that takes too much). Rust's default allocator on `wasm32-unknown-unknown`
//! grows memory for its very first allocation, whatever the initial memory holds; a grow costs
//! the host a system call and fresh pages on every instantiation, a good part of a decision.
//! Freeing the most recent allocation, and growing it in place, are honoured.
//!
//! On by default (feature `bump-allocator`); a policy that allocates and frees far more than it
//! keeps can turn it off and bring its own `#[global_allocator]`.

use core::{
    alloc::{GlobalAlloc, Layout},
    cell::Cell,
};

/// The next free byte and the end of the memory taken so far (0 before the first allocation).
pub struct Bump {
    next: Cell<usize>,
    end: Cell<usize>,
}

// SAFETY: a module runs on one thread.
unsafe impl Sync for Bump {}

const PAGE: usize = 65_536;

unsafe extern "C" {
    /// The first byte after the module's static data and stack, set by the linker.
    static __heap_base: u8;
}

impl Bump {
    pub const fn new() -> Self {
        Bump { next: Cell::new(0), end: Cell::new(0) }
    }

    /// Room up to `end`, growing the memory if needed; false when the memory cannot grow.
    fn reserve(&self, end: usize) -> bool {
        if self.end.get() == 0 {
            // Only the address of the linker's symbol is taken, which needs no `unsafe`.
            self.next.set(core::ptr::addr_of!(__heap_base) as usize);
            self.end.set(core::arch::wasm32::memory_size(0) * PAGE);
        }
        if end <= self.end.get() {
            return true;
        }
        let pages = (end - self.end.get()).div_ceil(PAGE);
        if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        self.end.set(self.end.get() + pages * PAGE);
        true
    }
}

impl Default for Bump {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.end.get() == 0 && !self.reserve(0) {
            return core::ptr::null_mut();
        }
        let start = self.next.get().next_multiple_of(layout.align());
        let Some(end) = start.checked_add(layout.size()) else { return core::ptr::null_mut() };
        if !self.reserve(end) {
            return core::ptr::null_mut();
        }
        self.next.set(end);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent allocation can be given back.
        if ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The most recent allocation grows or shrinks in place.
        if ptr as usize + layout.size() == self.next.get() {
            let end = ptr as usize + new_size;
            if self.reserve(end) {
                self.next.set(end);
                return ptr;
            }
            return core::ptr::null_mut();
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the layout's alignment with the new size, as `GlobalAlloc::realloc` requires.
        let new = unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for `layout.size()` bytes and do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
        }
        new
    }
}
