//! A canister's linear memory, and how the writes of one execution are undone.
//!
//! Every execution must be atomic, so what it writes to the heap must be undoable.
//! Copying the whole heap before each execution costs as much as a small update's own
//! work several times over for a 3 MB canister. The IC's replica tracks the pages a
//! message writes instead, and so does the emulator on Linux
//! ([`HeapSnapshots::DirtyPages`]), with the kernel's asynchronous userfaultfd
//! write-protection (Linux 6.7+):
//!
//! - the module's memory is turned into an imported one (see `wasm::rewrite`) and backed
//!   by a mapping reserved for its maximum size, so it never moves when it grows (wasmi's
//!   `Memory::new_static`), registered for write-protection;
//! - between executions every page of the heap is write-protected, and a shadow holds
//!   the committed heap. The kernel resolves the first write to a protected page itself
//!   (no signal, no handler thread) and marks the page written;
//! - after an execution one `PAGEMAP_SCAN` lists the written pages and protects them
//!   again. Commit copies them into the shadow, rollback copies them back from it.
//!
//! The kernel tracks writes per page of each mapping, so emulators in parallel threads
//! never see each other's writes. Where userfaultfd is unavailable (other systems, older
//! kernels, `vm.unprivileged_userfaultfd` forbidding even user-mode-only descriptors), or
//! with `IC_EMULATOR_HEAP_SNAPSHOTS=full-copy`, executions copy the whole heap
//! ([`HeapSnapshots::FullCopy`]). If the kernel refuses a scan later on, the region keeps
//! working by comparing the heap with its shadow page by page.

/// How executions save the heap for rollback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeapSnapshots {
    /// Save only the pages an execution writes (Linux; elsewhere the same as `FullCopy`).
    #[default]
    DirtyPages,
    /// Copy the whole heap before every execution.
    FullCopy,
}

impl HeapSnapshots {
    /// `full-copy` selects [`HeapSnapshots::FullCopy`]; anything else, or nothing,
    /// [`HeapSnapshots::DirtyPages`].
    pub const ENV_VAR: &'static str = "IC_EMULATOR_HEAP_SNAPSHOTS";

    pub fn from_env() -> Self {
        match std::env::var(Self::ENV_VAR).as_deref() {
            Ok("full-copy") => HeapSnapshots::FullCopy,
            _ => HeapSnapshots::DirtyPages,
        }
    }
}

#[cfg(target_os = "linux")]
pub(crate) use tracked::Region;

/// Where pages cannot be tracked no region can be made, so every canister uses full
/// copies.
#[cfg(not(target_os = "linux"))]
pub(crate) struct Region(());

#[cfg(not(target_os = "linux"))]
impl Region {
    pub fn new(_bytes: usize) -> Option<Region> {
        None
    }
    pub unsafe fn buffer(&self) -> &'static mut [u8] {
        &mut []
    }
    pub fn commit(&mut self, _heap_len: usize) {}
    pub fn roll_back(&mut self) {}
}

#[cfg(target_os = "linux")]
mod tracked {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::ptr;
    use std::sync::OnceLock;

    // The kernel's ABI (include/uapi/linux/userfaultfd.h and fs.h, Linux 6.7+), which
    // the libc crate does not carry.
    const UFFD_API: u64 = 0xAA;
    const UFFD_USER_MODE_ONLY: libc::c_int = 1;
    const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
    const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
    const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
    const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
    const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xC018_AA06;
    const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
    const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
    const PAGEMAP_SCAN: libc::c_ulong = 0xC060_6610;
    const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
    const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
    const PAGE_IS_WRITTEN: u64 = 1 << 1;

    #[repr(C)]
    struct UffdioApi {
        api: u64,
        features: u64,
        ioctls: u64,
    }

    #[repr(C)]
    struct UffdioRange {
        start: u64,
        len: u64,
    }

    #[repr(C)]
    struct UffdioRegister {
        range: UffdioRange,
        mode: u64,
        ioctls: u64,
    }

    #[repr(C)]
    struct UffdioWriteprotect {
        range: UffdioRange,
        mode: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct PageRegion {
        start: u64,
        end: u64,
        categories: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct PmScanArg {
        size: u64,
        flags: u64,
        start: u64,
        end: u64,
        walk_end: u64,
        vec: u64,
        vec_len: u64,
        max_pages: u64,
        category_inverted: u64,
        category_mask: u64,
        category_anyof_mask: u64,
        return_mask: u64,
    }

    /// The process's userfaultfd (write-protection only, resolved by the kernel) and its
    /// `/proc/self/pagemap`, or `None` where the kernel offers neither.
    struct Kernel {
        uffd: OwnedFd,
        pagemap: std::fs::File,
    }

    fn kernel() -> Option<&'static Kernel> {
        static KERNEL: OnceLock<Option<Kernel>> = OnceLock::new();
        KERNEL
            .get_or_init(|| {
                // SAFETY: the userfaultfd syscall takes flags only; the result is checked.
                let fd = unsafe {
                    libc::syscall(
                        libc::SYS_userfaultfd,
                        libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY,
                    )
                };
                let fd = libc::c_int::try_from(fd).ok().filter(|fd| *fd >= 0)?;
                // SAFETY: `fd` is a fresh descriptor that nothing else owns.
                let uffd = unsafe { OwnedFd::from_raw_fd(fd) };
                let mut api = UffdioApi {
                    api: UFFD_API,
                    features: UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
                    ioctls: 0,
                };
                // SAFETY: UFFDIO_API reads and writes a `uffdio_api`.
                if unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_API, &mut api) } != 0 {
                    return None;
                }
                let pagemap = std::fs::File::open("/proc/self/pagemap").ok()?;
                Some(Kernel { uffd, pagemap })
            })
            .as_ref()
    }

    /// A canister heap's mapping, write-protected between executions, with the shadow
    /// of its committed content.
    pub(crate) struct Region {
        base: *mut u8,
        reserved: usize,
        page: usize,
        /// The committed heap; its length is the protected prefix of the mapping.
        shadow: Vec<u8>,
        /// False once the kernel refused a scan: the written pages are then found by
        /// comparing the heap with the shadow.
        tracked: bool,
        scratch: Vec<PageRegion>,
    }

    // SAFETY: the mapping is owned by this region and only touched through the runtime
    // that owns it, so it moves between threads like a `Vec<u8>`.
    unsafe impl Send for Region {}

    impl Region {
        /// Reserves a heap of up to `bytes`, or `None` when the kernel cannot track it
        /// (the caller copies heaps instead).
        pub fn new(bytes: usize) -> Option<Region> {
            let kernel = kernel()?;
            // SAFETY: sysconf has no preconditions.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
            let reserved = bytes.div_ceil(page).max(1) * page;
            // SAFETY: an anonymous private mapping with no address hint; checked below.
            let base = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    reserved,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return None;
            }
            let region = Region {
                base: base.cast(),
                reserved,
                page,
                shadow: Vec::new(),
                tracked: true,
                scratch: vec![PageRegion::default(); 256],
            };
            let mut register = UffdioRegister {
                range: UffdioRange {
                    start: base as u64,
                    len: reserved as u64,
                },
                mode: UFFDIO_REGISTER_MODE_WP,
                ioctls: 0,
            };
            // SAFETY: UFFDIO_REGISTER reads and writes a `uffdio_register` naming our
            // own mapping.
            if unsafe { libc::ioctl(kernel.uffd.as_raw_fd(), UFFDIO_REGISTER, &mut register) } != 0
            {
                return None;
            }
            Some(region)
        }

        /// The whole reservation, for `wasmi::Memory::new_static`.
        ///
        /// # Safety
        /// The slice lives as long as this region, not `'static`: the store holding the
        /// memory built on it must be dropped first.
        pub unsafe fn buffer(&self) -> &'static mut [u8] {
            // SAFETY: `base..base + reserved` is a live read-write mapping; the caller
            // bounds the lifetime (see above).
            unsafe { std::slice::from_raw_parts_mut(self.base, self.reserved) }
        }

        /// The mapping's first `len` bytes (at most the reservation).
        ///
        /// # Safety
        /// Only between executions, when nothing else reads or writes the heap, and not
        /// beyond the next call that may touch it.
        unsafe fn heap<'a>(&self, len: usize) -> &'a mut [u8] {
            // SAFETY: within the live mapping; exclusivity as the caller promises.
            unsafe { std::slice::from_raw_parts_mut(self.base, len.min(self.reserved)) }
        }

        /// Keeps what was written since the last commit or rollback: copies the written
        /// pages into the shadow, and brings pages the heap grew by under protection.
        pub fn commit(&mut self, heap_len: usize) {
            let protected = self.shadow.len();
            let written = self.written(true);
            // SAFETY: called between executions (see `Runtime`).
            let heap = unsafe { self.heap(heap_len.max(protected)) };
            for (start, end) in written {
                self.shadow[start..end].copy_from_slice(&heap[start..end]);
            }
            if heap.len() > protected {
                self.shadow.extend_from_slice(&heap[protected..]);
                if !self.write_protect(protected, heap.len() - protected) {
                    self.tracked = false;
                }
            }
        }

        /// Undoes what was written since the last commit or rollback, within the
        /// committed heap (the caller rebuilds an instance whose heap grew).
        pub fn roll_back(&mut self) {
            let protected = self.shadow.len();
            // List first and protect after the copy: the copy writes those pages again.
            let written = self.written(false);
            // SAFETY: called between executions (see `Runtime`).
            let heap = unsafe { self.heap(protected) };
            for &(start, end) in &written {
                heap[start..end].copy_from_slice(&self.shadow[start..end]);
            }
            if self.tracked && !written.is_empty() {
                let _ = self.written(true);
            }
        }

        /// The written byte ranges of the protected heap (page-aligned), protecting them
        /// again with `protect`.
        fn written(&mut self, protect: bool) -> Vec<(usize, usize)> {
            let len = self.shadow.len();
            if len == 0 {
                return Vec::new();
            }
            if self.tracked {
                if let Some(ranges) = self.scan(len, protect) {
                    return ranges;
                }
                self.tracked = false;
            }
            // Without the kernel's help: every page that differs from the shadow.
            // SAFETY: called between executions (see `Runtime`).
            let heap = unsafe { self.heap(len) };
            let mut ranges: Vec<(usize, usize)> = Vec::new();
            for start in (0..len).step_by(self.page) {
                let end = (start + self.page).min(len);
                if heap[start..end] != self.shadow[start..end] {
                    match ranges.last_mut() {
                        Some(last) if last.1 == start => last.1 = end,
                        _ => ranges.push((start, end)),
                    }
                }
            }
            ranges
        }

        fn scan(&mut self, len: usize, protect: bool) -> Option<Vec<(usize, usize)>> {
            let kernel = kernel()?;
            let base = self.base as u64;
            let end = base + len as u64;
            let mut ranges = Vec::new();
            let mut start = base;
            while start < end {
                let mut arg = PmScanArg {
                    size: std::mem::size_of::<PmScanArg>() as u64,
                    flags: PM_SCAN_CHECK_WPASYNC | if protect { PM_SCAN_WP_MATCHING } else { 0 },
                    start,
                    end,
                    vec: self.scratch.as_mut_ptr() as u64,
                    vec_len: self.scratch.len() as u64,
                    category_mask: PAGE_IS_WRITTEN,
                    return_mask: PAGE_IS_WRITTEN,
                    ..PmScanArg::default()
                };
                // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most `vec_len` entries
                // to `scratch`, which outlives the call.
                let found =
                    unsafe { libc::ioctl(kernel.pagemap.as_raw_fd(), PAGEMAP_SCAN, &mut arg) };
                let found = usize::try_from(found).ok()?;
                for region in self.scratch.iter().take(found) {
                    let from = usize::try_from(region.start.checked_sub(base)?).ok()?;
                    let to = usize::try_from(region.end.checked_sub(base)?).ok()?;
                    ranges.push((from, to.min(len)));
                }
                if arg.walk_end <= start {
                    return None;
                }
                start = arg.walk_end;
            }
            Some(ranges)
        }

        fn write_protect(&self, offset: usize, len: usize) -> bool {
            let Some(kernel) = kernel() else {
                return false;
            };
            let mut protect = UffdioWriteprotect {
                range: UffdioRange {
                    start: self.base as u64 + offset as u64,
                    len: len as u64,
                },
                mode: UFFDIO_WRITEPROTECT_MODE_WP,
            };
            // SAFETY: UFFDIO_WRITEPROTECT reads a `uffdio_writeprotect` naming a range of
            // our own registered mapping.
            unsafe { libc::ioctl(kernel.uffd.as_raw_fd(), UFFDIO_WRITEPROTECT, &mut protect) == 0 }
        }

        #[cfg(test)]
        pub fn is_tracked(&self) -> bool {
            self.tracked
        }
    }

    impl Drop for Region {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly the mapping `new` made (which also ends its
            // registration); the store using it has been dropped (see `buffer`).
            unsafe { libc::munmap(self.base.cast(), self.reserved) };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::Region;

        #[test]
        fn should_undo_writes_since_the_last_commit_and_keep_committed_ones() {
            let mut region = Region::new(1 << 20)
                .expect("userfaultfd write-protection (Linux 6.7+) to track the heap's pages");
            // SAFETY: the slice is dropped before the region.
            let heap = unsafe { region.buffer() };
            heap[..3 * 4096].fill(1);
            region.commit(16 * 4096);
            heap[10] = 2;
            heap[2 * 4096 + 5] = 4;
            region.roll_back();
            assert_eq!((heap[10], heap[2 * 4096 + 5]), (1, 1));
            heap[4096] = 9;
            region.commit(16 * 4096);
            heap[4096] = 8;
            heap[15 * 4096] = 8;
            region.roll_back();
            assert_eq!((heap[4096], heap[15 * 4096]), (9, 0));
            assert!(region.is_tracked(), "the kernel tracked every write");
        }
    }
}
