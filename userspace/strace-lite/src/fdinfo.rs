//! `-y` / `-yy`: what a descriptor of the tracee refers to, printed after its number.
//!
//! `-y` prints the link target of `/proc/PID/fd/N` (`3</etc/hosts>`, `4<socket:[1234]>`).
//! `-yy` adds what strace adds: the device number of a device node (`</dev/null<char
//! 1:3>>`) and a socket's protocol and endpoints (`<TCP:[127.0.0.1:80->127.0.0.1:4000]>`,
//! `<UNIX-STREAM:[1234->1235]>`). The protocol's name comes from the socket's
//! `system.sockprotoname` attribute; inet endpoints from the tracee's own
//! `/proc/PID/net/{tcp,tcp6,udp,udp6}` (its network namespace), Unix peers and names
//! from a `sock_diag` netlink query, the one source that knows a Unix socket's peer.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

/// Appends `<what fd refers to>` for `-y` (level 1) or `-yy` (level 2); nothing when the
/// descriptor is not open (strace prints the bare number then).
/// Returns whether the text may be kept until the descriptor table changes (false for
/// sockets, whose endpoints change with connect, bind and listen).
pub fn describe(out: &mut String, pid: i32, fd: i64, level: u8) -> bool {
    if level == 0 || fd < 0 || fd > i32::MAX as i64 {
        return false;
    }
    describe_link(out, pid, &format!("/proc/{pid}/fd/{fd}"), level)
}

/// What `describe` printed for each (thread, descriptor), kept while no call that
/// changes what a descriptor refers to has been seen: dd's million `read(0</dev/zero
/// <char 1:5>>` cost one readlink and one stat, not a million of each. The tracer
/// keeps one only when it stops at every call of every thread (no seccomp filter,
/// `-f`, launched rather than attached), so no close or dup goes unseen.
#[derive(Default)]
pub struct FdCache {
    texts: std::collections::HashMap<(i32, i64), String>,
}

impl FdCache {
    /// Appends the description of `fd`, from the cache or freshly.
    pub fn describe(&mut self, out: &mut String, pid: i32, fd: i64, level: u8) {
        if let Some(t) = self.texts.get(&(pid, fd)) {
            out.push_str(t);
            return;
        }
        let start = out.len();
        if describe(out, pid, fd, level) && self.texts.len() < 4096 {
            self.texts.insert((pid, fd), out[start..].to_string());
        }
    }

    pub fn clear(&mut self) {
        self.texts.clear();
    }

    /// Forgets what call `nr` (with `args`) may have changed: the descriptor a close
    /// or dup2 replaced (in every thread: threads share their descriptor table), or
    /// everything after a call that can change many descriptors or the paths they show
    /// (exec closes close-on-exec ones, a rename or unlink changes a path's text).
    /// A call that creates a descriptor needs nothing: its number was free, so uncached.
    pub fn after_call(&mut self, nr: u64, args: &[u64; 6]) {
        use syscalls::Sysno as S;
        let Some(s) = S::new(nr as usize) else {
            return;
        };
        match s {
            S::close => {
                let fd = i64::from(args[0] as i32);
                self.texts.retain(|&(_, f), _| f != fd);
            }
            S::dup2 | S::dup3 => {
                let fd = i64::from(args[1] as i32);
                self.texts.retain(|&(_, f), _| f != fd);
            }
            S::close_range => {
                let (lo, hi) = (args[0] as u32 as i64, args[1] as u32 as i64);
                self.texts.retain(|&(_, f), _| f < lo || f > hi);
            }
            S::execve
            | S::execveat
            | S::rename
            | S::renameat
            | S::renameat2
            | S::unlink
            | S::unlinkat
            | S::rmdir
            | S::mount
            | S::umount2
            | S::pivot_root
            | S::unshare
            | S::io_uring_enter => self.texts.clear(),
            _ => {}
        }
    }
}

/// `AT_FDCWD` with `-y`: `<the tracee's working directory>`.
pub fn describe_cwd(out: &mut String, pid: i32, level: u8) {
    if level > 0 {
        describe_link(out, pid, &format!("/proc/{pid}/cwd"), level);
    }
}

fn describe_link(out: &mut String, pid: i32, link: &str, level: u8) -> bool {
    let Ok(target) = std::fs::read_link(link) else {
        return false;
    };
    let target = target.as_os_str().as_bytes();
    out.push('<');
    if level >= 2 {
        if let Some(inode) = socket_inode(target) {
            socket(out, pid, link, inode);
            out.push('>');
            return false;
        }
    }
    if level >= 2 && target == b"anon_inode:[pidfd]" {
        if let Some(pid) = pidfd_pid(link) {
            let _ = write!(out, "pid:{pid}>");
            return true;
        }
    }
    push_escaped(out, target);
    if level >= 2 && target.starts_with(b"/") {
        device(out, link);
    }
    out.push('>');
    !target.starts_with(b"socket:")
}

/// Path bytes as strace prints them inside `<...>`: printable ASCII as is, the rest
/// (and the brackets themselves) as `\xNN`.
fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'<' && b != b'>' && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

fn socket_inode(target: &[u8]) -> Option<u64> {
    let rest = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// `<char 1:3>` or `<block 8:0>` after a device node's path.
fn device(out: &mut String, link: &str) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(md) = std::fs::metadata(link) else {
        return;
    };
    let ft = md.file_type();
    let kind = if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else {
        return;
    };
    let rdev = md.rdev();
    let _ = write!(out, "<{kind} {}:{}>", libc::major(rdev), libc::minor(rdev));
}

/// The kernel's name of a socket's protocol (`TCP`, `UDPv6`, `UNIX-STREAM`, `NETLINK`).
fn protocol_name(link: &str) -> Option<String> {
    let path = std::ffi::CString::new(link).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: `path` is NUL-terminated and `buf` is a live buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"system.sockprotoname".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    let name = &buf[..n as usize];
    let name = name.split(|&b| b == 0).next().unwrap_or(name);
    Some(String::from_utf8_lossy(name).into_owned())
}

fn socket(out: &mut String, pid: i32, link: &str, inode: u64) {
    let Some(proto) = protocol_name(link) else {
        let _ = write!(out, "socket:[{inode}]");
        return;
    };
    let found = match proto.as_str() {
        "TCP" => inet(out, pid, "tcp", &proto, inode, false),
        "TCPv6" => inet(out, pid, "tcp6", &proto, inode, true),
        "UDP" => inet(out, pid, "udp", &proto, inode, false),
        "UDPv6" => inet(out, pid, "udp6", &proto, inode, true),
        p if p.starts_with("UNIX") => unix(out, &proto, inode),
        "NETLINK" => netlink(out, &proto, inode),
        _ => false,
    };
    if !found {
        let _ = write!(out, "{proto}:[{inode}]");
    }
}

/// Looks `inode` up in `/proc/PID/net/FILE`: `PROTO:[src:port->dst:port]`, or
/// `PROTO:[src:port]` for a socket with no peer.
fn inet(out: &mut String, pid: i32, file: &str, proto: &str, inode: u64, v6: bool) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
        return false;
    };
    let want = inode.to_string();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 || cols[9] != want {
            continue;
        }
        let (Some(src), Some(dst)) = (endpoint(cols[1], v6), endpoint(cols[2], v6)) else {
            return false;
        };
        let _ = write!(out, "{proto}:[{}", src.0);
        if !(dst.1 == 0 && dst.2) {
            let _ = write!(out, "->{}", dst.0);
        }
        out.push(']');
        return true;
    }
    false
}

/// `0100007F:1389` → (`127.0.0.1:5001`, port, address is any); v6 in brackets.
fn endpoint(col: &str, v6: bool) -> Option<(String, u16, bool)> {
    let (addr, port) = col.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints each 32-bit word of the address in host (little-endian) order.
    let mut bytes = Vec::with_capacity(16);
    for w in 0..addr.len() / 8 {
        let word = u32::from_str_radix(addr.get(w * 8..w * 8 + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    let any = bytes.iter().all(|&b| b == 0);
    let text = if v6 {
        let a: [u8; 16] = bytes.try_into().ok()?;
        format!("[{}]:{port}", std::net::Ipv6Addr::from(a))
    } else {
        let a: [u8; 4] = bytes.try_into().ok()?;
        format!("{}:{port}", std::net::Ipv4Addr::from(a))
    };
    Some((text, port, any))
}

/// The process a pidfd refers to: the `Pid:` line of its `/proc/PID/fdinfo/FD`
/// (`link` is `/proc/PID/fd/FD`). None for a pidfd of a process already reaped (`-1`).
fn pidfd_pid(link: &str) -> Option<i32> {
    let info = link.replacen("/fd/", "/fdinfo/", 1);
    let text = std::fs::read_to_string(info).ok()?;
    let pid: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    (pid > 0).then_some(pid)
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_NAME: u32 = 1;
const UDIAG_SHOW_PEER: u32 = 4;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;

/// `UNIX-STREAM:[ino->peer,"path"]` from a sock_diag query; false when the socket has
/// neither peer nor name (strace then prints `UNIX-STREAM:[ino]`) or the query fails.
fn unix(out: &mut String, proto: &str, inode: u64) -> bool {
    let Ok(ino) = u32::try_from(inode) else {
        return false;
    };
    let Some(reply) = unix_diag(ino) else {
        return false;
    };
    let mut name: Option<&[u8]> = None;
    let mut peer = 0u32;
    // struct nlmsghdr (16) + struct unix_diag_msg (16), then attributes.
    let mut at = 32;
    while at + 4 <= reply.len() {
        let len = u16::from_ne_bytes([reply[at], reply[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([reply[at + 2], reply[at + 3]]);
        if len < 4 || at + len > reply.len() {
            break;
        }
        let data = &reply[at + 4..at + len];
        match kind {
            UNIX_DIAG_NAME => name = Some(data),
            UNIX_DIAG_PEER if data.len() >= 4 => {
                peer = u32::from_ne_bytes([data[0], data[1], data[2], data[3]])
            }
            _ => {}
        }
        at += (len + 3) & !3;
    }
    let name = name.filter(|n| !n.is_empty());
    if peer == 0 && name.is_none() {
        return false;
    }
    let _ = write!(out, "{proto}:[{inode}");
    if peer != 0 {
        let _ = write!(out, "->{peer}");
    }
    if let Some(n) = name {
        out.push(',');
        let n = match n.split_first() {
            Some((0, rest)) => {
                out.push('@');
                rest
            }
            _ => n.split(|&b| b == 0).next().unwrap_or(n),
        };
        crate::decode::strings::quote(out, n);
    }
    out.push(']');
    true
}

/// One `SOCK_DIAG_BY_FAMILY` request for the Unix socket `ino`; the reply's bytes.
fn unix_diag(ino: u32) -> Option<Vec<u8>> {
    // SAFETY: plain socket(2); the descriptor is owned and closed below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just opened by us and is not shared.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    use std::os::fd::AsRawFd;
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // struct unix_diag_req: family, protocol, pad, states, ino, show, cookie[2].
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    req[24..28].copy_from_slice(&ino.to_ne_bytes());
    req[28..32].copy_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER).to_ne_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]);
    // SAFETY: `req` is a live buffer of the length given.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent != req.len() as isize {
        return None;
    }
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is a live buffer of the length given.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 32 {
        return None;
    }
    buf.truncate(n as usize);
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    if kind != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    Some(buf)
}

/// `NETLINK:[ROUTE:PORTID]` for a bound netlink socket, found in a `netlink_diag`
/// dump (the kernel answers only dumps for this family); false when it is not there
/// (an unbound socket), and strace then prints `NETLINK:[ino]` too.
fn netlink(out: &mut String, proto: &str, inode: u64) -> bool {
    let Ok(ino) = u32::try_from(inode) else {
        return false;
    };
    let Some((protocol, portid)) = netlink_diag(ino) else {
        return false;
    };
    let _ = write!(out, "{proto}:[");
    match crate::decode::flags::lookup(u64::from(protocol), crate::decode::net::NETLINK_PROTOCOLS) {
        Some(name) => {
            let _ = write!(out, "{}:{portid}", name.trim_start_matches("NETLINK_"));
        }
        None => {
            let _ = write!(out, "{protocol}");
        }
    }
    out.push(']');
    true
}

const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const NDIAG_PROTO_ALL: u8 = 0xff;

/// Dumps every netlink socket of this network namespace and returns the protocol and
/// port id of the one whose inode is `ino`. Bounded: at most 64 replies are read.
fn netlink_diag(ino: u32) -> Option<(u8, u32)> {
    // SAFETY: plain socket(2); the descriptor is owned and closed on return.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just opened by us and is not shared.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    use std::os::fd::AsRawFd;
    // struct nlmsghdr (16) + struct netlink_diag_req: family, protocol, pad (u16),
    // ino, show, cookie[2].
    let mut req = [0u8; 36];
    req[0..4].copy_from_slice(&36u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_NETLINK as u8;
    req[17] = NDIAG_PROTO_ALL;
    req[20..24].copy_from_slice(&ino.to_ne_bytes());
    req[28..36].copy_from_slice(&[0xff; 8]);
    // SAFETY: `req` is a live buffer of the length given.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent != req.len() as isize {
        return None;
    }
    let mut buf = vec![0u8; 32 * 1024];
    for _ in 0..64 {
        // SAFETY: `buf` is a live buffer of the length given.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return None;
        }
        let reply = &buf[..n as usize];
        let mut at = 0;
        while at + 16 <= reply.len() {
            let len = u32::from_ne_bytes(reply[at..at + 4].try_into().ok()?) as usize;
            let kind = u16::from_ne_bytes([reply[at + 4], reply[at + 5]]);
            if len < 16 || at + len > reply.len() {
                return None;
            }
            match kind {
                NLMSG_DONE | NLMSG_ERROR => return None,
                SOCK_DIAG_BY_FAMILY if len >= 16 + 24 => {
                    // struct netlink_diag_msg: family, type, protocol, state, portid,
                    // dst_portid, dst_group, ino, cookie[2].
                    let m = &reply[at + 16..at + len];
                    let protocol = m[2];
                    let portid = u32::from_ne_bytes(m[4..8].try_into().ok()?);
                    let found = u32::from_ne_bytes(m[16..20].try_into().ok()?);
                    if m[0] == libc::AF_NETLINK as u8 && found == ino {
                        return Some((protocol, portid));
                    }
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_endpoints() {
        assert_eq!(
            endpoint("0100007F:1389", false).unwrap(),
            ("127.0.0.1:5001".to_string(), 5001, false)
        );
        assert!(endpoint("00000000:0000", false).unwrap().2);
        assert_eq!(
            endpoint("00000000000000000000000001000000:61A9", true)
                .unwrap()
                .0,
            "[::1]:25001"
        );
    }
}
