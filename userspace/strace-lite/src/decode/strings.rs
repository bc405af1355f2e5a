//! Strings and data buffers, quoted the way strace quotes them.
//!
//! Printable ASCII stays as is, `"` and `\` are escaped, the usual C escapes are used
//! for `\t \n \v \f \r`, and every other byte is octal in its shortest form unless a
//! digit follows (then it takes three digits, so `\0` then `1` cannot read as `\01`).
//! A buffer longer than `-s` is cut and followed by `...` after the closing quote.

use super::Ctx;
use crate::mem;
use std::fmt::Write;

/// Appends `bytes` as a quoted C string.
pub fn quote(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(c as char),
            _ => {
                out.push('\\');
                let next_is_octal = bytes.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
                if next_is_octal {
                    out.push((b'0' + (c >> 6)) as char);
                    out.push((b'0' + ((c >> 3) & 7)) as char);
                } else if c >> 3 != 0 {
                    if c >> 6 != 0 {
                        out.push((b'0' + (c >> 6)) as char);
                    }
                    out.push((b'0' + ((c >> 3) & 7)) as char);
                }
                out.push((b'0' + (c & 7)) as char);
            }
        }
    }
    out.push('"');
}

/// Appends a pointer: `NULL` or hex.
pub fn ptr(out: &mut String, addr: u64) {
    if addr == 0 {
        out.push_str("NULL");
    } else {
        super::hex_prefixed(out, addr);
    }
}

/// The first `N` native-endian 64-bit words of the struct at `addr`; `None` once the
/// pointer itself is printed instead (`NULL`, or the address when it cannot be read), as
/// strace does.
pub fn words<const N: usize>(ctx: &mut Ctx, out: &mut String, addr: u64) -> Option<[i64; N]> {
    const { assert!(N <= 16) };
    let mut b = [0u8; 128];
    let len = N * 8;
    if addr == 0 || mem::read(ctx.pid, addr, &mut b[..len]) < len {
        ptr(out, addr);
        return None;
    }
    let mut w = [0i64; N];
    for (i, chunk) in b[..len].chunks_exact(8).enumerate() {
        let mut x = [0u8; 8];
        x.copy_from_slice(chunk);
        w[i] = i64::from_ne_bytes(x);
    }
    Some(w)
}

/// A NUL-terminated pathname; not cut by `-s` (strace prints paths whole).
pub fn path(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut scratch = std::mem::take(&mut ctx.scratch);
    match mem::read_cstr(ctx.pid, addr, libc::PATH_MAX as usize, &mut scratch) {
        Some(complete) => {
            quote(out, &scratch);
            if !complete {
                out.push_str("...");
            }
        }
        None => ptr(out, addr),
    }
    ctx.scratch = scratch;
}

/// A NUL-terminated string cut at `-s`.
pub fn cstring(ctx: &mut Ctx, out: &mut String, addr: u64) {
    let mut scratch = std::mem::take(&mut ctx.scratch);
    match mem::read_cstr(ctx.pid, addr, ctx.max_str, &mut scratch) {
        Some(complete) => {
            quote(out, &scratch);
            if !complete {
                out.push_str("...");
            }
        }
        None => ptr(out, addr),
    }
    ctx.scratch = scratch;
}

/// `len` bytes of data at `addr`, cut at `-s`.
pub fn buffer(ctx: &mut Ctx, out: &mut String, addr: u64, len: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    let want = (len as usize).min(ctx.max_str);
    let mut scratch = std::mem::take(&mut ctx.scratch);
    scratch.clear();
    scratch.resize(want, 0);
    let got = mem::read(ctx.pid, addr, &mut scratch);
    if got < want {
        ptr(out, addr);
    } else {
        quote(out, &scratch);
        if (len as usize) > want {
            out.push_str("...");
        }
    }
    ctx.scratch = scratch;
}

/// `execve`'s argv: `["ls", "-l"]`, at most `-s` elements.
pub fn argv(ctx: &mut Ctx, out: &mut String, addr: u64) {
    if addr == 0 {
        out.push_str("NULL");
        return;
    }
    out.push('[');
    let mut i = 0u64;
    loop {
        let Some(p) = mem::read_u64(ctx.pid, addr + 8 * i) else {
            if i == 0 {
                out.pop();
                ptr(out, addr);
                return;
            }
            out.push_str(", ...");
            break;
        };
        if p == 0 {
            break;
        }
        if i as usize >= ctx.max_str {
            out.push_str(", ...");
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        cstring(ctx, out, p);
        i += 1;
    }
    out.push(']');
}

/// `execve`'s envp as strace abbreviates it: `0x7ffd... /* 20 vars */`.
pub fn envp(ctx: &mut Ctx, out: &mut String, addr: u64) {
    ptr(out, addr);
    if addr == 0 {
        return;
    }
    // Pointers are read 64 at a time: one syscall for a typical environment.
    let mut n = 0u64;
    let mut chunk = [0u8; 512];
    'outer: while n < 65536 {
        let got = mem::read(ctx.pid, addr + 8 * n, &mut chunk) / 8;
        if got == 0 {
            break;
        }
        for w in chunk.chunks_exact(8).take(got) {
            if w.iter().all(|&b| b == 0) {
                break 'outer;
            }
            n += 1;
        }
    }
    let _ = write!(out, " /* {n} var{} */", if n == 1 { "" } else { "s" });
}

#[cfg(test)]
mod tests {
    use super::quote;

    fn q(b: &[u8]) -> String {
        let mut s = String::new();
        quote(&mut s, b);
        s
    }

    #[test]
    fn quotes_like_strace() {
        assert_eq!(q(b"hello\n"), r#""hello\n""#);
        assert_eq!(q(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(q(b"\x7fELF\x02\x01"), r#""\177ELF\2\1""#);
        // A digit after an escaped byte forces three octal digits.
        assert_eq!(q(b"\x001"), r#""\0001""#);
        assert_eq!(q(b"\x00a"), r#""\0a""#);
        assert_eq!(q(b"\x08\x09\x0b\x0c\x0d\xff"), r#""\10\t\v\f\r\377""#);
    }
}
