//! SORT and SORT_RO against a model and through the log; strings keeping the encoding
//! the command that wrote them gave them; nothing expiring while the log replays.

use super::types_tests::{encoding, step, Client};
use super::*;
use proptest::prelude::*;

/// A RESP array of bulk strings.
fn bulks<S: AsRef<str>>(xs: &[S]) -> String {
    let mut s = format!("*{}\r\n", xs.len());
    for x in xs {
        let x = x.as_ref();
        s += &format!("${}\r\n{x}\r\n", x.len());
    }
    s
}

/// What SORT answers for `items`, computed the plain way: numbers (ties by bytes) or
/// bytes, reversed by DESC, then Redis's LIMIT window.
fn model(items: &[String], alpha: bool, desc: bool, offset: i64, count: i64) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort_by(|a, b| {
        let o = if alpha {
            a.cmp(b)
        } else {
            let (x, y): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
            x.partial_cmp(&y).unwrap().then_with(|| a.cmp(b))
        };
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    let start = offset.max(0) as usize;
    if start >= v.len() {
        return Vec::new();
    }
    let end = if count < 0 {
        v.len()
    } else {
        (start + count as usize).min(v.len())
    };
    v[start..end].to_vec()
}

/// Elements with ties: the same number spelled differently, negatives, fractions.
const POOL: &[&str] = &[
    "1", "01", "1.0", "-3", "2.5", "10", "9", "-0", "0", "1e1", "-2.5",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// SORT of a list, a set and a sorted set, with and without STORE, against the
    /// model.
    #[test]
    fn sort_matches_a_model(
        picks in proptest::collection::vec(0..POOL.len(), 0..24),
        alpha in any::<bool>(),
        desc in any::<bool>(),
        offset in -2i64..26,
        count in -2i64..26,
        kind in 0u8..3,
    ) {
        let mut c = Client::memory();
        let mut items: Vec<String> = picks.iter().map(|&i| POOL[i].to_owned()).collect();
        if !items.is_empty() {
            let mut args = vec![["RPUSH", "SADD", "ZADD"][usize::from(kind)], "k"];
            for (i, it) in items.iter().enumerate() {
                if kind == 2 {
                    args.push(["3", "1", "2"][i % 3]);
                }
                args.push(it);
            }
            let r = c.cmd(&args);
            prop_assert!(r.starts_with(':'), "{r}");
        }
        if kind > 0 {
            items.sort();
            items.dedup();
        }
        let want = model(&items, alpha, desc, offset, count);
        let (o, n) = (offset.to_string(), count.to_string());
        let mut args = vec!["SORT", "k", "LIMIT", &o, &n];
        if alpha {
            args.push("ALPHA");
        }
        if desc {
            args.push("DESC");
        }
        prop_assert_eq!(c.cmd(&args), bulks(&want));
        args[0] = "SORT_RO";
        prop_assert_eq!(c.cmd(&args), bulks(&want));
        args[0] = "SORT";
        args.extend(["STORE", "dst"]);
        prop_assert_eq!(c.cmd(&args), format!(":{}\r\n", want.len()));
        prop_assert_eq!(c.cmd(&["LRANGE", "dst", "0", "-1"]), bulks(&want));
        prop_assert_eq!(c.cmd(&["EXISTS", "dst"]), format!(":{}\r\n", u8::from(!want.is_empty())));
    }
}

#[test]
fn by_and_get_read_strings_and_hash_fields() {
    let mut c = Client::memory();
    c.cmd(&["RPUSH", "l", "a", "b", "c", "d"]);
    c.cmd(&["MSET", "w_a", "3", "w_b", "1", "w_c", "2"]);
    c.cmd(&["HSET", "h_a", "name", "zed", "n", "5"]);
    c.cmd(&["HSET", "h_b", "name", "amy"]);
    c.cmd(&["HSET", "h_c", "name", "kim", "n", "-1"]);
    // `d` has no weight: 0, before every positive one.
    assert_eq!(
        c.cmd(&["SORT", "l", "BY", "w_*"]),
        bulks(&["d", "b", "c", "a"])
    );
    assert_eq!(
        c.cmd(&["SORT", "l", "BY", "h_*->name", "ALPHA"]),
        bulks(&["d", "b", "c", "a"])
    );
    assert_eq!(
        c.cmd(&["SORT", "l", "BY", "h_*->n", "DESC"]),
        bulks(&["a", "d", "b", "c"])
    );
    assert_eq!(
        c.cmd(&[
            "SORT",
            "l",
            "BY",
            "w_*",
            "GET",
            "#",
            "GET",
            "h_*->name",
            "LIMIT",
            "1",
            "2"
        ]),
        "*4\r\n$1\r\nb\r\n$3\r\namy\r\n$1\r\nc\r\n$3\r\nkim\r\n"
    );
    // Missing values are nulls in a reply and empty strings in a stored list; a
    // pattern without `*` names nothing; a hash is not a string, nor a string a hash.
    assert_eq!(
        c.cmd(&[
            "SORT", "l", "BY", "nosort", "GET", "w_*", "GET", "const", "GET", "h_*", "LIMIT", "2",
            "2"
        ]),
        "*6\r\n$1\r\n2\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n"
    );
    assert_eq!(
        c.cmd(&["SORT", "l", "BY", "nosort", "GET", "w_*->x", "STORE", "d"]),
        ":4\r\n"
    );
    assert_eq!(c.cmd(&["LRANGE", "d", "0", "-1"]), bulks(&["", "", "", ""]));
    // BY nosort keeps a list's order (DESC reverses it) and a sorted set's.
    assert_eq!(
        c.cmd(&["SORT", "l", "BY", "nosort", "DESC", "LIMIT", "1", "2"]),
        bulks(&["c", "b"])
    );
    c.cmd(&["ZADD", "z", "3", "x", "1", "y", "2", "w"]);
    assert_eq!(
        c.cmd(&["SORT", "z", "BY", "nosort"]),
        bulks(&["y", "w", "x"])
    );
    assert_eq!(
        c.cmd(&["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "0", "2"]),
        bulks(&["x", "w"])
    );
    // A weight that is not a number fails the whole command, and stores nothing.
    c.cmd(&["SET", "w_d", "x1"]);
    assert_eq!(
        c.cmd(&["SORT", "l", "BY", "w_*", "STORE", "d2"]),
        "-ERR One or more scores can't be converted into double\r\n"
    );
    assert_eq!(c.cmd(&["EXISTS", "d2"]), ":0\r\n");
    // Errors in Redis's order and words.
    c.cmd(&["SET", "s", "v"]);
    assert_eq!(
        c.cmd(&["SORT", "s"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert_eq!(c.cmd(&["SORT", "s", "FOO"]), "-ERR syntax error\r\n");
    assert_eq!(
        c.cmd(&["SORT", "s", "LIMIT", "0", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        c.cmd(&["SORT_RO", "l", "STORE", "d"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        c.cmd(&["SORT_RO"]),
        "-ERR wrong number of arguments for 'sort_ro' command\r\n"
    );
}

#[test]
fn a_set_sorted_by_nosort_into_a_list_is_sorted_alpha() {
    let mut c = Client::memory();
    // Not in byte order in the table.
    c.cmd(&["SADD", "s", "pear", "apple", "fig", "10", "9"]);
    assert_eq!(
        c.cmd(&["SORT", "s", "BY", "nosort", "STORE", "d"]),
        ":5\r\n"
    );
    assert_eq!(
        c.cmd(&["LRANGE", "d", "0", "-1"]),
        bulks(&["10", "9", "apple", "fig", "pear"])
    );
    // Equal weights keep the load order, which for a stored sort of a set is the
    // members' byte order, not the table's.
    assert_eq!(
        c.cmd(&[
            "SORT",
            "s",
            "BY",
            "nothing_*",
            "ALPHA",
            "DESC",
            "STORE",
            "d"
        ]),
        ":5\r\n"
    );
    assert_eq!(
        c.cmd(&["LRANGE", "d", "0", "-1"]),
        bulks(&["10", "9", "apple", "fig", "pear"])
    );
}

#[test]
fn sort_store_is_logged_as_sent_and_replays_to_the_same_lists() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    };
    let before = {
        let mut c = Client::new(Kv::open(cfg.clone()).unwrap());
        c.cmd(&["RPUSH", "l", "3", "1", "2"]);
        c.cmd(&["SADD", "s", "b", "c", "a"]);
        c.cmd(&["MSET", "w_1", "z", "w_2", "y", "w_3", "x"]);
        c.cmd(&["HSET", "h_a", "f", "1"]);
        c.cmd(&["HSET", "h_b", "f", "1"]);
        c.cmd(&["HSET", "h_c", "f", "0"]);
        for args in [
            &["SORT", "l", "STORE", "d1"][..],
            &[
                "SORT", "l", "BY", "w_*", "ALPHA", "GET", "#", "GET", "w_*", "STORE", "d2",
            ],
            &["SORT", "s", "BY", "h_*->f", "STORE", "d3"],
            &["SORT", "s", "BY", "nosort", "STORE", "d4"],
            &["SET", "gone", "x"],
            &["SORT", "nokey", "STORE", "gone"],
        ] {
            let r = c.cmd(args);
            assert!(r.starts_with(':') || r == "+OK\r\n", "{args:?}: {r}");
        }
        // The sorted lists change the data they were made from afterwards: the
        // replay must sort the data as it was then.
        c.cmd(&["RPUSH", "l", "0"]);
        c.cmd(&["SET", "w_1", "a"]);
        c.dump()
    };
    let mut c = Client::new(Kv::open(cfg).unwrap());
    assert_eq!(c.dump(), before);
    assert_eq!(
        c.cmd(&["LRANGE", "d2", "0", "-1"]),
        bulks(&["3", "x", "2", "y", "1", "z"])
    );
    assert_eq!(c.cmd(&["LRANGE", "d3", "0", "-1"]), bulks(&["c", "a", "b"]));
    assert_eq!(c.cmd(&["EXISTS", "gone"]), ":0\r\n");
    let log = std::fs::read_to_string(d.path().join(aof::FILE_NAME)).unwrap();
    assert!(log.contains("SORT"), "{log}");
    assert!(log.contains("$3\r\nDEL\r\n$4\r\ngone"), "{log}");
    // SORT_RO and SORT without STORE change nothing, and are not logged.
    let size = log.len();
    c.cmd(&["SORT", "l"]);
    c.cmd(&["SORT_RO", "l", "ALPHA"]);
    drop(c);
    let log = std::fs::read_to_string(d.path().join(aof::FILE_NAME)).unwrap();
    assert_eq!(log.len(), size);
}

#[test]
fn sort_work_is_bounded_by_the_data_and_the_argument_limit() {
    let mut c = Client::new(
        Kv::open(Config {
            limits: resp::Limits {
                max_args: 1000,
                ..resp::Limits::default()
            },
            ..Config::default()
        })
        .unwrap(),
    );
    c.cmd(&[
        "RPUSH", "l", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
    ]);
    let huge = i64::MAX.to_string();
    assert_eq!(
        c.cmd(&["SORT", "l", "LIMIT", "8", &huge]),
        bulks(&["9", "10"])
    );
    assert_eq!(c.cmd(&["SORT", "l", "LIMIT", &huge, &huge]), "*0\r\n");
    // 10 elements and 150 GETs: 1,500 entries, over the limit of 1,000.
    let mut args = vec!["SORT", "l"];
    for _ in 0..150 {
        args.extend(["GET", "#"]);
    }
    assert!(c
        .cmd(&args)
        .starts_with("-ERR SORT would answer 1500 entries"));
    args.extend(["STORE", "d"]);
    assert!(c
        .cmd(&args)
        .starts_with("-ERR SORT would answer 1500 entries"));
    assert_eq!(c.cmd(&["EXISTS", "d"]), ":0\r\n");
    // The same GETs over a window of 6 fit.
    args.truncate(2 + 300);
    args.extend(["LIMIT", "0", "6"]);
    assert!(c.cmd(&args).starts_with("*900\r\n"));
}

#[test]
fn strings_changed_in_place_are_raw_until_a_write_replaces_them() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    };
    let mut c = Client::new(Kv::open(cfg.clone()).unwrap());
    for (args, key, want) in [
        (&["SET", "a", "12"][..], "a", "int"),
        (&["APPEND", "a", "3"], "a", "raw"),
        (&["APPEND", "new", "12"], "new", "int"),
        (&["SET", "b", "hi"], "b", "embstr"),
        (&["APPEND", "b", ""], "b", "raw"),
        (&["SET", "r", "7"], "r", "int"),
        (&["SETRANGE", "r", "0", ""], "r", "int"),
        (&["SETRANGE", "r", "0", "8"], "r", "raw"),
        (&["SETRANGE", "fresh", "0", "5"], "fresh", "raw"),
        (&["SETBIT", "bits", "1", "1"], "bits", "raw"),
        (&["INCRBYFLOAT", "f", "3"], "f", "embstr"),
        (&["RENAME", "a", "a2"], "a2", "raw"),
        (&["COPY", "a2", "a3"], "a3", "raw"),
        (&["INCR", "a3"], "a3", "int"),
        (&["SET", "r", "8"], "r", "int"),
        (&["APPEND", "b", "x"], "b", "raw"),
        (&["MSET", "b", "5"], "b", "int"),
    ] {
        assert!(!c.cmd(args).starts_with('-'), "{args:?}");
        assert_eq!(encoding(&mut c, key), want, "{args:?}");
    }
    // A replay runs APPEND and SETRANGE again: raw again. (A rewritten log holds
    // plain SETs, which Redis, too, loads as int or embstr.)
    drop(c);
    let mut c = Client::new(Kv::open(cfg).unwrap());
    assert_eq!(encoding(&mut c, "a2"), "raw");
    assert_eq!(encoding(&mut c, "fresh"), "raw");
    assert_eq!(encoding(&mut c, "b"), "int");
    let mut snap = Vec::new();
    c.kv.ks.write_snapshot(&mut snap).unwrap();
    let mut fresh = Client::memory();
    fresh.send(&snap);
    assert_eq!(encoding(&mut fresh, "a2"), "int");
    // Deleting forgets it: the next string under that name is judged by its bytes.
    c.cmd(&["DEL", "a2"]);
    c.cmd(&["SET", "a2", "1"]);
    assert_eq!(encoding(&mut c, "a2"), "int");
}

#[test]
fn nothing_expires_while_the_log_replays() {
    let d = tempfile::tempdir().unwrap();
    let cfg = Config {
        dir: Some(d.path().to_owned()),
        ..Config::default()
    };
    {
        let mut c = Client::new(Kv::open(cfg.clone()).unwrap());
        c.cmd(&["SET", "s", "v", "PX", "150"]);
        c.cmd(&["APPEND", "s", "w"]);
        c.cmd(&["RPUSH", "l", "a"]);
        c.cmd(&["PEXPIRE", "l", "150"]);
        c.cmd(&["RPUSH", "l", "b"]);
        c.cmd(&["SORT", "l", "ALPHA", "STORE", "sorted"]);
        c.cmd(&["SET", "keep", "k"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut c = Client::new(Kv::open(cfg).unwrap());
    // Both expired before the restart: the writes after their expiry time was set
    // changed them, they did not make new keys without one.
    assert_eq!(c.cmd(&["GET", "s"]), "$-1\r\n");
    assert_eq!(c.cmd(&["EXISTS", "l"]), ":0\r\n");
    // The sort read the list as it was, with both elements.
    assert_eq!(c.cmd(&["LRANGE", "sorted", "0", "-1"]), bulks(&["a", "b"]));
    assert_eq!(c.cmd(&["GET", "keep"]), "$1\r\nk\r\n");
}

#[test]
fn a_waiter_on_the_destination_gets_what_sort_stored() {
    // Redis's "BLPOP when result key is created by SORT..STORE".
    let mut kv = Kv::open(Config::default()).unwrap();
    let mut out = Outbox::new();
    let peer = "127.0.0.1:1".parse().unwrap();
    let mut a = kv.open(ConnId(1), peer, &mut out);
    let mut b = kv.open(ConnId(2), peer, &mut out);
    assert!(step(&mut kv, 1, &mut a, &["BLPOP", "foo", "5"]).is_empty());
    step(
        &mut kv,
        2,
        &mut b,
        &[
            "LPUSH",
            "notfoo",
            "hello",
            "hola",
            "aguacate",
            "konichiwa",
            "zanzibar",
        ],
    );
    let got = step(
        &mut kv,
        2,
        &mut b,
        &["SORT", "notfoo", "ALPHA", "STORE", "foo"],
    );
    assert!(got.contains(&(2, ":5\r\n".into())), "{got:?}");
    assert!(got.contains(&(1, bulks(&["foo", "aguacate"]))), "{got:?}");
}

#[test]
fn sort_store_touches_and_announces_only_its_destination() {
    let mut kv = Kv::open(Config::default()).unwrap();
    let mut out = Outbox::new();
    let peer = "127.0.0.1:1".parse().unwrap();
    let mut c: Vec<KvConn> = (0..3)
        .map(|i| kv.open(ConnId(i + 1), peer, &mut out))
        .collect();
    let mut run = |kv: &mut Kv, i: usize, args: &[&str]| step(kv, i as u64 + 1, &mut c[i], args);
    run(&mut kv, 1, &["RPUSH", "src", "2", "1"]);
    run(&mut kv, 1, &["SET", "d", "old"]);
    // A WATCH on the source sees no change; one on the destination does.
    for (watched, want) in [("src", "*1\r\n$1\r\nx\r\n"), ("d", "*-1\r\n")] {
        run(&mut kv, 0, &["WATCH", watched]);
        run(&mut kv, 0, &["MULTI"]);
        run(&mut kv, 0, &["ECHO", "x"]);
        run(&mut kv, 1, &["SORT", "src", "STORE", "d"]);
        assert_eq!(
            run(&mut kv, 0, &["EXEC"]),
            vec![(1, want.to_owned())],
            "{watched}"
        );
    }
    // An empty result deletes the destination: a change, announced as `del`.
    run(&mut kv, 0, &["WATCH", "d"]);
    run(&mut kv, 0, &["MULTI"]);
    run(&mut kv, 1, &["SORT", "nokey", "STORE", "d"]);
    assert_eq!(run(&mut kv, 0, &["EXEC"]), vec![(1, "*-1\r\n".to_owned())]);
    run(
        &mut kv,
        1,
        &["CONFIG", "SET", "notify-keyspace-events", "KEgl"],
    );
    run(&mut kv, 2, &["PSUBSCRIBE", "__key*"]);
    let ev = |ch: &str, msg: &str| {
        (
            3u64,
            format!(
                "*4\r\n$8\r\npmessage\r\n$6\r\n__key*\r\n${}\r\n{ch}\r\n${}\r\n{msg}\r\n",
                ch.len(),
                msg.len()
            ),
        )
    };
    let got = run(&mut kv, 1, &["SORT", "src", "STORE", "d"]);
    assert_eq!(
        got,
        vec![
            (2, ":2\r\n".to_owned()),
            ev("__keyspace@0__:d", "sortstore"),
            ev("__keyevent@0__:sortstore", "d"),
        ]
    );
    let got = run(&mut kv, 1, &["SORT", "nokey", "STORE", "d"]);
    assert_eq!(
        got,
        vec![
            (2, ":0\r\n".to_owned()),
            ev("__keyspace@0__:d", "del"),
            ev("__keyevent@0__:del", "d"),
        ]
    );
    // Nothing to delete, nothing to announce; a plain SORT announces nothing.
    assert_eq!(
        run(&mut kv, 1, &["SORT", "nokey", "STORE", "d"]),
        vec![(2, ":0\r\n".to_owned())]
    );
    assert_eq!(
        run(&mut kv, 1, &["SORT", "src", "LIMIT", "0", "1"]),
        vec![(2, "*1\r\n$1\r\n1\r\n".to_owned())]
    );
}
