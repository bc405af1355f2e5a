//! DUMP and RESTORE end to end: kvd's payloads load in redis-server and Redis's string
//! payloads in kvd, the refusals are Redis's bytes, a restored key survives a restart
//! (the log replays its RESTORE), and garbage with a right footer never hurts the
//! server.

mod kvd_common;

use kvd_common::{kvd, redis_server, Conn};
use std::time::Duration;

/// Appends the RDB version and the CRC-64/Jones footer (Redis's `crc64`).
fn with_footer(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let mut crc: u64 = 0;
    for &b in &p {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

#[test]
fn payloads_cross_between_kvd_and_redis_server() {
    let rd = tempfile::tempdir().unwrap();
    let Some(redis) = redis_server(rd.path()) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let k = kvd(d.path());
    let (mut kc, mut rc) = (Conn::new(k.addr), Conn::new(redis.addr));
    let big = "x".repeat(70_000);
    for c in [&mut kc, &mut rc] {
        c.cmd(&["SET", "s", "hello"]);
        c.cmd(&["SET", "n", "-12345"]);
        c.cmd(&["SET", "big", &big]);
        c.cmd(&["RPUSH", "l", "a", "", "127", "9223372036854775808", &big]);
        c.cmd(&["SADD", "st", "x", "y", "1"]);
        c.cmd(&["SADD", "si", "3", "1", "2"]);
        c.cmd(&["HSET", "h", "f", "v", "n", "12", "long", &big]);
        c.cmd(&["ZADD", "z", "1.5", "a", "inf", "b", "-2", "c", "0", "d"]);
    }
    let reads: Vec<Vec<&str>> = vec![
        vec!["GET", "s"],
        vec!["GET", "n"],
        vec!["STRLEN", "big"],
        vec!["LRANGE", "l", "0", "3"],
        vec!["LLEN", "l"],
        vec!["SORT", "st", "ALPHA"],
        vec!["SMEMBERS", "si"],
        vec!["HLEN", "h"],
        vec!["HMGET", "h", "f", "n"],
        vec!["ZRANGE", "z", "0", "-1", "WITHSCORES"],
    ];
    // Every kvd payload restores in redis-server to the same value.
    for key in ["s", "n", "big", "l", "st", "si", "h", "z"] {
        let p = kc.bulk(&[b"DUMP", key.as_bytes()]);
        let dst = format!("from-kvd-{key}");
        assert_eq!(
            rc.cmd_bytes(&[b"RESTORE", dst.as_bytes(), b"0", &p]),
            b"+OK\r\n",
            "redis-server refused kvd's payload of {key}"
        );
        assert_eq!(rc.cmd(&["RENAME", &dst, &format!("k-{key}")]), "+OK\r\n");
        // And in kvd itself.
        assert_eq!(
            kc.cmd_bytes(&[b"RESTORE", format!("k-{key}").as_bytes(), b"0", &p]),
            b"+OK\r\n"
        );
    }
    for r in &reads {
        let mut moved = r.clone();
        let key = format!("k-{}", r[1]);
        moved[1] = &key;
        assert_eq!(rc.cmd(&moved), kc.cmd(&moved), "{moved:?}");
        assert_eq!(rc.cmd(r), kc.cmd(&moved), "{moved:?}");
    }
    // Redis's payloads restore in kvd: strings (plain, integer, LZF), a quicklist of
    // listpacks and a plain node, an intset, listpacks of a hash and a sorted set, and
    // the plain hash and set types.
    for c in [&mut kc, &mut rc] {
        c.cmd(&[
            "RPUSH",
            "l2",
            "a",
            "-1",
            "300",
            "-70000",
            "9000000",
            "-3000000000",
        ]);
        c.cmd(&[
            "RPUSH",
            "l2",
            "9223372036854775807",
            "-9223372036854775808",
            &"y".repeat(200),
        ]);
        c.cmd(&["HSET", "h2", "f", "v", "n", "-12", "e", ""]);
        c.cmd(&["ZADD", "z2", "1.5", "a", "-3", "b", "100000", "c"]);
        c.cmd(&["SADD", "si2", "-5", "70000", "5000000000"]);
    }
    let reads2: Vec<Vec<&str>> = vec![
        vec!["LRANGE", "l2", "0", "-1"],
        vec!["HGETALL", "h2"],
        vec!["ZRANGE", "z2", "0", "-1", "WITHSCORES"],
        vec!["SMEMBERS", "si2"],
    ];
    for key in ["l", "st", "si", "h", "z", "l2", "h2", "z2", "si2"] {
        let p = rc.bulk(&[b"DUMP", key.as_bytes()]);
        let dst = format!("r-{key}");
        assert_eq!(
            kc.cmd_bytes(&[b"RESTORE", dst.as_bytes(), b"0", &p]),
            b"+OK\r\n",
            "kvd refused redis-server's payload of {key}"
        );
    }
    for r in reads.iter().chain(&reads2) {
        let mut moved = r.clone();
        let key = format!("r-{}", r[1]);
        moved[1] = &key;
        if moved[1] == "r-s" || moved[1] == "r-n" || moved[1] == "r-big" {
            continue;
        }
        assert_eq!(rc.cmd(r), kc.cmd(&moved), "{moved:?}");
    }
    for key in ["s", "n", "big"] {
        let p = rc.bulk(&[b"DUMP", key.as_bytes()]);
        let dst = format!("from-redis-{key}");
        assert_eq!(
            kc.cmd_bytes(&[b"RESTORE", dst.as_bytes(), b"0", &p]),
            b"+OK\r\n"
        );
        assert_eq!(kc.cmd(&["GET", &dst]), rc.cmd(&["GET", key]));
    }
    // The refusals, byte for byte.
    let good = kc.bulk(&[b"DUMP", b"s"]);
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let newer = with_footer(b"\x00\x01x", 11);
    let unknown_type = with_footer(b"\x63\x01x", 10);
    let empty_list = with_footer(b"\x01\x00", 10);
    let lying = with_footer(b"\x01\x81\x7f\xff\xff\xff\xff\xff\xff\xff", 10);
    let trailing = with_footer(b"\x00\x01xy", 10);
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"s", b"0", &good],
        vec![b"RESTORE", b"t", b"0", &flipped],
        vec![b"RESTORE", b"t", b"0", b"short"],
        vec![b"RESTORE", b"t", b"0", &newer],
        vec![b"RESTORE", b"t", b"0", &unknown_type],
        vec![b"RESTORE", b"t", b"0", &empty_list],
        vec![b"RESTORE", b"t", b"0", &lying],
        vec![b"RESTORE", b"t", b"0", &trailing],
        vec![b"RESTORE", b"t", b"-1", &good],
        vec![b"RESTORE", b"t", b"x", &good],
        vec![b"RESTORE", b"t", b"0", &good, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"t", b"0", &good, b"FREQ", b"256"],
        vec![
            b"RESTORE",
            b"t",
            b"0",
            &good,
            b"FREQ",
            b"1",
            b"IDLETIME",
            b"1",
        ],
        vec![b"RESTORE", b"t", b"0", &good, b"NOPE"],
        vec![b"RESTORE", b"t", b"0", &good, b"IDLETIME", b"5", b"REPLACE"],
        vec![b"RESTORE", b"s", b"0", &good, b"REPLACE", b"FREQ", b"7"],
        vec![b"RESTORE", b"u", b"1", &good, b"ABSTTL"],
        vec![b"EXISTS", b"u"],
        vec![b"RESTORE", b"s", b"1", &good, b"ABSTTL", b"REPLACE"],
        vec![b"EXISTS", b"s"],
        vec![b"RESTORE", b"v", b"100000", &good],
        vec![b"EXISTS", b"v"],
        vec![b"DUMP", b"nokey"],
    ];
    for c in &cases {
        let (want, got) = (rc.cmd_bytes(c), kc.cmd_bytes(c));
        let shown: Vec<String> = c
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got),
            "{shown:?}"
        );
    }
    // A relative TTL counts from now (the millisecond may differ between servers).
    let pttl: i64 = kc.cmd(&["PTTL", "v"])[1..].trim().parse().unwrap();
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
}

#[test]
fn restored_keys_survive_a_restart_and_garbage_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let payload;
    {
        let k = kvd(d.path());
        let mut c = Conn::new(k.addr);
        c.cmd(&["ZADD", "z", "1", "a", "2", "b"]);
        c.cmd(&["HSET", "h", "f", "v"]);
        payload = c.bulk(&[b"DUMP", b"z"]);
        assert_eq!(
            c.cmd_bytes(&[b"RESTORE", b"z2", b"0", &payload]),
            b"+OK\r\n"
        );
        let h = c.bulk(&[b"DUMP", b"h"]);
        assert_eq!(c.cmd_bytes(&[b"RESTORE", b"h2", b"500000", &h]), b"+OK\r\n");
        // Random bodies with a right footer: refused or loaded, the server stays up.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..2000 {
            let len = (i % 64) + 1;
            let mut body = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                body.push(x as u8);
            }
            // Every type kvd reads, and some it does not.
            body[0] = [0, 1, 2, 3, 4, 5, 11, 16, 17, 18, 99][body[0] as usize % 11];
            let p = with_footer(&body, 10);
            let r = c.cmd_bytes(&[b"RESTORE", b"g", b"0", &p, b"REPLACE"]);
            assert!(
                r == b"+OK\r\n" || r == b"-ERR Bad data format\r\n",
                "{:?}",
                String::from_utf8_lossy(&r)
            );
        }
        assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
        // Let the log write land before the kill.
        std::thread::sleep(Duration::from_millis(300));
    }
    let k = kvd(d.path());
    let mut c = Conn::new(k.addr);
    assert_eq!(
        c.cmd(&["ZRANGE", "z2", "0", "-1", "WITHSCORES"]),
        "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    assert_eq!(c.cmd(&["HGET", "h2", "f"]), "$1\r\nv\r\n");
    let ttl: i64 = c.cmd(&["PTTL", "h2"])[1..].trim().parse().unwrap();
    assert!(ttl > 400_000 && ttl <= 500_000, "{ttl}");
}
