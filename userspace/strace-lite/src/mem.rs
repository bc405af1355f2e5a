//! Reading the tracee's memory with `process_vm_readv`.
//!
//! One syscall moves a whole buffer, where `PTRACE_PEEKDATA` would need one per word.
//! The kernel refuses a remote range that crosses into an unmapped page as a whole,
//! so NUL-terminated strings are read page by page: a path near the end of a mapping
//! still decodes.

const PAGE: u64 = 4096;

/// Copies up to `buf.len()` bytes at `addr` in `pid`; returns how many arrived.
/// A short count means the range ran into memory the tracee cannot read.
pub fn read(pid: i32, addr: u64, buf: &mut [u8]) -> usize {
    if addr == 0 || buf.is_empty() {
        return 0;
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which we own mutably for the call's duration;
    // `remote` is only interpreted in the tracee's address space by the kernel.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n > 0 {
        return n as usize;
    }
    if buf.len() as u64 > PAGE - (addr % PAGE) {
        // The whole range failed: retry the part that stays within the first page
        // and the following ones one page at a time.
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr + done as u64;
            let chunk = ((PAGE - a % PAGE) as usize).min(buf.len() - done);
            let local = libc::iovec {
                iov_base: buf[done..].as_mut_ptr().cast(),
                iov_len: chunk,
            };
            let remote = libc::iovec {
                iov_base: a as *mut libc::c_void,
                iov_len: chunk,
            };
            // SAFETY: as above; `local` covers `buf[done..done + chunk]`.
            let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
            if n <= 0 {
                break;
            }
            done += n as usize;
            if (n as usize) < chunk {
                break;
            }
        }
        return done;
    }
    0
}

/// Reads a `T`-sized plain value (integers, C structs of integers).
pub fn read_u32(pid: i32, addr: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    (read(pid, addr, &mut b) == 4).then(|| u32::from_ne_bytes(b))
}

pub fn read_u64(pid: i32, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (read(pid, addr, &mut b) == 8).then(|| u64::from_ne_bytes(b))
}

/// Reads a NUL-terminated string of at most `max` bytes into `out` (cleared first).
/// Returns `Some(true)` when the NUL was found, `Some(false)` when `max` was hit
/// first, `None` when nothing at `addr` was readable.
pub fn read_cstr(pid: i32, addr: u64, max: usize, out: &mut Vec<u8>) -> Option<bool> {
    out.clear();
    if addr == 0 {
        return None;
    }
    let mut a = addr;
    let mut chunk = [0u8; 256];
    while out.len() < max {
        // Stay inside one page per read so an unmapped next page cannot fail it.
        let room = (PAGE - a % PAGE) as usize;
        let want = room.min(chunk.len()).min(max - out.len() + 1);
        let got = read(pid, a, &mut chunk[..want]);
        if got == 0 {
            return if out.is_empty() { None } else { Some(false) };
        }
        if let Some(z) = chunk[..got].iter().position(|&c| c == 0) {
            out.extend_from_slice(&chunk[..z]);
            return Some(true);
        }
        out.extend_from_slice(&chunk[..got]);
        a += got as u64;
    }
    out.truncate(max);
    Some(false)
}
