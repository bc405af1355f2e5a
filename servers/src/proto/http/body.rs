//! Request bodies a static server reads only to throw away.
//!
//! A GET or HEAD may carry a body (RFC 9110 §9.3.1 gives it no meaning); it must still
//! be read to the end, or its bytes would be taken for the next request head. The one
//! idea: a [`Discard`] is a resumable scanner that counts bytes off whatever input
//! arrives and says how many it took, so the protocol answers at once and skips the
//! body as it trickles in, never buffering it. Chunked framing is followed byte by
//! byte (RFC 9112 §7.1), with every line bounded, and the declared sizes summed
//! against [`super::MAX_BODY`].

use super::Status;

/// Longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_LINE: u32 = 4096;
/// Most trailer bytes accepted in all.
const MAX_TRAILERS: u32 = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the hex digits of a chunk size.
    Size,
    /// After the digits: extensions or whitespace until the line's end.
    Ext,
    /// A CR ended the size line; LF must follow.
    SizeLf,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: CRLF (or LF) must follow.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// A CR at the start of a trailer line: the final LF must follow.
    EndLf,
    Done,
}

/// The rest of one request body to skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discard {
    /// This many bytes of a `Content-Length` body.
    Length(u64),
    Chunked(Chunked),
}

/// A chunked body's scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunked {
    state: State,
    size: u64,
    digits: u8,
    total: u64,
    line: u32,
    trailers: u32,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size,
            size: 0,
            digits: 0,
            total: 0,
            line: 0,
            trailers: 0,
        }
    }
}

impl Discard {
    /// Skips what it can of `input`: `Ok((taken, done))`, or the status the body
    /// earns (400 for bad framing, 413 past `limit`).
    pub fn skip(&mut self, input: &[u8], limit: u64) -> Result<(usize, bool), Status> {
        match self {
            Discard::Length(left) => {
                let take = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
                *left -= take as u64;
                Ok((take, *left == 0))
            }
            Discard::Chunked(c) => c.skip(input, limit),
        }
    }
}

impl Chunked {
    fn skip(&mut self, input: &[u8], limit: u64) -> Result<(usize, bool), Status> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let take =
                    usize::try_from(left).map_or(input.len() - i, |l| l.min(input.len() - i));
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let b = input[i];
            i += 1;
            self.line += 1;
            if self.line > MAX_LINE {
                return Err(Status::BadRequest);
            }
            self.state = match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        // 15 hex digits is far beyond any limit and cannot overflow.
                        if self.digits == 15 {
                            return Err(Status::PayloadTooLarge);
                        }
                        self.digits += 1;
                        self.size = self.size * 16 + u64::from(hex(b));
                        State::Size
                    }
                    _ if self.digits == 0 => return Err(Status::BadRequest),
                    b';' | b' ' | b'\t' => State::Ext,
                    b'\r' => State::SizeLf,
                    b'\n' => self.size_line_done(limit)?,
                    _ => return Err(Status::BadRequest),
                },
                State::Ext => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => self.size_line_done(limit)?,
                    0 => return Err(Status::BadRequest),
                    _ => State::Ext,
                },
                State::SizeLf => match b {
                    b'\n' => self.size_line_done(limit)?,
                    _ => return Err(Status::BadRequest),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    b'\n' => self.next_line(State::Size),
                    _ => return Err(Status::BadRequest),
                },
                State::DataLf => match b {
                    b'\n' => self.next_line(State::Size),
                    _ => return Err(Status::BadRequest),
                },
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    b'\n' => State::Done,
                    _ => self.trailer_byte(State::Trailer)?,
                },
                State::Trailer => match b {
                    b'\n' => self.next_line(State::TrailerStart),
                    _ => self.trailer_byte(State::Trailer)?,
                },
                State::EndLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(Status::BadRequest),
                },
                // Taken care of before the match; never a panic from the network.
                State::Data(_) | State::Done => return Err(Status::BadRequest),
            };
        }
        Ok((i, self.state == State::Done))
    }

    fn size_line_done(&mut self, limit: u64) -> Result<State, Status> {
        let size = std::mem::take(&mut self.size);
        self.digits = 0;
        if size == 0 {
            return Ok(self.next_line(State::TrailerStart));
        }
        self.total = self.total.saturating_add(size);
        if self.total > limit {
            return Err(Status::PayloadTooLarge);
        }
        self.line = 0;
        Ok(State::Data(size))
    }

    fn next_line(&mut self, s: State) -> State {
        self.line = 0;
        s
    }

    fn trailer_byte(&mut self, s: State) -> Result<State, Status> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(Status::HeaderFieldsTooLarge);
        }
        Ok(s)
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

    fn chunked(input: &[u8]) -> Result<(usize, bool), Status> {
        Discard::Chunked(Chunked::default()).skip(input, 100)
    }

    #[test]
    fn whole_bodies() {
        let b = b"3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nGET";
        assert_eq!(chunked(b), Ok((b.len() - 3, true)));
        assert_eq!(chunked(b"0\r\n\r\n"), Ok((5, true)));
        assert_eq!(chunked(b"1\nx\n0\n\n"), Ok((7, true)), "bare LF");
        let mut l = Discard::Length(5);
        assert_eq!(l.skip(b"abcdefg", 100), Ok((5, true)));
    }

    #[test]
    fn any_split_gives_the_same_answer() {
        let b = b"3\r\nabc\r\n2;x\r\nde\r\n0\r\nT: v\r\n\r\n";
        for cut in 0..b.len() {
            let mut d = Discard::Chunked(Chunked::default());
            let (n1, done1) = d.skip(&b[..cut], 100).unwrap();
            assert_eq!((n1, done1), (cut, false), "cut {cut}");
            assert_eq!(d.skip(&b[cut..], 100), Ok((b.len() - cut, true)));
        }
    }

    #[test]
    fn bad_framing_and_limits() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"3\rx",
            b"1\r\na\r\n0\r\n\rx",
        ] {
            assert_eq!(chunked(bad), Err(Status::BadRequest), "{bad:?}");
        }
        assert_eq!(
            chunked(b"65\r\n"),
            Err(Status::PayloadTooLarge),
            "101 > 100"
        );
        assert_eq!(chunked(b"60\r\n"), Ok((4, false)));
        assert_eq!(
            chunked(b"ffffffffffffffff\r\n"),
            Err(Status::PayloadTooLarge)
        );
        let long_ext = [&b"1;"[..], &[b'e'; 5000]].concat();
        assert_eq!(chunked(&long_ext), Err(Status::BadRequest));
    }
}
