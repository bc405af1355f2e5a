//! Socket addresses and socket-call arguments.
//!
//! A sockaddr is read whole (at most 128 bytes, `sockaddr_storage`) and printed by
//! family, in strace's notation: `{sa_family=AF_INET, sin_port=htons(80),
//! sin_addr=inet_addr("127.0.0.1")}`.

use super::flags::{self, AF};
use super::strings::{ptr, quote};
use super::Ctx;
use crate::mem;
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Appends the sockaddr of `len` bytes at `addr`.
pub fn sockaddr(ctx: &mut Ctx, out: &mut String, addr: u64, len: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let mut b = [0u8; 128];
    let want = (len as usize).min(b.len());
    if want < 2 || mem::read(ctx.pid, addr, &mut b[..want]) < want {
        ptr(out, addr);
        return;
    }
    let b = &b[..want];
    let family = u16::from_ne_bytes([b[0], b[1]]);
    out.push_str("{sa_family=");
    flags::constant(out, family as u64, AF, false);
    match family as i32 {
        libc::AF_INET if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            let _ = write!(
                out,
                ", sin_port=htons({port}), sin_addr=inet_addr(\"{ip}\")}}"
            );
        }
        libc::AF_INET6 if b.len() >= 24 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            let ip = Ipv6Addr::from(a);
            let scope = if b.len() >= 28 {
                u32::from_ne_bytes([b[24], b[25], b[26], b[27]])
            } else {
                0
            };
            let _ = write!(
                out,
                ", sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), inet_pton(AF_INET6, \"{ip}\", &sin6_addr), sin6_scope_id={scope}}}"
            );
        }
        libc::AF_NETLINK if b.len() >= 12 => {
            let pid = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
            let groups = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
            let pad = u16::from_ne_bytes([b[2], b[3]]);
            if pad != 0 {
                let _ = write!(out, ", nl_pad={pad:#x}");
            }
            // C's `%#08x`: no `0x` for zero.
            if groups == 0 {
                let _ = write!(out, ", nl_pid={pid}, nl_groups=00000000}}");
            } else {
                let _ = write!(out, ", nl_pid={pid}, nl_groups={groups:#08x}}}");
            }
        }
        libc::AF_UNIX => {
            let path = &b[2..];
            out.push_str(", sun_path=");
            if path.first() == Some(&0) && path.len() > 1 {
                // Abstract socket: strace prints a leading '@'.
                let end = path.len();
                out.push('@');
                quote(out, &path[1..end]);
            } else {
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                quote(out, &path[..end]);
            }
            out.push('}');
        }
        _ => {
            out.push_str(", sa_data=");
            quote(out, &b[2..]);
            out.push('}');
        }
    }
}

pub const NETLINK_PROTOCOLS: flags::Xlat = &[
    (0, "NETLINK_ROUTE"),
    (1, "NETLINK_UNUSED"),
    (2, "NETLINK_USERSOCK"),
    (3, "NETLINK_FIREWALL"),
    (4, "NETLINK_SOCK_DIAG"),
    (5, "NETLINK_NFLOG"),
    (6, "NETLINK_XFRM"),
    (7, "NETLINK_SELINUX"),
    (8, "NETLINK_ISCSI"),
    (9, "NETLINK_AUDIT"),
    (10, "NETLINK_FIB_LOOKUP"),
    (11, "NETLINK_CONNECTOR"),
    (12, "NETLINK_NETFILTER"),
    (13, "NETLINK_IP6_FW"),
    (14, "NETLINK_DNRTMSG"),
    (15, "NETLINK_KOBJECT_UEVENT"),
    (16, "NETLINK_GENERIC"),
    (18, "NETLINK_SCSITRANSPORT"),
    (19, "NETLINK_ECRYPTFS"),
    (20, "NETLINK_RDMA"),
    (21, "NETLINK_CRYPTO"),
    (22, "NETLINK_SMC"),
];

/// The protocol argument of `socket`: named for IP and netlink families, a number otherwise.
pub fn protocol(out: &mut String, domain: u64, proto: u64) {
    if domain == libc::AF_INET as u64 || domain == libc::AF_INET6 as u64 {
        flags::constant(out, proto, flags::IPPROTO, false);
    } else if domain == libc::AF_NETLINK as u64 {
        flags::xval(out, proto, NETLINK_PROTOCOLS, "NETLINK_???");
    } else {
        let _ = write!(out, "{}", proto as i32);
    }
}

/// A socket option level: `SOL_SOCKET`, or `0x270f /* SOL_?? */` (strace's spelling).
pub fn level(out: &mut String, v: u64) {
    flags::xval(out, v, flags::SOL, "SOL_??");
}

/// The option names of a level and the placeholder for an unknown one.
fn names_of(level: u64) -> Option<(flags::Xlat, &'static str)> {
    Some(match level as i32 {
        libc::SOL_SOCKET => (flags::SO, "SO_???"),
        libc::IPPROTO_TCP => (flags::TCP_OPTS, "TCP_???"),
        libc::IPPROTO_IP => (flags::IP_OPTS, "IP_???"),
        libc::IPPROTO_IPV6 => (flags::IPV6_OPTS, "IPV6_???"),
        libc::IPPROTO_UDP => (flags::UDP_OPTS, "UDP_???"),
        _ => return None,
    })
}

/// A socket option's name, by level; a number under a level without names.
pub fn sockopt_name(out: &mut String, level: u64, name: u64) {
    match names_of(level) {
        Some((table, unknown)) => flags::xval(out, name as u32 as u64, table, unknown),
        None => {
            let _ = write!(out, "{}", name as i32);
        }
    }
}

/// An option value of `len` bytes: `[1]` for an int, `{l_onoff=1, l_linger=5}`
/// for SO_LINGER, the bytes otherwise.
pub fn sockopt_value(ctx: &mut Ctx, out: &mut String, level: u64, name: u64, addr: u64, len: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    if level as i32 == libc::SOL_SOCKET && name as i32 == libc::SO_LINGER && len >= 8 {
        if let (Some(on), Some(secs)) = (
            mem::read_u32(ctx.pid, addr),
            mem::read_u32(ctx.pid, addr + 4),
        ) {
            let _ = write!(out, "{{l_onoff={}, l_linger={}}}", on as i32, secs as i32);
            return;
        }
    }
    if len == 4 {
        if let Some(v) = mem::read_u32(ctx.pid, addr) {
            let _ = write!(out, "[{}]", v as i32);
            return;
        }
    }
    super::strings::buffer(ctx, out, addr, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes from this process's own memory: process_vm_readv works on ourselves.
    fn decode(bytes: &[u8]) -> String {
        let mut ctx = Ctx {
            pid: std::process::id() as i32,
            max_str: 32,
            scratch: Vec::new(),
            verbose: false,
            fd_paths: 0,
            xlat: Default::default(),
            fd_cache: None,
        };
        let mut s = String::new();
        sockaddr(&mut ctx, &mut s, bytes.as_ptr() as u64, bytes.len() as u64);
        s
    }

    #[test]
    fn inet_inet6_unix() {
        let mut v4 = vec![2u8, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0u8; 8]);
        assert_eq!(
            decode(&v4),
            r#"{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}"#
        );
        let mut v6 = vec![10u8, 0, 0, 80, 0, 0, 0, 0];
        v6.extend([0u8; 15]);
        v6.push(1);
        v6.extend([0u8; 4]);
        assert_eq!(
            decode(&v6),
            r#"{sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}"#
        );
        let mut un = vec![1u8, 0];
        un.extend(b"/run/x.sock\0");
        assert_eq!(
            decode(&un),
            r#"{sa_family=AF_UNIX, sun_path="/run/x.sock"}"#
        );
        // Too short to hold a family: printed as the pointer it is.
        assert!(decode(&[2u8]).starts_with("0x"));
    }
}
