//! DUMP and RESTORE's payload: one value in Redis's RDB object serialization, then the
//! RDB version (2 bytes, little-endian) and a CRC-64/Jones of everything before it (8
//! bytes, little-endian), as Redis's `createDumpPayload` lays it out.
//!
//! The one idea: kvd writes the plain RDB types every Redis since 2.x reads (a string,
//! a list of strings, a set, a hash, a sorted set with binary doubles), not Redis 7.0's
//! packed encodings, so its payloads load in redis-server too; it reads those same
//! types plus what Redis 7.0 writes for small values and lists: intsets, listpacks
//! (hashes, sorted sets) and quicklists of listpacks, and the string encodings inside
//! them (integers, LZF). Everything
//! read is checked against the bytes left before anything is allocated, so a payload
//! that lies about its lengths is "Bad data format", never a large allocation.

use super::hash::Hash;
use super::set::Set;
use super::value::{Encodings, List, Value};
use super::zset::ZSet;

/// The RDB version Redis 7.0 writes, and the newest it (and kvd) accepts.
pub const RDB_VERSION: u16 = 10;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;

pub const ERR_CHECKSUM: &str = "ERR DUMP payload version or checksum are wrong";
pub const ERR_FORMAT: &str = "ERR Bad data format";

/// CRC-64/Jones as Redis's `crc64` (reflected, polynomial 0xad93d23594c935a9, no
/// final xor), bytewise from a table built at compile time.
const CRC_TABLE: [u64; 256] = {
    // The reflected polynomial.
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    for &b in data {
        crc = CRC_TABLE[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len());
    out.extend_from_slice(s);
}

/// The DUMP payload of `v`.
pub fn serialize(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            put_str(&mut out, s);
        }
        Value::List(l) => {
            out.push(TYPE_LIST);
            put_len(&mut out, l.len());
            for e in l.iter() {
                put_str(&mut out, e);
            }
        }
        Value::Set(s) => {
            out.push(TYPE_SET);
            put_len(&mut out, s.len());
            for m in s.iter() {
                put_str(&mut out, m.as_ref());
            }
        }
        Value::Hash(h) => {
            out.push(TYPE_HASH);
            put_len(&mut out, h.len());
            for (f, v) in h.iter() {
                put_str(&mut out, f);
                put_str(&mut out, v);
            }
        }
        Value::ZSet(z) => {
            out.push(TYPE_ZSET_2);
            put_len(&mut out, z.len());
            // Redis writes a sorted set from its highest score down (so that loading it
            // inserts at the head); either order loads the same set.
            for (s, m) in z.walk(z.len().saturating_sub(1), true, z.len()) {
                put_str(&mut out, m);
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Redis's `verifyDumpPayload`: the footer's version is one kvd reads, and the
/// checksum matches.
pub fn verify(p: &[u8]) -> Result<&[u8], &'static str> {
    if p.len() < 10 {
        return Err(ERR_CHECKSUM);
    }
    let (body, footer) = p.split_at(p.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(ERR_CHECKSUM);
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    if crc64(0, &p[..p.len() - 8]) != u64::from_le_bytes(crc) {
        return Err(ERR_CHECKSUM);
    }
    Ok(body)
}

struct Reader<'a> {
    p: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.p.len() {
            return Err(ERR_FORMAT);
        }
        let (a, b) = self.p.split_at(n);
        self.p = b;
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    /// A length, or `Err` for the special string encodings (which only strings take).
    fn len_or_special(&mut self) -> Result<Result<usize, u8>, &'static str> {
        let b = self.byte()?;
        let n = match b >> 6 {
            0 => u64::from(b & 0x3f),
            1 => (u64::from(b & 0x3f) << 8) | u64::from(self.byte()?),
            2 if b == 0x80 => {
                let mut x = [0u8; 4];
                x.copy_from_slice(self.take(4)?);
                u64::from(u32::from_be_bytes(x))
            }
            2 if b == 0x81 => {
                let mut x = [0u8; 8];
                x.copy_from_slice(self.take(8)?);
                u64::from_be_bytes(x)
            }
            2 => return Err(ERR_FORMAT),
            _ => return Ok(Err(b & 0x3f)),
        };
        usize::try_from(n).map(Ok).map_err(|_| ERR_FORMAT)
    }

    /// A count of elements, each at least `min` bytes: more than the bytes left could
    /// hold is a lie.
    fn count(&mut self, min: usize) -> Result<usize, &'static str> {
        match self.len_or_special()? {
            Ok(n) if n.checked_mul(min).is_some_and(|b| b <= self.p.len()) => Ok(n),
            _ => Err(ERR_FORMAT),
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, &'static str> {
        match self.len_or_special()? {
            Ok(n) => Ok(self.take(n)?.to_vec()),
            Err(0) => Ok((self.byte()? as i8).to_string().into_bytes()),
            Err(1) => {
                let b = self.take(2)?;
                Ok(i16::from_le_bytes([b[0], b[1]]).to_string().into_bytes())
            }
            Err(2) => {
                let mut x = [0u8; 4];
                x.copy_from_slice(self.take(4)?);
                Ok(i32::from_le_bytes(x).to_string().into_bytes())
            }
            Err(3) => {
                let clen = self.count(1)?;
                let len = match self.len_or_special()? {
                    Ok(n) => n,
                    Err(_) => return Err(ERR_FORMAT),
                };
                // Three input bytes decode to at most 264: a declared length past
                // what the input could give is refused before anything is allocated.
                if len > clen.saturating_mul(88) {
                    return Err(ERR_FORMAT);
                }
                lzf_decompress(self.take(clen)?, len)
            }
            Err(_) => Err(ERR_FORMAT),
        }
    }

    fn binary_double(&mut self) -> Result<f64, &'static str> {
        let mut x = [0u8; 8];
        x.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(x))
    }
}

/// LZF (liblzf's `lzf_decompress`), the compression Redis applies to long strings:
/// exactly `len` bytes must come out.
fn lzf_decompress(mut input: &[u8], len: usize) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(len);
    while let Some((&ctrl, rest)) = input.split_first() {
        input = rest;
        let ctrl = usize::from(ctrl);
        if ctrl < 32 {
            // A literal run of ctrl + 1 bytes.
            let n = ctrl + 1;
            if n > input.len() || out.len() + n > len {
                return Err(ERR_FORMAT);
            }
            out.extend_from_slice(&input[..n]);
            input = &input[n..];
        } else {
            // A back reference: length and offset.
            let mut n = ctrl >> 5;
            let (&b, rest) = input.split_first().ok_or(ERR_FORMAT)?;
            input = rest;
            if n == 7 {
                n += usize::from(b);
                let (&o, rest) = input.split_first().ok_or(ERR_FORMAT)?;
                input = rest;
                let back = ((ctrl & 0x1f) << 8) + usize::from(o) + 1;
                copy_back(&mut out, back, n + 2, len)?;
            } else {
                let back = ((ctrl & 0x1f) << 8) + usize::from(b) + 1;
                copy_back(&mut out, back, n + 2, len)?;
            }
        }
    }
    if out.len() != len {
        return Err(ERR_FORMAT);
    }
    Ok(out)
}

fn copy_back(out: &mut Vec<u8>, back: usize, n: usize, len: usize) -> Result<(), &'static str> {
    if back > out.len() || out.len() + n > len {
        return Err(ERR_FORMAT);
    }
    let start = out.len() - back;
    // Byte by byte: the run may overlap what it writes.
    for i in 0..n {
        let c = out[start + i];
        out.push(c);
    }
    Ok(())
}

/// The entries of a listpack (Redis's `listpack.c`): a 6-byte header (total bytes,
/// count), entries each followed by its back-length, and 0xFF. Integers come back as
/// their decimal text, as Redis reads them.
fn listpack(lp: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    if lp.len() < 7 || lp[lp.len() - 1] != 0xff {
        return Err(ERR_FORMAT);
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err(ERR_FORMAT);
    }
    let mut r = Reader {
        p: &lp[6..lp.len() - 1],
    };
    let mut out = Vec::new();
    while !r.p.is_empty() {
        let start = r.p.len();
        let b = r.byte()?;
        let int = |v: i64| Ok::<_, &'static str>(v.to_string().into_bytes());
        let le = |r: &mut Reader<'_>, n: usize| -> Result<i64, &'static str> {
            let bytes = r.take(n)?;
            let mut x = [0u8; 8];
            x[..n].copy_from_slice(bytes);
            // Sign-extend from n bytes.
            let shift = 64 - 8 * n as u32;
            Ok((i64::from_le_bytes(x) << shift) >> shift)
        };
        let entry = if b & 0x80 == 0 {
            int(i64::from(b & 0x7f))?
        } else if b & 0xc0 == 0x80 {
            r.take(usize::from(b & 0x3f))?.to_vec()
        } else if b & 0xe0 == 0xc0 {
            let v = (i64::from(b & 0x1f) << 8) | i64::from(r.byte()?);
            int((v << 51) >> 51)?
        } else if b & 0xf0 == 0xe0 {
            let n = (usize::from(b & 0x0f) << 8) | usize::from(r.byte()?);
            r.take(n)?.to_vec()
        } else {
            match b {
                0xf0 => {
                    let n = le(&mut r, 4)? as u32 as usize;
                    r.take(n)?.to_vec()
                }
                0xf1 => int(le(&mut r, 2)?)?,
                0xf2 => int(le(&mut r, 3)?)?,
                0xf3 => int(le(&mut r, 4)?)?,
                0xf4 => int(le(&mut r, 8)?)?,
                _ => return Err(ERR_FORMAT),
            }
        };
        let used = start - r.p.len();
        let backlen = match used {
            0..=127 => 1,
            128..=16_383 => 2,
            16_384..=2_097_151 => 3,
            2_097_152..=268_435_455 => 4,
            _ => 5,
        };
        r.take(backlen)?;
        out.push(entry);
    }
    Ok(out)
}

/// An intset (Redis's `intset.c`): element width, count, then the elements, all
/// little-endian.
fn intset(blob: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    if blob.len() < 8 {
        return Err(ERR_FORMAT);
    }
    let width = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    let n = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || n.checked_mul(width) != Some(blob.len() - 8) {
        return Err(ERR_FORMAT);
    }
    Ok(blob[8..]
        .chunks_exact(width)
        .map(|c| {
            let mut x = [0u8; 8];
            x[..width].copy_from_slice(c);
            let shift = 64 - 8 * width as u32;
            ((i64::from_le_bytes(x) << shift) >> shift)
                .to_string()
                .into_bytes()
        })
        .collect())
}

fn set_of(members: Vec<Vec<u8>>, lim: &Encodings) -> Result<Value, &'static str> {
    if members.is_empty() {
        return Err(ERR_FORMAT);
    }
    let mut s = Set::default();
    for m in members {
        if !s.insert(&m, lim) {
            return Err(ERR_FORMAT);
        }
    }
    Ok(Value::Set(Box::new(s)))
}

fn hash_of(items: Vec<Vec<u8>>, lim: &Encodings) -> Result<Value, &'static str> {
    if items.is_empty() || items.len() % 2 != 0 {
        return Err(ERR_FORMAT);
    }
    let mut h = Hash::default();
    for pair in items.chunks_exact(2) {
        if !h.insert(&pair[0], &pair[1], lim) {
            return Err(ERR_FORMAT);
        }
    }
    Ok(Value::Hash(Box::new(h)))
}

fn zset_of(items: Vec<(Vec<u8>, f64)>, lim: &Encodings) -> Result<Value, &'static str> {
    if items.is_empty() {
        return Err(ERR_FORMAT);
    }
    let mut z = ZSet::with_capacity(items.len(), lim);
    for (m, s) in items {
        if s.is_nan() || z.score(&m).is_some() {
            return Err(ERR_FORMAT);
        }
        z.insert(&m, s, lim);
    }
    Ok(Value::ZSet(Box::new(z)))
}

/// The value in a verified payload's body (see [`verify`]). An empty collection, a
/// duplicate member, a NaN score or an encoding kvd does not read
/// (Redis 7.0's listpacks, intsets, quicklists) are "Bad data format".
pub fn deserialize(body: &[u8], lim: &Encodings) -> Result<Value, &'static str> {
    let mut r = Reader { p: body };
    let v = match r.byte()? {
        TYPE_STRING => Value::Str(r.string()?),
        TYPE_LIST => {
            let n = r.count(1)?;
            if n == 0 {
                return Err(ERR_FORMAT);
            }
            // Grown as elements arrive: a count is only as true as the bytes after it.
            let mut l = List::with_capacity(n.min(1024));
            for _ in 0..n {
                l.push_back(r.string()?.into_boxed_slice());
            }
            Value::List(Box::new(l))
        }
        TYPE_SET => {
            let n = r.count(1)?;
            let members = (0..n).map(|_| r.string()).collect::<Result<_, _>>()?;
            set_of(members, lim)?
        }
        TYPE_HASH => {
            let n = r.count(2)?;
            let items = (0..2 * n).map(|_| r.string()).collect::<Result<_, _>>()?;
            hash_of(items, lim)?
        }
        TYPE_ZSET_2 => {
            let n = r.count(9)?;
            let items = (0..n)
                .map(|_| Ok((r.string()?, r.binary_double()?)))
                .collect::<Result<_, &'static str>>()?;
            zset_of(items, lim)?
        }
        TYPE_SET_INTSET => set_of(intset(&r.string()?)?, lim)?,
        TYPE_HASH_LISTPACK => hash_of(listpack(&r.string()?)?, lim)?,
        TYPE_ZSET_LISTPACK => {
            let flat = listpack(&r.string()?)?;
            if flat.len() % 2 != 0 {
                return Err(ERR_FORMAT);
            }
            let mut items = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(m), Some(s)) = (it.next(), it.next()) {
                let s = std::str::from_utf8(&s)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or(ERR_FORMAT)?;
                items.push((m, s));
            }
            zset_of(items, lim)?
        }
        TYPE_LIST_QUICKLIST_2 => {
            // Nodes: a container (1 plain: one element; 2 packed: a listpack).
            let nodes = r.count(2)?;
            let mut l = List::new();
            for _ in 0..nodes {
                match r.len_or_special()? {
                    Ok(1) => l.push_back(r.string()?.into_boxed_slice()),
                    Ok(2) => {
                        let items = listpack(&r.string()?)?;
                        if items.is_empty() {
                            return Err(ERR_FORMAT);
                        }
                        l.extend(items.into_iter().map(Vec::into_boxed_slice));
                    }
                    _ => return Err(ERR_FORMAT),
                }
            }
            if l.is_empty() {
                return Err(ERR_FORMAT);
            }
            Value::List(Box::new(l))
        }
        _ => return Err(ERR_FORMAT),
    };
    // Bytes after the value are ignored, as Redis ignores them.
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_jones_check_value() {
        // Redis's own test vector (crc64.c).
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn redis_string_payloads_load() {
        // DUMP from redis-server 7.0.15 of "hello", of "123" (an int-encoded string)
        // and of 100 'a's (LZF-compressed).
        let hello = b"\x00\x05hello\n\x00cr\xdfve4 \n";
        let n123 = b"\x00\xc0{\n\x00H\xe2S\xe1\x00zg\xb9";
        let big = b"\x00\xc3\t@d\x01aa\xe0W\x00\x01aa\n\x00\xe8\xa3\xb5\x07\xb0m\xf2q";
        let lim = Encodings::default();
        for (p, want) in [
            (&hello[..], b"hello".to_vec()),
            (&n123[..], b"123".to_vec()),
            (&big[..], vec![b'a'; 100]),
        ] {
            let v = deserialize(verify(p).unwrap(), &lim).unwrap();
            assert!(matches!(v, Value::Str(ref s) if *s == want));
        }
        // kvd's payload for a short plain string is Redis's, byte for byte.
        assert_eq!(&serialize(&Value::Str(b"hello".to_vec()))[..], &hello[..]);
    }

    /// DUMP from redis-server 7.0.15 of a quicklist (listpack node with every integer
    /// width, LZF-compressed), a listpack hash and sorted set, and an intset.
    const REDIS_PACKED: [&[u8]; 4] = [
        b"\x12\x01\x02\xc3\x3e\x41\x05\x1f\x05\x01\x00\x00\x09\x00\x81\x61\x02\xdf\xff\x02\xc1\x2c\x02\xf2\x90\xee\xfe\x04\xf3\x40\x54\x89\x00\x05\xf4\x00\xa2\x2f\x4d\xff\x20\x00\x01\x09\xf4\x20\x04\x40\x00\x03\x7f\x09\xf4\x00\x80\x00\x04\x80\x09\xe0\xc8\x79\xe0\xbe\x00\x02\x01\xca\xff\x0a\x00\xac\x08\x7c\x4b\xce\x94\x76\x9d",
        b"\x10\x18\x18\x00\x00\x00\x06\x00\x81\x66\x02\x81\x76\x02\x81\x6e\x02\xdf\xf4\x02\x81\x65\x02\x80\x01\xff\x0a\x00\xe3\xb5\x4c\xae\x65\xd2\xf0\x78",
        b"\x11\x1d\x1d\x00\x00\x00\x06\x00\x81\x62\x02\xdf\xfd\x02\x81\x61\x02\x83\x31\x2e\x35\x04\x81\x63\x02\xf2\xa0\x86\x01\x04\xff\x0a\x00\x74\xb5\x5c\x4d\x50\xc3\x89\x16",
        b"\x0b\x20\x08\x00\x00\x00\x03\x00\x00\x00\xfb\xff\xff\xff\xff\xff\xff\xff\x70\x11\x01\x00\x00\x00\x00\x00\x00\xf2\x05\x2a\x01\x00\x00\x00\x0a\x00\x96\x6c\x48\x93\x1a\x95\x8d\x73",
    ];

    #[test]
    fn redis_packed_payloads_load() {
        let lim = Encodings::default();
        let vals: Vec<Value> = REDIS_PACKED
            .iter()
            .map(|p| deserialize(verify(p).unwrap(), &lim).unwrap())
            .collect();
        let Value::List(l) = &vals[0] else { panic!() };
        let got: Vec<&[u8]> = l.iter().map(|e| &e[..]).collect();
        let long = vec![b'y'; 200];
        let want: Vec<&[u8]> = vec![
            b"a",
            b"-1",
            b"300",
            b"-70000",
            b"9000000",
            b"-3000000000",
            b"9223372036854775807",
            b"-9223372036854775808",
            &long,
        ];
        assert_eq!(got, want);
        let Value::Hash(h) = &vals[1] else { panic!() };
        let got: Vec<(&[u8], &[u8])> = h.iter().collect();
        assert_eq!(
            got,
            vec![(&b"f"[..], &b"v"[..]), (b"n", b"-12"), (b"e", b"")]
        );
        let Value::ZSet(z) = &vals[2] else { panic!() };
        let got: Vec<(f64, &[u8])> = z.walk(0, false, 3).collect();
        assert_eq!(got, vec![(-3.0, &b"b"[..]), (1.5, b"a"), (100000.0, b"c")]);
        let Value::Set(s) = &vals[3] else { panic!() };
        let mut got: Vec<Vec<u8>> = s.iter().map(|m| m.as_ref().to_vec()).collect();
        got.sort();
        assert_eq!(
            got,
            vec![b"-5".to_vec(), b"5000000000".to_vec(), b"70000".to_vec()]
        );
    }

    /// Every cut and every single-byte change of real payloads' bodies: a value or
    /// "Bad data format", never a panic.
    #[test]
    fn damaged_redis_payloads_never_panic() {
        let lim = Encodings::default();
        for p in REDIS_PACKED {
            let body = verify(p).unwrap();
            for cut in 0..body.len() {
                let _ = deserialize(&body[..cut], &lim);
            }
            for i in 0..body.len() {
                for x in [0x01u8, 0x80, 0xff, 0x3f, 0x40] {
                    let mut b = body.to_vec();
                    b[i] ^= x;
                    if let Err(e) = deserialize(&b, &lim) {
                        assert_eq!(e, ERR_FORMAT);
                    }
                }
            }
        }
    }

    #[test]
    fn int_and_lzf_strings() {
        let lim = Encodings::default();
        let mut p = vec![TYPE_STRING, 0xc0, 0x85];
        p.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        assert!(
            matches!(deserialize(verify(&p).unwrap(), &lim), Ok(Value::Str(s)) if s == b"-123")
        );
        // "aaaaaaaaaa": a literal 'a' then a back reference of 9 at distance 1.
        let lzf = [0x00, b'a', 0xe0, 0x00, 0x00];
        let mut body = vec![TYPE_STRING, 0xc3, lzf.len() as u8, 10];
        body.extend_from_slice(&lzf);
        assert!(matches!(deserialize(&body, &lim), Ok(Value::Str(s)) if s == b"aaaaaaaaaa"));
        // A back reference before the start, or an output longer than declared.
        let mut bad = vec![TYPE_STRING, 0xc3, 3, 10, 0xe0, 0x00, 0x05];
        assert_eq!(deserialize(&bad, &lim).err(), Some(ERR_FORMAT));
        bad = vec![TYPE_STRING, 0xc3, 5, 3];
        bad.extend_from_slice(&lzf);
        assert_eq!(deserialize(&bad, &lim).err(), Some(ERR_FORMAT));
    }

    #[test]
    fn footer_checks() {
        let mut p = serialize(&Value::Str(b"x".to_vec()));
        assert!(verify(&p).is_ok());
        let n = p.len();
        p[n - 1] ^= 1;
        assert_eq!(verify(&p).err(), Some(ERR_CHECKSUM));
        assert_eq!(verify(b"short").err(), Some(ERR_CHECKSUM));
        // A newer RDB version, even with a right checksum.
        let mut q = vec![TYPE_STRING, 1, b'x', 11, 0];
        let crc = crc64(0, &q);
        q.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(verify(&q).err(), Some(ERR_CHECKSUM));
    }

    proptest::proptest! {
        /// Any body, with a right footer, is a value or "Bad data format": never a panic,
        /// never an allocation beyond what its bytes could hold.
        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut p = body.clone();
            p.extend_from_slice(&RDB_VERSION.to_le_bytes());
            let crc = crc64(0, &p);
            p.extend_from_slice(&crc.to_le_bytes());
            let b = verify(&p).unwrap();
            match deserialize(b, &Encodings::default()) {
                Ok(v) => proptest::prop_assert_eq!(deserialize(verify(&serialize(&v)).unwrap(), &Encodings::default()).map(|w| serialize(&w)), Ok(serialize(&v))),
                Err(e) => proptest::prop_assert_eq!(e, ERR_FORMAT),
            }
        }

        /// Typed garbage: a valid type byte and then anything.
        #[test]
        fn typed_garbage_never_panics(t in proptest::sample::select(vec![0u8, 1, 2, 4, 5, 11, 16, 17, 18]), body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut b = vec![t];
            b.extend_from_slice(&body);
            let _ = deserialize(&b, &Encodings::default());
        }

        #[test]
        fn round_trips(items in proptest::collection::vec((proptest::collection::vec(proptest::num::u8::ANY, 0..80), -1e9f64..1e9), 1..40)) {
            let lim = Encodings::default();
            let mut z = ZSet::default();
            let mut l = List::new();
            let mut h = Hash::default();
            let mut s = Set::default();
            for (m, sc) in &items {
                z.insert(m, *sc, &lim);
                l.push_back(m.clone().into_boxed_slice());
                h.insert(m, &sc.to_le_bytes(), &lim);
                s.insert(m, &lim);
            }
            for v in [Value::ZSet(Box::new(z)), Value::List(Box::new(l)), Value::Hash(Box::new(h)), Value::Set(Box::new(s)), Value::Str(items[0].0.clone())] {
                let p = serialize(&v);
                let back = deserialize(verify(&p).unwrap(), &lim).unwrap();
                proptest::prop_assert_eq!(serialize(&back), p);
            }
        }
    }
}
