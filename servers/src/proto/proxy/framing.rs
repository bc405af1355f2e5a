//! Where one HTTP/1.1 message body ends (RFC 9112 §6.3), for bodies the proxy passes
//! on with their framing untouched.
//!
//! The one idea: the proxy never decodes a body, it only has to know which of the
//! bytes arriving belong to the current message, so that a second request (or a
//! smuggled one) is never passed on as part of the first. A `Content-Length` body is
//! a count; a chunked body is scanned by a small state machine that accepts only the
//! strict grammar (CRLF everywhere, at most 16 hex digits), so the proxy and the
//! origin cannot disagree about where it ends.

/// How the body of one message is delimited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Frame {
    /// Everything until the sender closes: a tunnel, a TCP forward, or a response
    /// with neither length nor chunking.
    #[default]
    UntilEof,
    /// This many bytes still belong to the message.
    Length(u64),
    /// A chunked body, scanned as it passes.
    Chunked(Chunks),
    /// The message is complete: any further byte belongs to the next one.
    Done,
}

/// A chunked body that breaks the grammar; the connection cannot be trusted after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct FramingError(pub &'static str);

impl Frame {
    /// A body of `n` bytes (none: the message is already complete).
    pub fn length(n: u64) -> Self {
        if n == 0 {
            Frame::Done
        } else {
            Frame::Length(n)
        }
    }

    pub fn chunked() -> Self {
        Frame::Chunked(Chunks::default())
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Frame::Done)
    }

    /// At most this many bytes may be read from the source now without reading past
    /// the message (a chunked body is scanned after reading, so its bound is the
    /// buffer's).
    pub fn read_limit(&self, buf: usize) -> usize {
        match self {
            Frame::Length(n) => usize::try_from(*n).unwrap_or(usize::MAX).min(buf),
            Frame::Done => 0,
            Frame::UntilEof | Frame::Chunked(_) => buf,
        }
    }

    /// Whether bytes may move by `splice`, unseen (a chunked body must be scanned).
    pub fn spliceable(&self) -> bool {
        matches!(self, Frame::Length(_) | Frame::UntilEof)
    }

    /// Counts `n` bytes that passed unseen (spliced); only for a spliceable frame.
    pub fn skip(&mut self, n: usize) -> Result<(), FramingError> {
        match self {
            Frame::UntilEof => Ok(()),
            Frame::Length(left) if (n as u64) <= *left => {
                *left -= n as u64;
                if *left == 0 {
                    *self = Frame::Done;
                }
                Ok(())
            }
            _ => Err(FramingError("bytes past the end of the message")),
        }
    }

    /// Of `bytes`, which arrived next, how many belong to this message; the rest
    /// (if any) belongs to the next message.
    pub fn take(&mut self, bytes: &[u8]) -> Result<usize, FramingError> {
        match self {
            Frame::UntilEof => Ok(bytes.len()),
            Frame::Done => Ok(0),
            Frame::Length(n) => {
                let k = usize::try_from(*n).unwrap_or(usize::MAX).min(bytes.len());
                *n -= k as u64;
                if *n == 0 {
                    *self = Frame::Done;
                }
                Ok(k)
            }
            Frame::Chunked(c) => {
                let k = c.scan(bytes, None)?;
                if c.is_done() {
                    *self = Frame::Done;
                }
                Ok(k)
            }
        }
    }

    /// As [`Frame::take`], but a chunked body is decoded: only its data is appended
    /// to `data` (for an HTTP/1.0 client, which cannot read chunks).
    pub fn take_decoded(
        &mut self,
        bytes: &[u8],
        data: &mut Vec<u8>,
    ) -> Result<usize, FramingError> {
        match self {
            Frame::Chunked(c) => {
                let k = c.scan(bytes, Some(data))?;
                if c.is_done() {
                    *self = Frame::Done;
                }
                Ok(k)
            }
            _ => {
                let k = self.take(bytes)?;
                data.extend_from_slice(&bytes[..k]);
                Ok(k)
            }
        }
    }
}

/// The scanner of a chunked body (RFC 9112 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunks {
    state: State,
    size: u64,
    digits: u8,
    trailer_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    FinalLf,
    Done,
}

/// Trailer fields are passed on, but a peer may not stream them forever.
const MAX_TRAILERS: usize = 16 * 1024;

impl Chunks {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes up to the end of the body; returns how many it took, and
    /// appends the chunks' data to `data` if given.
    fn scan(
        &mut self,
        bytes: &[u8],
        mut data: Option<&mut Vec<u8>>,
    ) -> Result<usize, FramingError> {
        let mut i = 0;
        while i < bytes.len() && self.state != State::Done {
            if self.state == State::Data {
                let k = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                if let Some(d) = data.as_mut() {
                    d.extend_from_slice(&bytes[i..i + k]);
                }
                self.size -= k as u64;
                i += k;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::Size, b) if b.is_ascii_hexdigit() => {
                    if self.digits == 16 {
                        return Err(FramingError("chunk size longer than 16 hex digits"));
                    }
                    self.digits += 1;
                    // 16 hex digits fit a u64 exactly.
                    self.size = (self.size << 4) | u64::from(hex(b));
                    State::Size
                }
                (State::Size, _) if self.digits == 0 => {
                    return Err(FramingError("chunk size missing"))
                }
                (State::Size, b';' | b' ' | b'\t') => State::Ext,
                (State::Size | State::Ext, b'\r') => State::SizeLf,
                (State::Ext, b) if b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 => {
                    State::Ext
                }
                (State::SizeLf, b'\n') => {
                    self.digits = 0;
                    if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    }
                }
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size,
                (State::TrailerStart, b'\r') => State::FinalLf,
                (State::TrailerStart | State::Trailer, b) if b != b'\n' && b != b'\r' => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(FramingError("trailer section too large"));
                    }
                    State::Trailer
                }
                (State::Trailer, b'\r') => State::TrailerLf,
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::FinalLf, b'\n') => State::Done,
                _ => return Err(FramingError("unexpected byte (chunk lines end in CRLF)")),
            };
        }
        Ok(i)
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_takes_exactly_its_bytes() {
        let mut f = Frame::length(5);
        assert_eq!(f.read_limit(100), 5);
        assert_eq!(f.take(b"abc").unwrap(), 3);
        assert_eq!(f.take(b"deGET").unwrap(), 2);
        assert!(f.is_done());
        assert_eq!(f.take(b"x").unwrap(), 0);
        assert!(Frame::length(0).is_done());
    }

    #[test]
    fn chunked_ends_after_the_last_chunk_and_trailers() {
        let body = b"5\r\nhello\r\n1a;ext=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nGET /next";
        let end = body.len() - b"GET /next".len();
        let mut f = Frame::chunked();
        assert_eq!(f.take(body).unwrap(), end);
        assert!(f.is_done());
        // The same bytes one at a time end at the same place.
        let mut f = Frame::chunked();
        let mut taken = 0;
        for b in body.iter() {
            taken += f.take(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(taken, end);
        let mut f = Frame::chunked();
        assert_eq!(f.take(b"0\r\n\r\n").unwrap(), 5);
        assert!(f.is_done());
        let mut f = Frame::chunked();
        let mut data = Vec::new();
        assert_eq!(f.take_decoded(body, &mut data).unwrap(), end);
        assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz");
    }

    #[test]
    fn chunked_refuses_what_another_parser_could_read_differently() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"11111111111111111\r\n",
            b"0\r\n\n",
        ] {
            let mut f = Frame::chunked();
            assert!(f.take(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut f = Frame::chunked();
        assert_eq!(f.take(b"ffffffffffffffff\r\nab").unwrap(), 20);
    }
}
