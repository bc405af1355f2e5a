//! The one write path: a connection's outbound queue of byte chunks and file ranges.
//!
//! The queue is advanced only by the count the kernel returns, so a short write leaves
//! the unwritten tail at the front, `EINTR` retries, and `EAGAIN` stops with the queue
//! intact for the next writable event. Consecutive byte chunks leave in one
//! `sendmsg` (gather write; a lone chunk in one `send`); file ranges leave with
//! `sendfile(2)`.

use super::cvt_size;
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;

/// How many chunks one gather write takes at most (well under `IOV_MAX`).
const MAX_IOV: usize = 64;
/// How many write calls one [`OutQueue::flush`] makes at most, so one fast reader of a
/// large download cannot starve the other connections of a single-threaded loop.
const MAX_CALLS: usize = 16;
/// The largest range handed to one `sendfile` call.
const SENDFILE_MAX: u64 = 1 << 30;
/// Chunks this small are copied into a shared tail buffer instead of queued on their
/// own: a chat fan-out of thousands of 30-byte lines then leaves in a few large
/// writes rather than one 64-entry gather write per 2 KB.
const COALESCE_MAX: usize = 1024;
/// A tail buffer stops growing past this; the next small chunk starts a new one.
const COALESCE_CAP: usize = 64 * 1024;

#[derive(Debug)]
enum Chunk {
    Bytes(Bytes),
    /// Small chunks copied together; `sent` bytes from the start are already written.
    Owned {
        buf: Vec<u8>,
        sent: usize,
    },
    File {
        file: Arc<File>,
        offset: u64,
        remaining: u64,
    },
}

/// What one [`OutQueue::flush`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flush {
    /// Bytes the kernel accepted during this call.
    pub written: usize,
    /// The queue is empty.
    pub done: bool,
}

/// A connection's pending output, in the order it was queued.
#[derive(Debug, Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes held in memory (what the slow-reader limit counts).
    mem: usize,
    /// File bytes still to stream.
    file_bytes: u64,
}

impl OutQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.mem += data.len();
        if data.len() <= COALESCE_MAX {
            match self.chunks.back_mut() {
                Some(Chunk::Owned { buf, .. }) if buf.len() + data.len() <= COALESCE_CAP => {
                    buf.extend_from_slice(&data);
                    return;
                }
                // An empty queue: a request's reply, most likely written whole by the
                // flush that follows. Queued as it is, it costs no copy; a chunk that
                // follows it starts the shared tail buffer.
                None => {
                    self.chunks.push_back(Chunk::Bytes(data));
                    return;
                }
                _ => {}
            }
            let mut buf = Vec::with_capacity(data.len().max(512));
            buf.extend_from_slice(&data);
            self.chunks.push_back(Chunk::Owned { buf, sent: 0 });
            return;
        }
        self.chunks.push_back(Chunk::Bytes(data));
    }

    pub fn push_file(&mut self, file: impl Into<Arc<File>>, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.file_bytes += len;
        self.chunks.push_back(Chunk::File {
            file: file.into(),
            offset,
            remaining: len,
        });
    }

    /// Moves everything queued in `other` to the end of this queue.
    pub fn append(&mut self, other: &mut OutQueue) {
        self.mem += other.mem;
        self.file_bytes += other.file_bytes;
        self.chunks.append(&mut other.chunks);
        other.mem = 0;
        other.file_bytes = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Bytes held in memory, waiting to be written.
    pub fn mem_bytes(&self) -> usize {
        self.mem
    }

    /// File bytes still to stream.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Drops everything queued (the connection is going away).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.mem = 0;
        self.file_bytes = 0;
    }

    /// Writes as much as the socket takes now. `Ok` with `done == false` means the
    /// socket is full (or this call's fairness budget is spent): wait until writable.
    /// An `Err` is fatal for the connection (`EPIPE`, `ECONNRESET`, a file that shrank).
    pub fn flush(&mut self, sock: BorrowedFd<'_>) -> io::Result<Flush> {
        let mut written = 0usize;
        for _ in 0..MAX_CALLS {
            let res = match self.chunks.front_mut() {
                None => break,
                Some(Chunk::File {
                    file,
                    offset,
                    remaining,
                }) => match send_file(sock, file, offset, remaining) {
                    Ok(n) => {
                        let finished = *remaining == 0;
                        self.file_bytes -= n as u64;
                        if finished {
                            self.chunks.pop_front();
                        }
                        Ok(n)
                    }
                    Err(e) => Err(e),
                },
                Some(_) => self.send_bytes(sock),
            };
            match res {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Flush {
                        written,
                        done: false,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Flush {
            written,
            done: self.chunks.is_empty(),
        })
    }

    /// One write of the leading byte chunks (a gather write when there are several);
    /// advances by what was written.
    fn send_bytes(&mut self, sock: BorrowedFd<'_>) -> io::Result<usize> {
        let single: Option<&[u8]> = match (self.chunks.len(), self.chunks.front()) {
            (1, Some(Chunk::Bytes(b))) => Some(b),
            (1, Some(Chunk::Owned { buf, sent })) => Some(&buf[*sent..]),
            _ => None,
        };
        if let Some(part) = single {
            // SAFETY: `part` is a live slice of `part.len()` bytes owned by the queue,
            // untouched until the call returns; `sock` is borrowed and open.
            // MSG_NOSIGNAL: a closed peer is EPIPE, not a SIGPIPE.
            let res = unsafe {
                libc::send(
                    sock.as_raw_fd(),
                    part.as_ptr().cast(),
                    part.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            let n = cvt_size(res)?;
            self.advance(n);
            return Ok(n);
        }
        let mut iov: [libc::iovec; MAX_IOV] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV];
        let mut n_iov = 0;
        for chunk in self.chunks.iter().take(MAX_IOV) {
            let part: &[u8] = match chunk {
                Chunk::Bytes(b) => b,
                Chunk::Owned { buf, sent } => &buf[*sent..],
                Chunk::File { .. } => break,
            };
            iov[n_iov] = libc::iovec {
                iov_base: part.as_ptr() as *mut libc::c_void,
                iov_len: part.len(),
            };
            n_iov += 1;
        }
        // A response head followed by a file: MSG_MORE lets the head ride in the same
        // segment as the file's first bytes (nginx's tcp_nopush) instead of leaving as
        // a small packet of its own; the sendfile that follows pushes both.
        let more = match self.chunks.get(n_iov) {
            Some(Chunk::File { .. }) => libc::MSG_MORE,
            _ => 0,
        };
        // SAFETY: an all-zero msghdr is a valid value of that plain C struct.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n_iov;
        // SAFETY: every iovec points into a `Bytes` owned by `self.chunks`, which is
        // not touched until the call returns; MSG_NOSIGNAL turns a closed peer into
        // EPIPE instead of killing the process with SIGPIPE.
        let res = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL | more) };
        let n = cvt_size(res)?;
        self.advance(n);
        Ok(n)
    }

    /// Drops `n` written bytes from the front of the leading byte chunks.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let left = match self.chunks.front_mut() {
                Some(Chunk::Bytes(b)) => b.len(),
                Some(Chunk::Owned { buf, sent }) => buf.len() - *sent,
                _ => break,
            };
            if left <= n {
                n -= left;
                self.mem -= left;
                self.chunks.pop_front();
                continue;
            }
            match self.chunks.front_mut() {
                Some(Chunk::Bytes(b)) => b.advance(n),
                Some(Chunk::Owned { sent, .. }) => *sent += n,
                _ => {}
            }
            self.mem -= n;
            n = 0;
        }
    }
}

fn send_file(
    sock: BorrowedFd<'_>,
    file: &File,
    offset: &mut u64,
    remaining: &mut u64,
) -> io::Result<usize> {
    let count = (*remaining).min(SENDFILE_MAX) as usize;
    let mut off = *offset as libc::off_t;
    // SAFETY: both descriptors are open for the call (`sock` borrowed, `file` owned by
    // the queue) and `off` is a live, writable off_t.
    let res = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    let n = cvt_size(res)?;
    if n == 0 {
        // The file is shorter than promised: sending anything else in its place
        // would corrupt the stream.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "sendfile: file ended before the queued range",
        ));
    }
    *offset += n as u64;
    *remaining -= n as u64;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn interleaves_bytes_and_files_in_order_through_short_writes() {
        let (a, mut b) = pair();
        let mut f = tempfile::tempfile().unwrap();
        let file_data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&file_data).unwrap();

        let mut q = OutQueue::new();
        let mut expect = Vec::new();
        for i in 0..200u32 {
            // Alternate chunks below and above the coalescing threshold.
            let chunk = format!("line {i}\n").repeat(if i % 3 == 0 { 5 } else { 150 });
            expect.extend_from_slice(chunk.as_bytes());
            q.push_bytes(Bytes::from(chunk));
            if i % 50 == 0 {
                q.push_file(f.try_clone().unwrap(), 1000, 200_000);
                expect.extend_from_slice(&file_data[1000..201_000]);
            }
        }
        q.push_bytes(Bytes::new());
        assert_eq!(q.file_bytes(), 4 * 200_000);

        // The reader starts only once the writer has met a full socket buffer, so the
        // short-write path runs however fast the reader would have drained.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let _ = wait.recv();
            let mut got = Vec::new();
            let mut buf = [0u8; 977];
            loop {
                match b.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("read: {e}"),
                }
            }
            got
        });
        let mut saw_block = false;
        loop {
            let f = q.flush(a.as_fd()).unwrap();
            if f.done {
                break;
            }
            if !saw_block {
                let _ = go.send(());
            }
            saw_block = true;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Never blocked: let the reader go anyway, so the checks below can fail.
        let _ = go.send(());
        assert_eq!(q.mem_bytes(), 0);
        assert_eq!(q.file_bytes(), 0);
        drop(a);
        let got = reader.join().unwrap();
        assert!(
            saw_block,
            "the socket buffer should have filled at least once"
        );
        assert_eq!(got.len(), expect.len());
        assert!(got == expect, "bytes reordered or corrupted");
    }

    #[test]
    fn a_file_shorter_than_promised_is_an_error() {
        let (a, _b) = pair();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"short").unwrap();
        let mut q = OutQueue::new();
        q.push_file(f, 0, 100);
        let err = q.flush(a.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_closed_peer_is_epipe_not_sigpipe() {
        let (a, b) = pair();
        drop(b);
        let mut q = OutQueue::new();
        q.push_bytes(Bytes::from_static(b"hello"));
        let err = q.flush(a.as_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    }
}
