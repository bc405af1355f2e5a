// SPDX-License-Identifier: GPL-2.0

//! `/dev/sysnet`: a misc character device holding up to 128 named `u64` counters that
//! servers update and anyone may read as text, and wait on for change.
//!
//! The one idea: a write is parsed and applied to a scratch copy of the table under the
//! table's lock, and the copy replaces the table only if every line was good, so a write is
//! applied whole or not at all; a read from offset 0 formats a fresh snapshot under the same
//! lock into the open file's own buffer, and reads at later offsets page through that
//! snapshot, so a reader with a 4-byte buffer still sees one consistent table.
//!
//! Reading gives one `name value\n` line per counter, sorted by name. A write holds lines,
//! applied in order (`name`: 1 to 48 of `[a-z0-9_.]`; `N`: a decimal `u64`):
//!
//! - `name N` or `name +N` adds N, `name -N` subtracts N, `name =N` sets the value; a counter
//!   is created (at 0) on first use, up to 128;
//! - `reset` zeroes every counter and keeps the names; `reset NAME...` zeroes those;
//! - `delete NAME...` removes those counters.
//!
//! The whole write fails with `EINVAL`, changing nothing, on a malformed or blank line, a
//! result below 0 or above `u64::MAX`, or a write over 4 KiB; with `ENOENT` when `reset` or
//! `delete` names a counter that does not exist; with `ENOSPC` when it would create a 129th
//! counter. `reset` and `delete` are therefore not counter names.
//!
//! Every applied write bumps the table's generation. `poll`/`select`/`epoll` report a file
//! readable (`POLLIN`) until it has read from offset 0 at the current generation, so a
//! monitor sleeps until the next change instead of polling the device; `read` itself never
//! blocks, so `cat` behaves as on any other file. Files are always writable (`POLLOUT`).
//!
//! The node is mode 0644: anyone reads, only root writes (servers open it before dropping
//! privileges). There are no ioctls: every ioctl gets `ENOTTY`.
//!
//! One source builds against two kernel APIs; `Kbuild` picks one from the kernel's version.
//! From 6.13 (`--cfg sysnet_upstream_misc`) the device registers through the kernel's own
//! `kernel::miscdevice` and waits on a `kernel::sync::poll::PollCondVar`; 6.12 has neither, so
//! there this file wraps the C `miscdevice` and wait-queue APIs itself. Either way the module
//! [`boundary`] offers the same `MiscRegistration`, `WaitQueue` and `PollTable` to the
//! counter logic ([`Table`], [`parse_line`], [`Counters`]), which is safe Rust and the same on
//! both. All `unsafe` is in [`boundary`].

use kernel::{c_str, new_mutex, prelude::*, sync::Mutex};

use boundary::{MiscRegistration, PollTable, WaitQueue};

module! {
    type: SysnetModule,
    name: "sysnet",
    description: "/dev/sysnet: named u64 counters that servers update and anyone may read",
    license: "GPL",
}

/// Most counters the device holds; the 129th new name in a write gives `ENOSPC`.
const MAX_COUNTERS: usize = 128;
/// Longest counter name, in bytes.
const MAX_NAME: usize = 48;
/// Largest write accepted; anything longer gives `EINVAL` without being read.
const MAX_WRITE: usize = 4096;
/// Writes up to this size are copied to the stack instead of a fresh allocation.
const SMALL_WRITE: usize = 128;
/// Longest output line: name, space, 20 digits of `u64::MAX`, newline.
const MAX_LINE: usize = MAX_NAME + 1 + 20 + 1;
/// Largest snapshot, so a reader's buffer is allocated once at its full size.
const MAX_SNAPSHOT: usize = MAX_COUNTERS * MAX_LINE;

struct SysnetModule {
    _device: MiscRegistration<Counters>,
}

impl kernel::Module for SysnetModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let device = MiscRegistration::register(c_str!("sysnet"), 0o644, module, Counters::new()?)?;
        pr_info!("/dev/sysnet registered ({} counters max)\n", MAX_COUNTERS);
        Ok(Self { _device: device })
    }
}

impl Drop for SysnetModule {
    fn drop(&mut self) {
        pr_info!("/dev/sysnet removed\n");
    }
}

// ---------------------------------------------------------------------------------------
// The counter logic: safe Rust only.
// ---------------------------------------------------------------------------------------

/// One named counter. The name is stored inline so the table never allocates per counter.
#[derive(Clone, Copy)]
struct Counter {
    name: [u8; MAX_NAME],
    name_len: u8,
    value: u64,
}

impl Counter {
    const EMPTY: Counter = Counter {
        name: [0; MAX_NAME],
        name_len: 0,
        value: 0,
    };

    /// `name` has already passed [`valid_name`], so it fits; a longer one is cut.
    fn new(name: &[u8], value: u64) -> Counter {
        let mut c = Counter::EMPTY;
        // Element-wise copies (here and in `Table::copy_from`) have no length-mismatch
        // panic path: 6.12's objtool does not know that newer rustc's panic is `noreturn`.
        for (dst, src) in c.name.iter_mut().zip(name) {
            *dst = *src;
        }
        c.name_len = name.len().min(MAX_NAME) as u8;
        c.value = value;
        c
    }

    fn name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }
}

/// Counters sorted by name in a buffer allocated once at full size, so nothing allocates
/// while the lock is held and a lookup is a binary search.
///
/// # Invariants
///
/// `len <= MAX_COUNTERS == slots.len()`, and `slots[..len]` is sorted by name with no
/// duplicates.
struct Table {
    slots: KVec<Counter>,
    len: usize,
}

impl Table {
    fn new() -> Result<Table> {
        Ok(Table {
            slots: KVec::from_elem(Counter::EMPTY, MAX_COUNTERS, GFP_KERNEL)?,
            len: 0,
        })
    }

    fn live(&self) -> &[Counter] {
        &self.slots[..self.len]
    }

    fn copy_from(&mut self, other: &Table) {
        for (dst, src) in self.slots.iter_mut().zip(other.live()) {
            *dst = *src;
        }
        self.len = other.len;
    }

    fn find(&self, name: &[u8]) -> core::result::Result<usize, usize> {
        self.live().binary_search_by(|c| c.name().cmp(name))
    }

    /// The counter `name`, created at 0 if it is new.
    fn entry(&mut self, name: &[u8]) -> Result<&mut Counter> {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                if self.len == MAX_COUNTERS {
                    return Err(ENOSPC);
                }
                // Open a hole at `i` by shifting the tail right by one slot.
                self.slots[i..=self.len].rotate_right(1);
                self.slots[i] = Counter::new(name, 0);
                self.len += 1;
                i
            }
        };
        Ok(&mut self.slots[i])
    }

    /// Applies one parsed line; the caller discards the table on error.
    fn apply(&mut self, op: &Op<'_>) -> Result {
        match *op {
            Op::Add(name, n) => {
                let c = self.entry(name)?;
                c.value = c.value.checked_add(n).ok_or(EINVAL)?;
            }
            // Checked before a missing counter is created, so a refused line leaves the
            // table as it was (what lets `Tables::apply` skip the scratch copy).
            Op::Sub(name, n) => match self.find(name) {
                Ok(i) => {
                    let c = &mut self.slots[i];
                    c.value = c.value.checked_sub(n).ok_or(EINVAL)?;
                }
                Err(_) if n == 0 => {
                    self.entry(name)?;
                }
                Err(_) => return Err(EINVAL),
            },
            Op::Set(name, n) => self.entry(name)?.value = n,
            Op::Reset(b"") => {
                for c in &mut self.slots[..self.len] {
                    c.value = 0;
                }
            }
            Op::Reset(names) => {
                for name in names.split(|&b| b == b' ') {
                    let i = self.find(name).map_err(|_| ENOENT)?;
                    self.slots[i].value = 0;
                }
            }
            Op::Delete(names) => {
                for name in names.split(|&b| b == b' ') {
                    let i = self.find(name).map_err(|_| ENOENT)?;
                    // Close the hole by shifting the tail left by one slot.
                    self.slots[i..self.len].rotate_left(1);
                    self.len -= 1;
                }
            }
        }
        Ok(())
    }

    /// Appends the text form of the table to `out`, which has room for [`MAX_SNAPSHOT`].
    fn format_into(&self, out: &mut KVec<u8>) -> Result {
        for c in self.live() {
            let mut digits = [0u8; 20];
            out.extend_from_slice(c.name(), GFP_KERNEL)?;
            out.push(b' ', GFP_KERNEL)?;
            out.extend_from_slice(format_u64(c.value, &mut digits), GFP_KERNEL)?;
            out.push(b'\n', GFP_KERNEL)?;
        }
        Ok(())
    }
}

/// The decimal digits of `v`, written at the end of `buf`.
fn format_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

fn valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// One line of a write. Names are checked by [`parse_line`]; `Reset` and `Delete` hold
/// their names as one space-separated run (empty for a bare `reset`).
enum Op<'a> {
    Add(&'a [u8], u64),
    Sub(&'a [u8], u64),
    Set(&'a [u8], u64),
    Reset(&'a [u8]),
    Delete(&'a [u8]),
}

/// Words that start a command line, so no counter may have them as its name.
const RESET: &[u8] = b"reset";
const DELETE: &[u8] = b"delete";

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// `NAME[ NAME...]`, names separated by exactly one space.
fn valid_names(names: &[u8]) -> bool {
    names
        .split(|&b| b == b' ')
        .all(|n| valid_name(n) && n != RESET && n != DELETE)
}

/// Parses one line (exactly one space between words, nothing else); `None` when malformed,
/// including a number that does not fit in a `u64`.
fn parse_line(line: &[u8]) -> Option<Op<'_>> {
    if line == RESET {
        return Some(Op::Reset(b""));
    }
    let space = line.iter().position(|&b| b == b' ')?;
    let (word, rest) = (&line[..space], &line[space + 1..]);
    if word == RESET || word == DELETE {
        if !valid_names(rest) {
            return None;
        }
        return Some(if word == RESET {
            Op::Reset(rest)
        } else {
            Op::Delete(rest)
        });
    }
    if !valid_names(word) {
        return None;
    }
    match rest.first()? {
        b'+' => Some(Op::Add(word, parse_u64(&rest[1..])?)),
        b'-' => Some(Op::Sub(word, parse_u64(&rest[1..])?)),
        b'=' => Some(Op::Set(word, parse_u64(&rest[1..])?)),
        _ => Some(Op::Add(word, parse_u64(rest)?)),
    }
}

/// The live table, the scratch table a write is tried on, and the generation: the number
/// of writes applied, which tells a reader whether its last snapshot is stale.
struct Tables {
    live: Table,
    scratch: Table,
    generation: u64,
}

impl Tables {
    /// Applies one whole write, or nothing.
    fn apply(&mut self, request: &[u8]) -> Result {
        // One trailing newline ends the last line; anything else empty is a blank line.
        let body = request.strip_suffix(b"\n").unwrap_or(request);
        if body.is_empty() {
            return Err(EINVAL);
        }
        // One add, subtract or set (what servers send most) either fails before it
        // changes anything or succeeds whole: apply it in place, without the copy.
        if !body.contains(&b'\n') {
            let op = parse_line(body).ok_or(EINVAL)?;
            if matches!(op, Op::Add(..) | Op::Sub(..) | Op::Set(..)) {
                self.live.apply(&op)?;
                self.generation = self.generation.wrapping_add(1);
                return Ok(());
            }
        }
        self.scratch.copy_from(&self.live);
        for line in body.split(|&b| b == b'\n') {
            let op = parse_line(line).ok_or(EINVAL)?;
            self.scratch.apply(&op)?;
        }
        core::mem::swap(&mut self.live, &mut self.scratch);
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }
}

/// The device's shared state: every open file of `/dev/sysnet` reaches the same one.
#[pin_data]
struct Counters {
    #[pin]
    tables: Mutex<Tables>,
    /// Pollers waiting for the generation to move; woken after every applied write.
    #[pin]
    changed: WaitQueue,
}

impl Counters {
    fn new() -> Result<impl PinInit<Self, Error>> {
        let tables = Tables {
            live: Table::new()?,
            scratch: Table::new()?,
            generation: 0,
        };
        Ok(try_pin_init!(Counters {
            tables <- new_mutex!(tables),
            changed <- WaitQueue::new(c_str!("sysnet_changed")),
        }))
    }
}

/// What one open file remembers: the snapshot its reads page through, and the generation
/// that snapshot was taken at (`None` before the first read).
struct Snapshot {
    text: KVec<u8>,
    generation: Option<u64>,
}

#[pin_data]
struct Reader {
    #[pin]
    snapshot: Mutex<Snapshot>,
}

/// `EPOLLIN | EPOLLRDNORM` and `EPOLLOUT | EPOLLWRNORM` (include/uapi/linux/eventpoll.h).
const READABLE: u32 = 0x0001 | 0x0040;
const WRITABLE: u32 = 0x0004 | 0x0100;

impl FileOps for Counters {
    type Open = Reader;

    fn open(&self) -> impl PinInit<Reader, Error> {
        try_pin_init!(Reader {
            snapshot <- new_mutex!(Snapshot {
                text: KVec::new(),
                generation: None,
            }),
        })
    }

    fn read(&self, open: &Reader, mut out: impl ReadBuf, pos: &mut i64) -> Result<usize> {
        let mut snap = open.snapshot.lock();
        if *pos == 0 || snap.generation.is_none() {
            let mut text = KVec::with_capacity(MAX_SNAPSHOT, GFP_KERNEL)?;
            let tables = self.tables.lock();
            tables.live.format_into(&mut text)?;
            snap.generation = Some(tables.generation);
            drop(tables);
            snap.text = text;
        }
        let start = usize::try_from(*pos).map_err(|_| EINVAL)?;
        let end = start.saturating_add(out.len()).min(snap.text.len());
        if start >= end {
            return Ok(0);
        }
        let n = out.put(&snap.text[start..end])?;
        // `start + n <= end <= MAX_SNAPSHOT`, far below `i64::MAX`.
        *pos = (start + n) as i64;
        Ok(n)
    }

    fn write(&self, _open: &Reader, mut data: impl WriteBuf) -> Result<usize> {
        let len = data.len();
        if len > MAX_WRITE {
            return Err(EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        // A short write (one or two lines) is copied to the stack, a longer one to the heap.
        let mut small = [0u8; SMALL_WRITE];
        let mut large = KVec::new();
        let request: &[u8] = if len <= SMALL_WRITE {
            data.take(&mut small[..len])?;
            &small[..len]
        } else {
            large.reserve(len, GFP_KERNEL)?;
            data.take_all(&mut large)?;
            &large
        };
        self.tables.lock().apply(request)?;
        self.changed.wake_all();
        Ok(len)
    }

    fn poll(&self, open: &Reader, table: &PollTable<'_>) -> u32 {
        // Registered before the generation is compared, so a write that lands in between
        // wakes this poller rather than being missed.
        table.register(&self.changed);
        let seen = open.snapshot.lock().generation;
        let now = self.tables.lock().generation;
        if seen == Some(now) {
            WRITABLE
        } else {
            READABLE | WRITABLE
        }
    }
}

/// What a misc device does with its files; implemented in safe Rust, served by
/// [`boundary::MiscRegistration`].
trait FileOps: Sync + Sized + 'static {
    /// Per-open-file state, created by [`FileOps::open`] and dropped on the last close.
    type Open: Send + Sync + 'static;
    fn open(&self) -> impl PinInit<Self::Open, Error>;
    /// Copies up to `out.len()` bytes from offset `*pos`, advancing `*pos`.
    fn read(&self, open: &Self::Open, out: impl ReadBuf, pos: &mut i64) -> Result<usize>;
    /// Consumes a whole write; returns the bytes taken.
    fn write(&self, open: &Self::Open, data: impl WriteBuf) -> Result<usize>;
    /// Registers the caller's wait on `table` and returns the `EPOLL*` mask ready now.
    fn poll(&self, open: &Self::Open, table: &PollTable<'_>) -> u32;
}

/// The user memory a read copies into (`UserSliceWriter` on 6.12, `IovIterDest` after).
trait ReadBuf {
    fn len(&self) -> usize;
    /// Copies `bytes` to the front; returns how many were copied, never 0 for a non-empty
    /// `bytes` (`EFAULT` instead).
    fn put(&mut self, bytes: &[u8]) -> Result<usize>;
}

/// The user memory a write copies from (`UserSliceReader` on 6.12, `IovIterSource` after).
trait WriteBuf {
    fn len(&self) -> usize;
    /// Fills all of `buf` from the front of the write, or fails with `EFAULT`.
    fn take(&mut self, buf: &mut [u8]) -> Result;
    /// Appends the whole write to `buf`, or fails.
    fn take_all(self, buf: &mut KVec<u8>) -> Result;
}

// ---------------------------------------------------------------------------------------
// The boundary with the kernel's misc-device and wait-queue APIs: the only `unsafe` here.
// ---------------------------------------------------------------------------------------

/// 6.12: this module's own safe wrappers over the C `miscdevice` and wait-queue APIs, with
/// `extern "C"` trampolines (6.12's Rust has no misc-device abstraction).
#[cfg(not(sysnet_upstream_misc))]
mod boundary {
    use super::{FileOps, ReadBuf, WriteBuf};
    use core::{marker::PhantomData, marker::PhantomPinned, ptr};
    use kernel::{
        bindings,
        error::to_result,
        ffi::{c_char, c_int, c_long, c_uint, c_ulong},
        pin_init,
        prelude::*,
        str::CStr,
        types::Opaque,
        uaccess::{UserSlice, UserSliceReader, UserSliceWriter},
    };

    impl ReadBuf for UserSliceWriter {
        fn len(&self) -> usize {
            UserSliceWriter::len(self)
        }

        fn put(&mut self, bytes: &[u8]) -> Result<usize> {
            self.write_slice(bytes)?;
            Ok(bytes.len())
        }
    }

    impl WriteBuf for UserSliceReader {
        fn len(&self) -> usize {
            UserSliceReader::len(self)
        }

        fn take(&mut self, buf: &mut [u8]) -> Result {
            self.read_slice(buf)
        }

        fn take_all(self, buf: &mut KVec<u8>) -> Result {
            self.read_all(buf, GFP_KERNEL)
        }
    }

    /// The device's C structures and its shared state, in one pinned allocation so the
    /// pointers C keeps (`misc.fops`, `file->private_data`) stay valid.
    #[pin_data]
    struct MiscInner<T: FileOps> {
        #[pin]
        misc: Opaque<bindings::miscdevice>,
        #[pin]
        fops: Opaque<bindings::file_operations>,
        #[pin]
        data: T,
    }

    /// A registered misc device whose files are served by `T`.
    ///
    /// # Invariants
    ///
    /// `inner.misc` is registered with the misc subsystem, its `fops` points at `inner.fops`,
    /// whose `owner` is this module, and both stay registered until `drop`.
    pub(super) struct MiscRegistration<T: FileOps> {
        inner: Pin<KBox<MiscInner<T>>>,
    }

    /// What `file->private_data` points to while a file is open.
    struct OpenFile<T: FileOps> {
        device: *const MiscInner<T>,
        state: Pin<KBox<T::Open>>,
    }

    impl<T: FileOps> MiscRegistration<T> {
        pub(super) fn register(
            name: &'static CStr,
            mode: u16,
            module: &'static ThisModule,
            data: impl PinInit<T, Error>,
        ) -> Result<Self> {
            let inner = KBox::try_pin_init(
                try_pin_init!(MiscInner {
                    misc: Opaque::uninit(),
                    fops: Opaque::uninit(),
                    data <- data,
                }),
                GFP_KERNEL,
            )?;
            let fops = bindings::file_operations {
                owner: module.as_ptr(),
                open: Some(open_trampoline::<T>),
                release: Some(release_trampoline::<T>),
                read: Some(read_trampoline::<T>),
                write: Some(write_trampoline::<T>),
                poll: Some(poll_trampoline::<T>),
                llseek: Some(bindings::default_llseek),
                unlocked_ioctl: Some(ioctl_trampoline),
                compat_ioctl: Some(ioctl_trampoline),
                // bindgen's `Default` is all-zero: every other operation "not provided".
                ..Default::default()
            };
            let misc = bindings::miscdevice {
                minor: bindings::MISC_DYNAMIC_MINOR as c_int,
                name: name.as_char_ptr(),
                fops: inner.fops.get(),
                mode,
                // All-zero list, parent, groups and nodename: what an unregistered device has.
                ..Default::default()
            };
            // SAFETY: `inner` is pinned in a heap allocation that outlives the registration (it
            // is dropped after `misc_deregister` in `Drop`), so the pointers written into `misc`
            // stay valid. Nothing else can see `misc` or `fops` before `misc_register`, so plain
            // writes do not race. `name` is `'static`.
            let ret = unsafe {
                inner.fops.get().write(fops);
                inner.misc.get().write(misc);
                bindings::misc_register(inner.misc.get())
            };
            to_result(ret)?;
            // INVARIANT: `misc_register` succeeded with `fops` pointing at `inner.fops`.
            Ok(Self { inner })
        }
    }

    // SAFETY: after `register` the C structures are only touched by the misc core, under its own
    // lock, and by the VFS through the trampolines; `T` itself is `Sync`. Moving the handle
    // between threads moves only the pointer to the pinned allocation.
    unsafe impl<T: FileOps> Send for MiscRegistration<T> {}
    // SAFETY: `&MiscRegistration` gives no access to anything; see `Send`.
    unsafe impl<T: FileOps> Sync for MiscRegistration<T> {}

    impl<T: FileOps> Drop for MiscRegistration<T> {
        fn drop(&mut self) {
            // SAFETY: by the type invariant the device is registered. After this returns no new
            // open can start; files already open hold a reference on the module (`fops.owner`),
            // so module exit, and with it this drop, cannot run while any is open.
            unsafe { bindings::misc_deregister(self.inner.misc.get()) };
        }
    }

    /// # Safety
    ///
    /// Called by the VFS with `file->private_data` set by `misc_open` to our `miscdevice`,
    /// which lives inside a `MiscInner<T>` (only `MiscRegistration<T>` registers such fops).
    unsafe extern "C" fn open_trampoline<T: FileOps>(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int {
        // SAFETY: `file` is valid for the call; `misc_open` stored our `miscdevice` pointer in
        // `private_data`; `Opaque` is `repr(transparent)` over it, and it is the `misc` field
        // of a `MiscInner<T>`, so `container_of` yields the enclosing, pinned, live one.
        let device = unsafe {
            let misc = (*file).private_data.cast::<Opaque<bindings::miscdevice>>();
            kernel::container_of!(misc, MiscInner<T>, misc)
        };
        // SAFETY: `device` is live while the module is loaded, and an open file holds the module.
        let data = unsafe { &(*device).data };
        let state = match KBox::try_pin_init(data.open(), GFP_KERNEL) {
            Ok(state) => state,
            Err(e) => return e.to_errno(),
        };
        let open = match KBox::new(OpenFile { device, state }, GFP_KERNEL) {
            Ok(open) => open,
            Err(_) => return ENOMEM.to_errno(),
        };
        // SAFETY: `file` is valid; the VFS hands `private_data` back to read, write and release,
        // and release turns it back into the box.
        unsafe { (*file).private_data = KBox::into_raw(open).cast() };
        0
    }

    /// # Safety
    ///
    /// `file` went through [`open_trampoline`] successfully and is not used again.
    unsafe extern "C" fn release_trampoline<T: FileOps>(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int {
        // SAFETY: `private_data` is the `KBox<OpenFile<T>>` leaked by `open_trampoline`, and
        // release is the last call for this file, so ownership can be taken back and dropped.
        drop(unsafe { KBox::from_raw((*file).private_data.cast::<OpenFile<T>>()) });
        0
    }

    /// The device's shared state and this file's state, from `file->private_data`.
    ///
    /// # Safety
    ///
    /// `file` went through [`open_trampoline`] successfully and has not been released; the
    /// references must not outlive the current file operation.
    unsafe fn file_state<'a, T: FileOps>(file: *mut bindings::file) -> (&'a T, &'a T::Open) {
        // SAFETY: per the function's contract, `private_data` is a live `OpenFile<T>`, whose
        // `device` is live while the file is open (the file holds the module).
        unsafe {
            let open = &*(*file).private_data.cast::<OpenFile<T>>();
            (&(*open.device).data, &open.state)
        }
    }

    /// # Safety
    ///
    /// Called by the VFS on an open file with a user buffer of `count` bytes and a valid `ppos`.
    unsafe extern "C" fn read_trampoline<T: FileOps>(
        file: *mut bindings::file,
        buf: *mut c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        if ppos.is_null() {
            return EINVAL.to_errno() as isize;
        }
        // SAFETY: the file is open for the duration of this call.
        let (data, open) = unsafe { file_state::<T>(file) };
        let out = UserSlice::new(buf as usize, count).writer();
        // SAFETY: `ppos` is non-null and valid for this call; the VFS owns it, nothing else
        // writes it concurrently.
        let mut pos = unsafe { *ppos };
        match data.read(open, out, &mut pos) {
            Ok(n) => {
                // SAFETY: as above.
                unsafe { *ppos = pos };
                n as isize
            }
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS on an open file with a user buffer of `count` bytes.
    unsafe extern "C" fn write_trampoline<T: FileOps>(
        file: *mut bindings::file,
        buf: *const c_char,
        count: usize,
        _ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the file is open for the duration of this call.
        let (data, open) = unsafe { file_state::<T>(file) };
        let input = UserSlice::new(buf as usize, count).reader();
        match data.write(open, input) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// The device defines no ioctls.
    extern "C" fn ioctl_trampoline(
        _file: *mut bindings::file,
        _cmd: c_uint,
        _arg: c_ulong,
    ) -> c_long {
        ENOTTY.to_errno() as c_long
    }

    /// # Safety
    ///
    /// Called by the VFS on an open file; `table` is null or a valid poll table for this call.
    unsafe extern "C" fn poll_trampoline<T: FileOps>(
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> bindings::__poll_t {
        // SAFETY: the file is open for the duration of this call.
        let (data, open) = unsafe { file_state::<T>(file) };
        // INVARIANT: the VFS passes this call's file and poll table (or null).
        let table = PollTable {
            file,
            table,
            _call: PhantomData,
        };
        data.poll(open, &table)
    }

    /// A wait queue head that pollers register on and writers wake.
    ///
    /// # Invariants
    ///
    /// `head` was initialised by `__init_waitqueue_head` and, being pinned, never moves.
    #[pin_data]
    pub(super) struct WaitQueue {
        #[pin]
        head: Opaque<bindings::wait_queue_head>,
        #[pin]
        _pin: PhantomPinned,
    }

    /// The lockdep class of every [`WaitQueue`]'s spinlock; lockdep wants static storage.
    struct WaitQueueClass(Opaque<bindings::lock_class_key>);
    // SAFETY: a `lock_class_key` is only touched by lockdep, which synchronises itself.
    unsafe impl Sync for WaitQueueClass {}
    static WAIT_QUEUE_CLASS: WaitQueueClass = WaitQueueClass(Opaque::uninit());

    // SAFETY: a `wait_queue_head` is protected by its own spinlock, so it may be used from any
    // thread, concurrently.
    unsafe impl Send for WaitQueue {}
    // SAFETY: see `Send`.
    unsafe impl Sync for WaitQueue {}

    impl WaitQueue {
        pub(super) fn new(name: &'static CStr) -> impl PinInit<Self> {
            pin_init!(WaitQueue {
                // SAFETY: `slot` is valid, pinned memory for the head; `name` and the class key
                // are static, as `__init_waitqueue_head` requires.
                head <- Opaque::ffi_init(|slot| unsafe {
                    bindings::__init_waitqueue_head(slot, name.as_char_ptr(), WAIT_QUEUE_CLASS.0.get())
                }),
                _pin: PhantomPinned,
            })
        }

        /// Wakes every waiter (`wake_up_all`).
        pub(super) fn wake_all(&self) {
            // SAFETY: by the type invariant `head` is an initialised wait queue head; a null
            // key wakes pollers for any event.
            unsafe {
                bindings::__wake_up(self.head.get(), bindings::TASK_NORMAL, 0, ptr::null_mut())
            };
        }
    }

    /// The poll table of one `poll` call on one file.
    ///
    /// # Invariants
    ///
    /// `file` is the open file being polled and `table` is null or the poll table the VFS
    /// passed with it; both are valid for the lifetime `'a` of the call.
    pub(super) struct PollTable<'a> {
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
        _call: PhantomData<&'a ()>,
    }

    impl PollTable<'_> {
        /// Adds the caller to `queue`, as C's `poll_wait` does.
        pub(super) fn register(&self, queue: &WaitQueue) {
            if self.table.is_null() {
                return;
            }
            // SAFETY: by the type invariant `table` is a valid poll table for this call.
            let qproc = unsafe { (*self.table)._qproc };
            if let Some(qproc) = qproc {
                // SAFETY: `file` and `table` are valid for the call; `queue` outlives every
                // registration: it belongs to the device, which the open file keeps loaded, and
                // the poll core removes its entries before the file's release.
                unsafe { qproc(self.file, queue.head.get(), self.table) };
            }
        }
    }
}

/// 6.13 and later: `kernel::miscdevice` registers the device and builds the file operations
/// (vm/7.2/ adds what 7.2's lacks: the node's mode, `fops.owner` and `poll`), and a
/// `PollCondVar` is the wait queue. Left here: finding the device's data from an open file.
#[cfg(sysnet_upstream_misc)]
mod boundary {
    use super::{FileOps, ReadBuf, WriteBuf};
    use core::ptr;
    use kernel::{
        fs::{File, Kiocb},
        iov::{IovIterDest, IovIterSource},
        miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
        prelude::*,
        str::CStr,
        sync::{
            poll::{PollCondVar, PollTable as KernelPollTable},
            static_lock_class,
        },
    };

    impl ReadBuf for &mut IovIterDest<'_> {
        fn len(&self) -> usize {
            IovIterDest::len(self)
        }

        fn put(&mut self, bytes: &[u8]) -> Result<usize> {
            match self.copy_to_iter(bytes) {
                0 if !bytes.is_empty() => Err(EFAULT),
                n => Ok(n),
            }
        }
    }

    impl WriteBuf for &mut IovIterSource<'_> {
        fn len(&self) -> usize {
            IovIterSource::len(self)
        }

        fn take(&mut self, buf: &mut [u8]) -> Result {
            if self.copy_from_iter(buf) == buf.len() {
                Ok(())
            } else {
                Err(EFAULT)
            }
        }

        fn take_all(self, buf: &mut KVec<u8>) -> Result {
            let want = IovIterSource::len(self);
            if self.copy_from_iter_vec(buf, GFP_KERNEL)? == want {
                Ok(())
            } else {
                Err(EFAULT)
            }
        }
    }

    /// The registration and the device's shared state, in one pinned allocation.
    #[pin_data]
    struct Inner<T: FileOps> {
        /// Declared first, so dropped first: no file can be opened once `data` goes.
        #[pin]
        registration: MiscDeviceRegistration<OpenFile<T>>,
        #[pin]
        data: T,
    }

    /// A registered misc device whose files are served by `T`.
    pub(super) struct MiscRegistration<T: FileOps> {
        _inner: Pin<KBox<Inner<T>>>,
    }

    impl<T: FileOps> MiscRegistration<T> {
        pub(super) fn register(
            name: &'static CStr,
            mode: u16,
            module: &'static ThisModule,
            data: impl PinInit<T, Error>,
        ) -> Result<Self> {
            let options = MiscDeviceOptions {
                name,
                mode,
                owner: Some(module),
            };
            // `data` is initialised before the device is registered, so before any open.
            let inner = KBox::try_pin_init(
                try_pin_init!(Inner {
                    data <- data,
                    registration <- MiscDeviceRegistration::register(options),
                }),
                GFP_KERNEL,
            )?;
            Ok(Self { _inner: inner })
        }
    }

    /// What `file->private_data` holds while a file is open.
    ///
    /// # Invariants
    ///
    /// `device` points at the `data` of the live `Inner<T>` whose registration opened the file.
    #[pin_data]
    struct OpenFile<T: FileOps> {
        device: *const T,
        #[pin]
        state: T::Open,
    }

    // SAFETY: `device` is only used for shared access to a `T`, which is `Sync`; `state` is
    // `Send`.
    unsafe impl<T: FileOps> Send for OpenFile<T> {}
    // SAFETY: see `Send`; `state` is `Sync`.
    unsafe impl<T: FileOps> Sync for OpenFile<T> {}

    impl<T: FileOps> OpenFile<T> {
        /// The device's shared state and this file's state.
        fn parts(&self) -> (&T, &T::Open) {
            // SAFETY: by the type invariant `device` points at live, pinned data, and it stays
            // live while this file is open: the file holds a reference on the module
            // (`fops.owner`), and only module exit drops the `Inner<T>`.
            (unsafe { &*self.device }, &self.state)
        }
    }

    #[vtable]
    impl<T: FileOps> MiscDevice for OpenFile<T> {
        type Ptr = Pin<KBox<Self>>;

        fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr> {
            let misc = ptr::from_ref(misc).cast_mut();
            // SAFETY: every `MiscDeviceRegistration<OpenFile<T>>` is the `registration` field
            // of an `Inner<T>` (only `MiscRegistration::register` makes one), pinned and live
            // while the misc core opens one of its files.
            let inner = unsafe { &*kernel::container_of!(misc, Inner<T>, registration) };
            // INVARIANT: `device` is the `data` of the `Inner<T>` that opened this file.
            KBox::try_pin_init(
                try_pin_init!(OpenFile {
                    device: ptr::from_ref(&inner.data),
                    state <- inner.data.open(),
                }),
                GFP_KERNEL,
            )
        }

        fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
            let (data, open) = kiocb.file().get_ref().parts();
            data.read(open, iov, kiocb.ki_pos_mut())
        }

        fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
            let (data, open) = kiocb.file().get_ref().parts();
            data.write(open, iov)
        }

        fn poll(this: Pin<&Self>, file: &File, table: KernelPollTable<'_>) -> u32 {
            let (data, open) = this.get_ref().parts();
            data.poll(open, &PollTable { file, table })
        }
    }

    /// A wait queue that pollers register on and writers wake.
    #[pin_data]
    pub(super) struct WaitQueue {
        #[pin]
        cv: PollCondVar,
    }

    impl WaitQueue {
        pub(super) fn new(name: &'static CStr) -> impl PinInit<Self> {
            pin_init!(WaitQueue {
                cv <- PollCondVar::new(name, static_lock_class!()),
            })
        }

        /// Wakes every waiter.
        pub(super) fn wake_all(&self) {
            self.cv.notify_all();
        }
    }

    /// The poll table of one `poll` call on one file.
    pub(super) struct PollTable<'a> {
        file: &'a File,
        table: KernelPollTable<'a>,
    }

    impl PollTable<'_> {
        /// Adds the caller to `queue`, as C's `poll_wait` does.
        pub(super) fn register(&self, queue: &WaitQueue) {
            self.table.register_wait(self.file, &queue.cv);
        }
    }
}

/// The pure logic, run by KUnit when the module loads (kernels with `#[kunit_tests]` and
/// `CONFIG_KUNIT=y`, i.e. the 7.2 VM): `parse_line` and the table, without a device.
#[cfg(sysnet_upstream_misc)]
#[kunit_tests(sysnet)]
mod tests {
    use super::*;

    fn apply(tables: &mut Tables, request: &[u8]) -> Result {
        tables.apply(request)
    }

    fn text(tables: &Tables) -> Result<KVec<u8>> {
        let mut out = KVec::with_capacity(MAX_SNAPSHOT, GFP_KERNEL)?;
        tables.live.format_into(&mut out)?;
        Ok(out)
    }

    fn new_tables() -> Result<Tables> {
        Ok(Tables {
            live: Table::new()?,
            scratch: Table::new()?,
            generation: 0,
        })
    }

    #[test]
    fn parse_line_grammar() {
        assert!(matches!(parse_line(b"a.b 5"), Some(Op::Add(b"a.b", 5))));
        assert!(matches!(parse_line(b"a +5"), Some(Op::Add(b"a", 5))));
        assert!(matches!(parse_line(b"a -5"), Some(Op::Sub(b"a", 5))));
        assert!(matches!(parse_line(b"a =0"), Some(Op::Set(b"a", 0))));
        assert!(matches!(
            parse_line(b"a 18446744073709551615"),
            Some(Op::Add(b"a", u64::MAX))
        ));
        assert!(matches!(parse_line(b"reset"), Some(Op::Reset(b""))));
        assert!(matches!(parse_line(b"reset a b"), Some(Op::Reset(b"a b"))));
        assert!(matches!(parse_line(b"delete a"), Some(Op::Delete(b"a"))));
        const BAD: &[&[u8]] = &[
            b"",
            b"a",
            b"a ",
            b"a  1",
            b" a 1",
            b"a 1 ",
            b"A 1",
            b"a-b 1",
            b"a - 1",
            b"a +-1",
            b"a =",
            b"a 0x1",
            b"a 18446744073709551616",
            b"reset ",
            b"delete",
            b"delete ",
            b"reset reset",
            b"a 1\r",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1",
        ];
        for bad in BAD {
            assert!(parse_line(bad).is_none());
        }
    }

    #[test]
    fn table_applies_whole_writes_only() -> Result {
        let mut t = new_tables()?;
        apply(&mut t, b"zeta 2\nalpha 1\n")?;
        apply(&mut t, b"alpha +41")?;
        assert_eq!(&text(&t)?[..], &b"alpha 42\nzeta 2\n"[..]);
        // Below 0, above u64::MAX, a bad line, an unknown name: nothing changes.
        assert!(apply(&mut t, b"alpha -43\n").is_err());
        assert!(apply(&mut t, b"alpha 1\nzeta 18446744073709551614\n").is_err());
        assert!(apply(&mut t, b"alpha 1\nbad line\n").is_err());
        assert!(apply(&mut t, b"alpha 1\ndelete nothere\n") == Err(ENOENT));
        assert_eq!(&text(&t)?[..], &b"alpha 42\nzeta 2\n"[..]);
        assert_eq!(t.generation, 2);
        apply(&mut t, b"reset\nzeta =7\n")?;
        assert_eq!(&text(&t)?[..], &b"alpha 0\nzeta 7\n"[..]);
        apply(&mut t, b"delete alpha\n")?;
        assert_eq!(&text(&t)?[..], &b"zeta 7\n"[..]);
        Ok(())
    }

    #[test]
    fn table_holds_128_counters() -> Result {
        let mut t = new_tables()?;
        let mut name = *b"c000 1";
        for i in 0..MAX_COUNTERS {
            name[1] = b'0' + (i / 100) as u8;
            name[2] = b'0' + (i / 10 % 10) as u8;
            name[3] = b'0' + (i % 10) as u8;
            apply(&mut t, &name)?;
        }
        assert_eq!(t.live.len, MAX_COUNTERS);
        assert!(apply(&mut t, b"new 1") == Err(ENOSPC));
        apply(&mut t, b"c000 1")?;
        apply(&mut t, b"delete c127\nnew 1\n")?;
        assert_eq!(t.live.len, MAX_COUNTERS);
        Ok(())
    }
}
