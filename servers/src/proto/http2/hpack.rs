//! HPACK (RFC 7541) for the server side: the decoder bounded, the encoder plain.
//!
//! The codec itself is `loona-hpack` (static and dynamic tables, Huffman, integer
//! and string representations). What this module adds is the bound a server needs
//! against a small block that decodes into a huge header list (an "HPACK bomb": a
//! 4 KiB table entry referenced by one byte, many times): the decoded size is
//! summed as RFC 7541 §4.1 counts it, and past the limit nothing more is kept,
//! though the block is still decoded to the end so the dynamic table stays in
//! step with the peer's. The dynamic table a peer may ask for is capped at our
//! SETTINGS_HEADER_TABLE_SIZE.

use loona_hpack::{Decoder, Encoder};

/// The dynamic table size we allow the peer's encoder (the protocol default).
pub const TABLE_SIZE: usize = 4096;

/// A decoded header list, or the news that it was larger than allowed.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
    /// The list's size (names, values and 32 bytes per field) passed the limit.
    TooLarge,
}

pub struct HeaderDecoder {
    inner: Decoder<'static>,
    max_list: usize,
}

/// A malformed block: the connection's compression state is lost
/// (COMPRESSION_ERROR).
#[derive(Debug, PartialEq, Eq)]
pub struct CompressionError;

impl HeaderDecoder {
    pub fn new(max_list: usize) -> HeaderDecoder {
        let mut inner = Decoder::new();
        inner.set_max_allowed_table_size(TABLE_SIZE);
        HeaderDecoder { inner, max_list }
    }

    pub fn decode(&mut self, block: &[u8]) -> Result<Decoded, CompressionError> {
        let mut fields = Vec::new();
        let mut size = 0usize;
        let max = self.max_list;
        self.inner
            .decode_with_cb(block, |n, v| {
                size = size.saturating_add(n.len() + v.len() + 32);
                if size <= max {
                    fields.push((n.into_owned(), v.into_owned()));
                }
            })
            .map_err(|_| CompressionError)?;
        if size > max {
            return Ok(Decoded::TooLarge);
        }
        Ok(Decoded::Fields(fields))
    }
}

/// The response encoder: indexed fields where the tables hold them, literals
/// otherwise, no Huffman coding.
pub struct HeaderEncoder {
    inner: Encoder<'static>,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        HeaderEncoder {
            inner: Encoder::new(),
        }
    }
}

impl HeaderEncoder {
    /// The peer's decoder allows at most this much table (its
    /// SETTINGS_HEADER_TABLE_SIZE); the caller announces the change.
    pub fn set_max_table_size(&mut self, size: usize) {
        self.inner.set_max_table_size(size);
    }

    pub fn encode<'a>(
        &mut self,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Vec<u8> {
        self.inner.encode(fields)
    }
}

#[cfg(test)]
mod tests {
    //! RFC 7541 Appendix C, byte for byte.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fields(list: &[(&str, &str)]) -> Decoded {
        Decoded::Fields(
            list.iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn c2_single_representations() {
        // C.2.1 literal with indexing, C.2.2 without, C.2.3 never indexed, C.2.4 indexed.
        let mut d = HeaderDecoder::new(1 << 16);
        let c21 = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
        assert_eq!(
            d.decode(&c21).unwrap(),
            fields(&[("custom-key", "custom-header")])
        );
        // The entry is now index 62.
        assert_eq!(
            d.decode(&[0xbe]).unwrap(),
            fields(&[("custom-key", "custom-header")])
        );
        let c22 = hex("040c 2f73 616d 706c 652f 7061 7468");
        assert_eq!(
            d.decode(&c22).unwrap(),
            fields(&[(":path", "/sample/path")])
        );
        let c23 = hex("1008 7061 7373 776f 7264 0673 6563 7265 74");
        assert_eq!(d.decode(&c23).unwrap(), fields(&[("password", "secret")]));
        assert_eq!(d.decode(&hex("82")).unwrap(), fields(&[(":method", "GET")]));
        // C.2.1's encoding, as the encoder produces it.
        let mut e = HeaderEncoder::default();
        assert_eq!(e.encode([(&b"custom-key"[..], &b"custom-header"[..])]), c21);
    }

    const C3: [&str; 3] = [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ];
    const C4: [&str; 3] = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];

    fn requests() -> [Decoded; 3] {
        [
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ]),
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ]),
            fields(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ]),
        ]
    }

    #[test]
    fn c3_requests_without_huffman() {
        let mut d = HeaderDecoder::new(1 << 16);
        for (wire, want) in C3.iter().zip(requests()) {
            assert_eq!(d.decode(&hex(wire)).unwrap(), want);
        }
    }

    #[test]
    fn c4_requests_with_huffman() {
        let mut d = HeaderDecoder::new(1 << 16);
        for (wire, want) in C4.iter().zip(requests()) {
            assert_eq!(d.decode(&hex(wire)).unwrap(), want);
        }
    }

    const C5: [&str; 3] = [
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ];
    const C6: [&str; 3] = [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ];

    fn responses() -> [Decoded; 3] {
        let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
        let loc = "https://www.example.com";
        [
            fields(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", loc),
            ]),
            fields(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", loc),
            ]),
            fields(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", loc),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                ),
            ]),
        ]
    }

    /// C.5 and C.6 run with a 256-byte table, so entries are evicted on the way:
    /// decoding the later responses right proves the evictions were right too.
    fn responses_with_small_table(wire: [&str; 3]) {
        let mut d = HeaderDecoder::new(1 << 16);
        // The encoder announces the smaller table first (a size update, then an
        // indexed field so the block does not end on the update).
        let mut first = vec![0x3f, 0xe1, 0x01];
        first.extend(hex(wire[0]));
        assert_eq!(
            d.decode(&first).unwrap(),
            responses().into_iter().next().unwrap()
        );
        for (w, want) in wire.iter().zip(responses()).skip(1) {
            assert_eq!(d.decode(&hex(w)).unwrap(), want);
        }
    }

    #[test]
    fn c5_responses_without_huffman() {
        responses_with_small_table(C5);
    }

    #[test]
    fn c6_responses_with_huffman() {
        responses_with_small_table(C6);
    }

    #[test]
    fn a_bomb_is_bounded_and_the_table_stays_in_step() {
        // One 4000-byte value indexed, then referenced 1000 times: 4 MB decoded
        // from 4 KB of block.
        let mut block = vec![0x40, 0x01, b'x', 0x7f];
        let mut n = 4000 - 127;
        while n >= 128 {
            block.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        block.push(n as u8);
        block.extend(std::iter::repeat(b'v').take(4000));
        block.extend(std::iter::repeat(0xbe).take(1000));
        let mut d = HeaderDecoder::new(16 * 1024);
        assert_eq!(d.decode(&block).unwrap(), Decoded::TooLarge);
        // The next block may still use the entry.
        match d.decode(&[0xbe]).unwrap() {
            Decoded::Fields(f) => assert_eq!(f[0].1.len(), 4000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_table_larger_than_allowed_is_refused() {
        // Size update to 8192 (> 4096), then an indexed field.
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&[0x3f, 0xe1, 0x3f, 0x82]),
            Err(CompressionError)
        );
        assert_eq!(
            HeaderDecoder::new(1 << 16).decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CompressionError)
        );
    }
}
