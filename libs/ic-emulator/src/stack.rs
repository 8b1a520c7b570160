//! The native stack that Wasm executions run on.
//!
//! wasmi runs Wasm calls on the native stack, so deep canister code needs far
//! more than a test thread's 2 MiB. Each thread keeps one large stack, mapped
//! once (reserved, committed only where touched) with a guard page below it,
//! and reuses it for every execution: mapping and unmapping a fresh stack per
//! message cost about a sixth of a small update's round trip.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

thread_local! {
    static STACK: RefCell<Option<Stack>> = const { RefCell::new(None) };
    /// Set while this thread runs on its Wasm stack: nested executions
    /// (an install that runs `canister_init`, say) stay on it.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on this thread's Wasm stack of `size` bytes.
pub fn run<R>(size: usize, f: impl FnOnce() -> R) -> R {
    if ACTIVE.get() {
        return f();
    }
    let Some((base, len)) = STACK.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|s| s.len < size) {
            *s = Stack::map(size);
        }
        s.as_ref().map(|s| (s.base, s.len))
    }) else {
        // Mapping failed (or not a Unix host): a fresh stack for this call.
        return stacker::grow(size, f);
    };
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            ACTIVE.set(false);
        }
    }
    ACTIVE.set(true);
    let _leave = Leave;
    let mut result = None;
    let mut f = Some(f);
    let mut run = || {
        if let Some(f) = f.take() {
            result = Some(catch_unwind(AssertUnwindSafe(f)));
        }
    };
    // SAFETY: `base..base + len` is a live read-write mapping owned by this
    // thread's `STACK`, which is not replaced while `ACTIVE` is set, and a
    // guard page below it turns an overflow into a fault, as for any thread.
    unsafe { psm::on_stack(base, len, &mut run) };
    match result {
        Some(Ok(value)) => value,
        Some(Err(panic)) => resume_unwind(panic),
        None => unreachable!("BUG: the Wasm stack callback did not run"),
    }
}

struct Stack {
    /// Lowest usable address (just above the guard page).
    base: *mut u8,
    len: usize,
}

const GUARD: usize = 64 * 1024;

impl Stack {
    #[cfg(unix)]
    fn map(len: usize) -> Option<Stack> {
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked before use.
        unsafe {
            let ptr = libc::mmap(
                std::ptr::null_mut(),
                len + GUARD,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if ptr == libc::MAP_FAILED {
                return None;
            }
            if libc::mprotect(ptr, GUARD, libc::PROT_NONE) != 0 {
                libc::munmap(ptr, len + GUARD);
                return None;
            }
            Some(Stack {
                base: ptr.cast::<u8>().add(GUARD),
                len,
            })
        }
    }

    #[cfg(not(unix))]
    fn map(_len: usize) -> Option<Stack> {
        None
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: unmaps exactly the region `map` created; nothing runs on it
        // (threads drop their locals after their last execution).
        unsafe {
            libc::munmap(self.base.sub(GUARD).cast(), self.len + GUARD);
        }
    }
}
