//! The global allocator: mimalloc, asked for memory the way it is fastest.
//!
//! The `mimalloc` crate passes every allocation through `mi_malloc_aligned`, alignment and all.
//! mimalloc 3 serves an aligned request of up to 1 KiB from its free list when the next free block
//! happens to be aligned, and otherwise checks whether the size's block class is a power of two;
//! when it is not (a 13 KB future, a header map, a 1.5 KiB buffer), it over-allocates by the
//! alignment and marks the page, and freeing the block then costs more too. 18 of the 82
//! allocations of a proxied request took that slower path, at ~200 instructions each
//! (BENCHMARKS.md). An alignment of 16 or less, not larger than the size, is what plain
//! `mi_malloc` guarantees anyway (its block sizes from 16 bytes up are multiples of 16, and the
//! 8-byte blocks are 8-aligned), so those go there; only larger alignments (tokio's cache-padded
//! tasks and channels, 128) take the aligned call.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as mi;

/// What plain `mi_malloc` returns is aligned to this, given at least as many bytes.
const PLAIN_ALIGN: usize = 16;

/// mimalloc, with plain calls where the alignment asks for nothing more than they give.
pub struct Mimalloc;

/// Whether plain `mi_malloc`/`mi_realloc` of `size` bytes satisfy `align`.
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

/// A new block for `layout`: from `plain_call` where [`plain`] holds, else from `aligned_call`.
#[inline]
unsafe fn new_block(
    layout: Layout,
    plain_call: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned_call: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    // SAFETY: mimalloc's C API, called with a size and a power-of-two alignment.
    unsafe {
        if plain(size, align) {
            plain_call(size).cast()
        } else {
            aligned_call(size, align).cast()
        }
    }
}

// SAFETY: every block comes from mimalloc and goes back to it; a pointer is either null or
// aligned as the layout asks (plain calls only where `plain` holds, aligned calls otherwise).
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see `new_block`.
        unsafe { new_block(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see `new_block`.
        unsafe { new_block(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc; `mi_free` takes aligned and
        // plain blocks alike.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: `ptr` came from this allocator; the new block keeps the layout's alignment.
        unsafe {
            if plain(new_size, align) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment a program asks for comes back aligned, writable, and survives
    /// growing and shrinking with its contents.
    #[test]
    fn blocks_are_aligned_as_asked_through_alloc_zeroing_and_realloc() {
        let a = Mimalloc;
        let sizes = [
            1, 7, 8, 12, 16, 24, 40, 80, 200, 1000, 1025, 1500, 4096, 13_400, 70_000,
        ];
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in sizes {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let mut p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size} bytes, align {align}");
                    p.write_bytes(0xab, size);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed {size} bytes, align {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    for new_size in [size * 3 + 5, size.div_ceil(2)] {
                        let q = a.realloc(p, layout, new_size);
                        assert_eq!(
                            q as usize % align,
                            0,
                            "realloc to {new_size}, align {align}"
                        );
                        let kept = size.min(new_size);
                        assert!(std::slice::from_raw_parts(q, kept)
                            .iter()
                            .all(|&b| b == 0xab));
                        a.dealloc(q, Layout::from_size_align(new_size, align).unwrap());
                        p = a.alloc(layout);
                        p.write_bytes(0xab, size);
                    }
                    a.dealloc(p, layout);
                    a.dealloc(z, layout);
                }
            }
        }
    }

    /// Plain calls give every block of a page the alignment, not just the first ones.
    #[test]
    fn many_blocks_of_a_size_are_all_aligned() {
        let a = Mimalloc;
        for (size, align) in [
            (8, 8),
            (16, 16),
            (24, 16),
            (40, 8),
            (48, 16),
            (80, 16),
            (1500, 16),
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let blocks: Vec<*mut u8> = (0..2000).map(|_| unsafe { a.alloc(layout) }).collect();
            for &p in &blocks {
                assert_eq!(p as usize % align, 0, "{size} bytes, align {align}");
            }
            for p in blocks {
                unsafe { a.dealloc(p, layout) };
            }
        }
    }
}
