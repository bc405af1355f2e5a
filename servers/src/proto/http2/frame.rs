//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, the frame types and flags
//! a server meets, the error codes, and the writers for what it sends.
//!
//! Reading never copies a payload: [`FrameHeader::parse`] looks at the first nine
//! bytes, and the connection takes the payload as a slice of its input once the
//! whole frame is there.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEADER_LEN: usize = 9;
/// The initial and smallest SETTINGS_MAX_FRAME_SIZE.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE allowed.
pub const MAX_MAX_FRAME: u32 = (1 << 24) - 1;
/// The largest flow-control window (and INITIAL_WINDOW_SIZE).
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
pub const DEFAULT_WINDOW: i64 = 65_535;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    /// Unknown types are ignored (§4.1), except inside a header block.
    Unknown(u8),
}

impl Kind {
    pub fn from_u8(t: u8) -> Kind {
        match t {
            0x0 => Kind::Data,
            0x1 => Kind::Headers,
            0x2 => Kind::Priority,
            0x3 => Kind::RstStream,
            0x4 => Kind::Settings,
            0x5 => Kind::PushPromise,
            0x6 => Kind::Ping,
            0x7 => Kind::GoAway,
            0x8 => Kind::WindowUpdate,
            0x9 => Kind::Continuation,
            other => Kind::Unknown(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Kind::Data => 0x0,
            Kind::Headers => 0x1,
            Kind::Priority => 0x2,
            Kind::RstStream => 0x3,
            Kind::Settings => 0x4,
            Kind::PushPromise => 0x5,
            Kind::Ping => 0x6,
            Kind::GoAway => 0x7,
            Kind::WindowUpdate => 0x8,
            Kind::Continuation => 0x9,
            Kind::Unknown(t) => t,
        }
    }
}

pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Error codes (RFC 9113 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    NoError = 0x0,
    Protocol = 0x1,
    Internal = 0x2,
    FlowControl = 0x3,
    SettingsTimeout = 0x4,
    StreamClosed = 0x5,
    FrameSize = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    Compression = 0x9,
    Connect = 0xa,
    EnhanceYourCalm = 0xb,
    InadequateSecurity = 0xc,
    Http11Required = 0xd,
}

/// SETTINGS identifiers (RFC 9113 §6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: Kind,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    /// The header at the start of `buf`, if nine bytes are there.
    pub fn parse(buf: &[u8]) -> Option<FrameHeader> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: Kind::from_u8(h[3]),
            flags: h[4],
            // The reserved bit is ignored on receipt (§4.1).
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let l = self.len.to_be_bytes();
        out.extend_from_slice(&[l[1], l[2], l[3], self.kind.code(), self.flags]);
        out.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
    }
}

/// Appends a whole frame.
pub fn write_frame(out: &mut Vec<u8>, kind: Kind, flags: u8, stream: u32, payload: &[u8]) {
    FrameHeader {
        len: payload.len() as u32,
        kind,
        flags,
        stream,
    }
    .write(out);
    out.extend_from_slice(payload);
}

pub fn write_settings(out: &mut Vec<u8>, values: &[(u16, u32)]) {
    let mut p = Vec::with_capacity(values.len() * 6);
    for (id, v) in values {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    write_frame(out, Kind::Settings, 0, 0, &p);
}

pub fn write_goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode) {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    p[4..].copy_from_slice(&(code as u32).to_be_bytes());
    write_frame(out, Kind::GoAway, 0, 0, &p);
}

pub fn write_rst(out: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    write_frame(
        out,
        Kind::RstStream,
        0,
        stream,
        &(code as u32).to_be_bytes(),
    );
}

pub fn write_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    write_frame(
        out,
        Kind::WindowUpdate,
        0,
        stream,
        &(increment & 0x7fff_ffff).to_be_bytes(),
    );
}

/// A header block as HEADERS then CONTINUATION frames of at most `max` bytes each.
pub fn write_header_block(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max: usize,
) {
    let max = max.max(1);
    let mut chunks = block.chunks(max).peekable();
    let first = chunks.next().unwrap_or(&[]);
    let es = if end_stream { flags::END_STREAM } else { 0 };
    let eh = if chunks.peek().is_none() {
        flags::END_HEADERS
    } else {
        0
    };
    write_frame(out, Kind::Headers, es | eh, stream, first);
    while let Some(c) = chunks.next() {
        let eh = if chunks.peek().is_none() {
            flags::END_HEADERS
        } else {
            0
        };
        write_frame(out, Kind::Continuation, eh, stream, c);
    }
}

/// The payload of a DATA or HEADERS frame without its padding (§6.1, §6.2), or
/// `None` when the padding is as long as the payload or longer (PROTOCOL_ERROR).
pub fn unpad<'a>(h: &FrameHeader, payload: &'a [u8]) -> Option<&'a [u8]> {
    if !h.has(flags::PADDED) {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.len().checked_sub(pad as usize).map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_ignores_the_reserved_bit() {
        let mut b = Vec::new();
        write_frame(&mut b, Kind::Headers, flags::END_HEADERS, 3, b"abc");
        assert_eq!(b, [0, 0, 3, 1, 4, 0, 0, 0, 3, b'a', b'b', b'c']);
        let mut raw = b.clone();
        raw[5] |= 0x80;
        let h = FrameHeader::parse(&raw).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                len: 3,
                kind: Kind::Headers,
                flags: flags::END_HEADERS,
                stream: 3
            }
        );
        assert!(FrameHeader::parse(&raw[..8]).is_none());
    }

    #[test]
    fn padding_is_removed_or_refused() {
        let h = FrameHeader {
            len: 5,
            kind: Kind::Data,
            flags: flags::PADDED,
            stream: 1,
        };
        assert_eq!(unpad(&h, &[2, b'x', b'y', 0, 0]), Some(&b"xy"[..]));
        assert_eq!(unpad(&h, &[4, 0, 0, 0]), None);
        assert_eq!(unpad(&h, &[]), None);
    }

    #[test]
    fn a_long_header_block_continues() {
        let mut b = Vec::new();
        write_header_block(&mut b, 1, &[7u8; 10], true, 4);
        let h1 = FrameHeader::parse(&b).unwrap();
        assert_eq!(
            (h1.kind, h1.flags, h1.len),
            (Kind::Headers, flags::END_STREAM, 4)
        );
        let h2 = FrameHeader::parse(&b[13..]).unwrap();
        assert_eq!((h2.kind, h2.flags, h2.len), (Kind::Continuation, 0, 4));
        let h3 = FrameHeader::parse(&b[26..]).unwrap();
        assert_eq!(
            (h3.kind, h3.flags, h3.len),
            (Kind::Continuation, flags::END_HEADERS, 2)
        );
        assert_eq!(b.len(), 26 + 9 + 2);
    }
}
