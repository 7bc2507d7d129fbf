//! Differential conformance: the same raw request sequences, well-formed
//! and malformed, sent to our server and to Debian's real C xenstored
//! (4.17), as dom0 and as unprivileged guests; the replies and watch events
//! must match byte for byte. The only normalisation: the node generation
//! that opens a DIRECTORY_PART reply (a counter C advances on internal
//! writes we do not replicate; see docs/xenstore-differences.md).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use xenmq_runtime::xenstore::server::{Limits, Listener, Xenstored};
use xenmq_tests::ref_xenstored::{wait_for, RefXenstored};
use xenmq_tests::wire::{Conn, Got};

/// One step: on connection `conn`, send a request (or do an action).
struct Step {
    conn: &'static str,
    op: Op,
    /// Do not wait for the replies (bulk steps; they are read later).
    bulk: bool,
}

enum Op {
    /// Type, tx id, payload.
    Send(u32, u32, Vec<u8>),
    /// Raw bytes.
    Raw(Vec<u8>),
    /// Open the connection of guest `domid` (after dom0 introduced it).
    Connect(u16),
}

const GUESTS: [u16; 3] = [5, 6, 7];

fn ty(name: &str) -> u32 {
    match name {
        "CONTROL" => 0,
        "DIRECTORY" => 1,
        "READ" => 2,
        "GET_PERMS" => 3,
        "WATCH" => 4,
        "UNWATCH" => 5,
        "TS" => 6,
        "TE" => 7,
        "INTRODUCE" => 8,
        "RELEASE" => 9,
        "GDP" => 10,
        "WRITE" => 11,
        "MKDIR" => 12,
        "RM" => 13,
        "SET_PERMS" => 14,
        "EVENT" => 15,
        "ERROR" => 16,
        "IDI" => 17,
        "RESUME" => 18,
        "SET_TARGET" => 19,
        "RESET_WATCHES" => 21,
        "DIRPART" => 22,
        n => n.parse().expect("type name or number"),
    }
}

/// Parses a script: one step per line, `CONN TYPE TX PAYLOAD`, where the
/// payload is the rest of the line with `\0` for NUL and `\xHH` escapes.
/// `CONN connect DOMID` and `CONN raw HEXBYTES` are actions.
fn script(text: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (bulk, line) = match line.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let mut parts = line.splitn(4, ' ');
        let conn: &'static str = Box::leak(parts.next().expect("conn").to_owned().into_boxed_str());
        let what = parts.next().expect("type");
        let op = match what {
            "connect" => Op::Connect(parts.next().expect("domid").parse().expect("domid")),
            "raw" => Op::Raw(unescape(parts.next().unwrap_or(""))),
            t => {
                let tx = parts.next().expect("tx").parse().expect("tx");
                Op::Send(ty(t), tx, unescape(parts.next().unwrap_or("")))
            }
        };
        out.push(Step { conn, op, bulk });
    }
    out
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'0') {
            out.push(0);
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).expect("hex"));
            i += 4;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'*') {
            // \*N: N bytes of 'x'
            let end = s[i + 2..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(s.len(), |e| i + 2 + e);
            let n: usize = s[i + 2..end].parse().expect("count");
            out.extend(std::iter::repeat_n(b'x', n));
            i = end;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Where a server under test listens.
trait Target {
    fn dom0(&self) -> PathBuf;
    fn guest(&self, domid: u16) -> PathBuf;
}

struct Ours {
    _xs: Xenstored,
    dir: xenmq_tests::RunDir,
    _listeners: Vec<Listener>,
}

impl Ours {
    fn start(tag: &str) -> Self {
        let dir = xenmq_tests::run_dir(&format!("xsdiff-{tag}"));
        let xs = Xenstored::new(Limits::default());
        let mut ls = vec![xs.listen(&dir.join("dom0"), 0).expect("listen")];
        for g in GUESTS {
            ls.push(xs.listen(&dir.join(format!("dom{g}")), g).expect("listen"));
        }
        Ours {
            _xs: xs,
            dir,
            _listeners: ls,
        }
    }
}

impl Target for Ours {
    fn dom0(&self) -> PathBuf {
        self.dir.join("dom0")
    }
    fn guest(&self, domid: u16) -> PathBuf {
        self.dir.join(format!("dom{domid}"))
    }
}

impl Target for RefXenstored {
    fn dom0(&self) -> PathBuf {
        self.socket()
    }
    fn guest(&self, domid: u16) -> PathBuf {
        self.domain_socket(domid)
    }
}

fn normalise(g: &Got) -> String {
    match g {
        Got::Msg(m) => {
            let mut m = m.clone();
            if m.typ == 22 {
                if let Some(nul) = m.payload.iter().position(|&b| b == 0) {
                    m.payload.splice(..nul, *b"G");
                }
            }
            m.to_string()
        }
        Got::Timeout => "timeout".into(),
        Got::Closed => "closed".into(),
    }
}

/// Runs a script, returning one transcript line per step and connection.
fn run(target: &dyn Target, steps: &[Step]) -> Vec<String> {
    let mut conns: HashMap<&str, Conn> = HashMap::new();
    conns.insert("d0", Conn::connect(&target.dom0()));
    let quiet = Duration::from_millis(40);
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if std::env::var_os("XSDIFF_TRACE").is_some() {
            eprintln!("step {i}");
        }
        match &s.op {
            Op::Connect(d) => {
                let p = target.guest(*d);
                wait_for(&p);
                conns.insert(s.conn, Conn::connect(&p));
                continue;
            }
            Op::Raw(_) | Op::Send(..) if !conns.contains_key(s.conn) => {
                // A closed dom0 connection is reopened; a guest's is not.
                if s.conn != "d0" {
                    out.push(format!("{}: not connected (step {i})", s.conn));
                    continue;
                }
                out.push(format!("d0: reconnect (step {i})"));
                conns.insert("d0", Conn::connect(&target.dom0()));
                let c = conns.get_mut("d0").expect("conn");
                match &s.op {
                    Op::Raw(b) => c.raw(b),
                    Op::Send(t, tx, p) => c.send(*t, *tx, p),
                    Op::Connect(_) => {}
                }
            }
            Op::Raw(b) => conns.get_mut(s.conn).expect("conn").raw(b),
            Op::Send(t, tx, p) => conns.get_mut(s.conn).expect("conn").send(*t, *tx, p),
        }
        let mut names: Vec<&str> = conns.keys().copied().collect();
        names.sort();
        if !s.bulk {
            // Let the request reach the server and its effects spread.
            std::thread::sleep(Duration::from_millis(5));
        }
        for n in names {
            // Bulk steps only collect what is already there, so that a
            // pipelining client never blocks the server (or itself).
            let wait = if s.bulk {
                Duration::from_millis(1)
            } else if n == s.conn {
                quiet
            } else {
                Duration::from_millis(3)
            };
            let got = conns.get_mut(n).expect("conn").drain(wait);
            if got.contains(&Got::Closed) {
                conns.remove(n);
            }
            for g in got {
                out.push(format!("{n}: {} (step {i})", normalise(&g)));
            }
        }
    }
    out
}

fn compare(name: &str, text: &str) {
    let steps = script(text);
    let c = RefXenstored::start();
    let want = run(&c, &steps);
    drop(c);
    let ours = Ours::start(name);
    let got = run(&ours, &steps);
    // Each connection's messages, in order; which step a message arrived
    // at depends on timing and is shown but not compared.
    let by_conn = |v: &[String]| {
        let mut v: Vec<(String, String)> = v
            .iter()
            .map(|l| {
                let (head, _) = l.rsplit_once(" (step").unwrap_or((l, ""));
                (
                    head.split(':').next().unwrap_or("").to_owned(),
                    head.to_owned(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, l)| l).collect::<Vec<_>>()
    };
    let (w_all, g_all) = (by_conn(&want), by_conn(&got));
    let mut diffs = Vec::new();
    for i in 0..w_all.len().max(g_all.len()) {
        let (w, g) = (w_all.get(i), g_all.get(i));
        if w != g {
            diffs.push(format!(
                "  C:    {}\n  ours: {}",
                w.map_or("-", |s| s),
                g.map_or("-", |s| s)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{name}: {} differences from C xenstored\n{}\n--- C:\n{}\n--- ours:\n{}",
        diffs.len(),
        diffs.join("\n"),
        want.join("\n"),
        got.join("\n")
    );
    assert!(!want.is_empty(), "{name}: the script produced nothing");
}

#[test]
fn dom0_basic_operations() {
    compare(
        "basic",
        r"
        d0 READ 0 /tool\0
        d0 READ 0 /nope\0
        d0 WRITE 0 /a/b\0hello
        d0 READ 0 /a/b\0
        d0 READ 0 /a\0
        d0 DIRECTORY 0 /a\0
        d0 DIRECTORY 0 /\0
        d0 GET_PERMS 0 /a/b\0
        d0 WRITE 0 /a/c\0
        d0 WRITE 0 /a/d\0bin\x01\xff\0ary
        d0 READ 0 /a/d\0
        d0 DIRECTORY 0 /a\0
        d0 MKDIR 0 /a\0
        d0 MKDIR 0 /m/n/o\0
        d0 DIRECTORY 0 /m/n\0
        d0 RM 0 /a/c\0
        d0 RM 0 /a/c\0
        d0 RM 0 /zz/yy\0
        d0 RM 0 /\0
        d0 DIRECTORY 0 /a\0
        d0 RM 0 /m\0
        d0 READ 0 /m/n/o\0
        d0 READ 0 a\0
        d0 WRITE 0 rel/x\0v
        d0 READ 0 /local/domain/0/rel/x\0
        d0 DIRPART 0 /a\0
        d0 DIRPART 0 /a\x000\0
        d0 DIRPART 0 /a\x002\0
        d0 DIRPART 0 /a\x003\0
        d0 DIRPART 0 /a\x0099\0
        d0 DIRPART 0 /a\x00-1\0
        d0 GDP 0 5\0
        d0 GDP 0 x\0
        d0 GDP 0 \0
        d0 GDP 0 -1\0
        d0 GDP 0 70000\0
        d0 GDP 0 5
        d0 IDI 0 0\0
        d0 IDI 0 5\0
        d0 IDI 0 x\0
        d0 RM 0 /a\0
        ",
    );
}

#[test]
fn dom0_bad_input() {
    compare(
        "badinput",
        r"
        d0 READ 0 \0
        d0 READ 0 /a//b\0
        d0 READ 0 /a/\0
        d0 READ 0 /a b\0
        d0 READ 0 /a.b\0
        d0 READ 0 @introduceDomain\0
        d0 WRITE 0 /a/b
        d0 WRITE 0 @x\0v
        d0 WRITE 0 /x/\0v
        d0 MKDIR 0 /m
        d0 RM 0 /m
        d0 DIRECTORY 0 /
        d0 GET_PERMS 0 /
        d0 GET_PERMS 0 @introduceDomain\0
        d0 TE 0 T
        d0 GDP 0 5
        d0 IDI 0 5
        d0 READ 0 /\*2047\0
        d0 READ 0 /\*2048\0
        d0 WRITE 0 /\*2047\0v
        d0 READ 0 /local/domain/12345/\*2048\0
        d0 READ 0 /local/domain/123456/\*2048\0
        d0 READ 7 /tool\0
        d0 WRITE 7 /x\0v
        d0 TE 99 T\0
        d0 TE 0 T\0
        d0 TE 0 X\0
        d0 TE 0 \0
        d0 UNWATCH 0 /a\0t\0
        d0 WATCH 0 /a\0
        d0 WATCH 0 /a\0t\0x\0
        d0 WATCH 0 /a b\0t\0
        d0 WATCH 0 @a b\0t\0
        d0 UNWATCH 0 /a\0t\0x\0
        d0 15 0
        d0 16 0
        d0 20 0
        d0 23 0
        d0 30 0 whatever
        d0 SET_PERMS 0 /tool\0
        d0 SET_PERMS 0 /tool\0x0\0
        d0 SET_PERMS 0 /tool\0n\0
        d0 SET_PERMS 0 /tool\0nx\0
        d0 SET_PERMS 0 /tool\0R5\0
        d0 SET_PERMS 0 /tool\0r5x\0
        d0 SET_PERMS 0 /tool\0\0
        d0 SET_PERMS 0 /nope\0n0\0
        d0 SET_PERMS 0 /tool\0n0\0r0x10\0r010\0r-1\0r 5\0r70000\0
        d0 GET_PERMS 0 /tool\0
        d0 SET_PERMS 0 /tool\0n0\0r1\0junk
        d0 GET_PERMS 0 /tool\0
        d0 SET_PERMS 0 /tool\0n0\0
        d0 INTRODUCE 0 5\0
        d0 INTRODUCE 0 5\x001\x000\0
        d0 RELEASE 0 0\0
        d0 RELEASE 0 44\0
        d0 RELEASE 0 44
        d0 RESUME 0 44\0
        d0 RESUME 0 0\0
        d0 SET_TARGET 0 7\0
        d0 SET_TARGET 0 7\x008\0
        d0 TS 0 \0
        d0 TS 1 \0
        d0 TS 2 \0
        d0 TS 0
        d0 TE 1 F\0
        d0 TE 2 F\0
        d0 raw 0200000063000000000000000800
        d0 raw 0000002f746f6f6c00
        ",
    );
}

#[test]
fn dom0_oversize_payload_closes_the_connection() {
    compare(
        "oversize",
        r"
        d0 WRITE 0 /a\0\*4093
        d0 READ 0 /a\0
        d0 raw 0b000000010000000000000001100000
        ",
    );
}

#[test]
fn dom0_watches_and_transactions() {
    compare(
        "watchtx",
        r"
        d0 WATCH 0 /w\0tok\0
        d0 WATCH 0 /w\0tok\0
        d0 WATCH 9 /w\0tok2\0
        d0 WATCH 0 /w/sub\0sub\0
        d0 WATCH 0 rel\0r\0
        d0 WATCH 0 /\0root\0
        d0 WRITE 0 /w/sub/x\0v
        d0 WRITE 0 /w/other\0v
        d0 WRITE 0 /local/domain/0/rel/q\0v
        d0 SET_PERMS 0 /w/other\0n0\0r3\0
        d0 MKDIR 0 /w/other\0
        d0 MKDIR 0 /w/new\0
        d0 RM 0 /w\0
        d0 UNWATCH 0 /w\0tok\0
        d0 UNWATCH 0 /w\0tok\0
        d0 UNWATCH 0 /\0root\0
        d0 WRITE 0 /w/a\0v
        d0 TS 0 \0
        d0 WRITE 1 /w/t1\0a
        d0 WRITE 1 /w/t2\0b
        d0 READ 1 /w/t1\0
        d0 READ 0 /w/t1\0
        d0 DIRECTORY 1 /w\0
        d0 RM 1 /w/a\0
        d0 READ 1 /w/a\0
        d0 READ 0 /w/a\0
        d0 TE 1 T\0
        d0 READ 0 /w/t2\0
        d0 TS 0 \0
        d0 READ 2 /w/t1\0
        d0 WRITE 0 /w/t1\0changed
        d0 WRITE 2 /w/t3\0c
        d0 TE 2 T\0
        d0 READ 0 /w/t3\0
        d0 TS 0 \0
        d0 WRITE 3 /w/t4\0d
        d0 TE 3 F\0
        d0 READ 0 /w/t4\0
        d0 TS 0 \0
        d0 READ 4 /w/t1\0
        d0 WRITE 0 /w/unrelated\0x
        d0 WRITE 4 /w/t5\0e
        d0 TE 4 T\0
        d0 WATCH 0 @introduceDomain\0i\0
        d0 WATCH 0 @releaseDomain\0r\0
        d0 INTRODUCE 0 5\x001\x001\0
        d0 INTRODUCE 0 5\x001\x001\0
        d0 IDI 0 5\0
        d0 RELEASE 0 5\0
        d0 IDI 0 5\0
        d0 RESET_WATCHES 0
        d0 WRITE 0 /w/after\0v
        ",
    );
}

#[test]
fn guest_permissions_and_quotas() {
    compare(
        "guest",
        r"
        d0 INTRODUCE 0 5\x001\x001\0
        d0 MKDIR 0 /local/domain/5\0
        d0 SET_PERMS 0 /local/domain/5\0n5\0
        d0 WRITE 0 /p/r\0v
        d0 SET_PERMS 0 /p\0n0\0r5\0
        d0 SET_PERMS 0 /p/r\0n0\0r5\0
        d0 WRITE 0 /p/w\0v
        d0 SET_PERMS 0 /p/w\0n0\0w5\0
        d0 WRITE 0 /p/n\0v
        d0 WRITE 0 /p/b\0v
        d0 SET_PERMS 0 /p/b\0n0\0b5\0
        d0 WRITE 0 /p/o\0v
        d0 SET_PERMS 0 /p/o\0n5\0
        g5 connect 5
        g5 READ 0 /tool\0
        g5 GDP 0 \0
        g5 WRITE 0 x\0v
        g5 GET_PERMS 0 x\0
        g5 READ 0 x\0
        g5 WRITE 0 /local/domain/5/x/y/z\0v
        g5 GET_PERMS 0 x/y\0
        g5 MKDIR 0 /other\0
        g5 WRITE 0 /p/new\0v
        g5 WRITE 0 /p/w/new\0v
        g5 GET_PERMS 0 /p/w/new\0
        g5 WRITE 0 /p/w\0v2
        g5 READ 0 /p/w\0
        g5 READ 0 /p/n\0
        g5 READ 0 /p/b\0
        g5 WRITE 0 /p/b\0v2
        g5 READ 0 /p/o\0
        g5 WRITE 0 /p/o\0mine
        g5 SET_PERMS 0 /p/o\0n5\0r0\0
        g5 SET_PERMS 0 /p/o\0n7\0
        g5 GET_PERMS 0 /p/o\0
        g5 READ 0 /p/missing\0
        g5 READ 0 /tool/missing\0
        g5 READ 0 /p/n/missing\0
        g5 DIRECTORY 0 /p\0
        g5 DIRECTORY 0 /tool\0
        g5 RM 0 /p/r\0
        g5 RM 0 /p/zz\0
        g5 MKDIR 0 /p/w\0
        g5 MKDIR 0 /p/r\0
        g5 SET_PERMS 0 /p/w\0n5\0
        g5 IDI 0 0\0
        g5 INTRODUCE 0 9\x001\x001\0
        g5 RELEASE 0 9\0
        g5 RESUME 0 9\0
        g5 SET_TARGET 0 9\x009\0
        g5 CONTROL 0 print\0x\0
        g5 GDP 0 3\0
        g5 SET_PERMS 0 @introduceDomain\0n5\0
        g5 WATCH 0 /p\0pw\0
        g5 WATCH 0 /tool\0tw\0
        g5 WATCH 0 @introduceDomain\0ii\0
        g5 WATCH 0 x\0rel\0
        d0 WRITE 0 /p/n\0v3
        d0 WRITE 0 /p/w\0v3
        d0 WRITE 0 /tool/xenstored\0v
        d0 WRITE 0 /local/domain/5/x/q\0v
        d0 INTRODUCE 0 6\x001\x001\0
        d0 SET_PERMS 0 @introduceDomain\0n0\0r5\0
        d0 INTRODUCE 0 7\x001\x001\0
        d0 RM 0 /p/n\0
        g5 RM 0 x\0
        g5 WRITE 0 a\0\*2015
        g5 WRITE 0 a\0\*2016
        g5 WRITE 0 b\0
        g5 SET_PERMS 0 b\0n5\0r1\0r2\0r3\0r4\0
        g5 SET_PERMS 0 b\0n5\0r1\0r2\0r3\0r4\0r6\0
        g5 GET_PERMS 0 b\0
        g5 TS 0 \0
        g5 WRITE 1 t\0v
        g5 TE 1 T\0
        g5 READ 0 t\0
        g5 RESET_WATCHES 0
        d0 WRITE 0 /p/r\0v9
        d0 RELEASE 0 5\0
        ",
    );
}

#[test]
fn guest_transaction_and_watch_quotas() {
    let mut s = String::from(
        r"
        d0 INTRODUCE 0 6\x001\x001\0
        d0 MKDIR 0 /local/domain/6\0
        d0 SET_PERMS 0 /local/domain/6\0n6\0
        g6 connect 6
        ",
    );
    for _ in 0..12 {
        s.push_str("+g6 TS 0 \\0\n");
    }
    for i in 0..131 {
        s.push_str(&format!("+g6 WATCH 0 w{i}\\0t\\0\n"));
    }
    compare("quota", &s);
}

#[test]
fn guest_node_quota() {
    let mut s = String::from(
        r"
        d0 INTRODUCE 0 7\x001\x001\0
        d0 MKDIR 0 /local/domain/7\0
        d0 SET_PERMS 0 /local/domain/7\0n7\0
        g7 connect 7
        ",
    );
    // C rate-limits an unprivileged domain's writes, so dom0 creates the
    // nodes and hands them to the guest; the guest then meets the quota.
    for i in 0..996 {
        let p = format!("/local/domain/7/d{}/n{i}", i / 50);
        s.push_str(&format!(
            "+d0 WRITE 0 {p}\\0\n+d0 SET_PERMS 0 {p}\\0n7\\0\n"
        ));
    }
    for d in 0..20 {
        s.push_str(&format!("+d0 SET_PERMS 0 /local/domain/7/d{d}\\0n7\\0\n"));
    }
    s.push_str("d0 READ 0 /local/domain/7/d0/n0\\0\n");
    for i in 0..4 {
        s.push_str(&format!("g7 WRITE 0 w{i}\\0\n"));
    }
    s.push_str("g7 RM 0 d0/n5\\0\ng7 WRITE 0 again\\0\ng7 WRITE 0 again2\\0\n");
    s.push_str("g7 MKDIR 0 x/y/z\\0\n");
    s.push_str("d0 SET_PERMS 0 /local/domain/7/d1/n50\\0n0\\0\n");
    s.push_str("g7 WRITE 0 again3\\0\ng7 WRITE 0 d0/n0\\0new value\n");
    s.push_str("g7 SET_PERMS 0 d0/n1\\0n7\\0r1\\0\n");
    // A child list that outgrows the node size limit.
    s.push_str("g7 RM 0 d0\\0\ng7 RM 0 d1\\0\ng7 RM 0 d2\\0\n");
    for i in 0..22 {
        s.push_str(&format!("g7 WRITE 0 flat/{i:0>100}\\0\n"));
    }
    s.push_str("g7 DIRECTORY 0 flat\\0\n");
    compare("nodes", &s);
}

#[test]
fn watch_rules() {
    compare(
        "watchrules",
        r"
        d0 INTRODUCE 0 5\x001\x001\0
        d0 MKDIR 0 /local/domain/5\0
        d0 SET_PERMS 0 /local/domain/5\0n5\0
        d0 WRITE 0 /v/a/b/c\0x
        d0 WRITE 0 /v/a/d\0y
        d0 WRITE 0 /v/hidden/h\0z
        d0 SET_PERMS 0 /v\0n0\0r5\0
        d0 SET_PERMS 0 /v/a\0n0\0r5\0
        d0 SET_PERMS 0 /v/a/b\0n0\0r5\0
        d0 SET_PERMS 0 /v/a/b/c\0n0\0r5\0
        d0 SET_PERMS 0 /v/a/d\0n0\0r5\0
        g5 connect 5
        d0 WATCH 0 /v/a/b/c\0exact\0
        d0 WATCH 0 /v/a\0a\0
        d0 WATCH 0 /v/a/missing\0m\0
        d0 WATCH 0 /v\0v\0
        d0 WATCH 0 /v/a\0a2\0
        g5 WATCH 0 /v\0gv\0
        g5 WATCH 0 /v/hidden\0gh\0
        g5 WATCH 0 /v/hidden/h\0ghh\0
        g5 WATCH 0 @releaseDomain\0gr\0
        g5 WATCH 0 /local/domain/5\0home\0
        d0 WRITE 0 /v/a/b/c\0x2
        d0 WRITE 0 /v/hidden/h\0z2
        d0 SET_PERMS 0 /v/hidden/h\0n0\0r5\0
        d0 SET_PERMS 0 /v/hidden/h\0n0\0
        d0 WRITE 0 /v/hidden/new\0n
        d0 RM 0 /v/hidden\0
        d0 RM 0 /v/a\0
        d0 TS 0 \0
        d0 WRITE 1 /v/t/x\0a
        d0 WRITE 1 /v/t/y\0b
        d0 WRITE 1 /v/t/x\0c
        d0 RM 1 /v/t/y\0
        d0 MKDIR 1 /v/t/z\0
        d0 TE 1 T\0
        d0 TS 0 \0
        d0 RM 2 /v/t\0
        d0 TE 2 T\0
        g5 TS 0 \0
        g5 WRITE 1 a\0a
        g5 WRITE 1 b/c\0b
        g5 TE 1 T\0
        d0 INTRODUCE 0 6\x001\x001\0
        d0 RELEASE 0 6\0
        d0 SET_PERMS 0 @releaseDomain\0n0\0r5\0
        d0 INTRODUCE 0 7\x001\x001\0
        d0 RELEASE 0 7\0
        g5 UNWATCH 0 /v\0gv\0
        g5 UNWATCH 0 /local/domain/5\0home\0
        d0 WRITE 0 /v/z\0z
        d0 RM 0 /v\0
        ",
    );
}

#[test]
fn transactions_in_depth() {
    compare(
        "txdepth",
        r"
        d0 WRITE 0 /x/a\0a
        d0 TS 0 \0
        d0 TS 0 \0
        d0 READ 1 /x/a\0
        d0 WRITE 2 /x/a\0from-2
        d0 TE 2 T\0
        d0 TE 1 T\0
        d0 TS 0 \0
        d0 DIRECTORY 3 /x\0
        d0 WRITE 0 /x/b\0b
        d0 TE 3 T\0
        d0 TS 0 \0
        d0 READ 4 /x/nothere\0
        d0 WRITE 0 /x/nothere\0now
        d0 TE 4 T\0
        d0 TS 0 \0
        d0 WRITE 5 /x/c\0c
        d0 WRITE 0 /x/c\0other
        d0 TE 5 T\0
        d0 READ 0 /x/c\0
        d0 TS 0 \0
        d0 GET_PERMS 6 /x/a\0
        d0 SET_PERMS 0 /x/a\0n0\0r1\0
        d0 TE 6 T\0
        d0 TS 0 \0
        d0 SET_PERMS 7 /x/a\0n0\0r2\0
        d0 GET_PERMS 7 /x/a\0
        d0 GET_PERMS 0 /x/a\0
        d0 MKDIR 7 /x/m\0
        d0 RM 7 /x/b\0
        d0 DIRECTORY 7 /x\0
        d0 DIRPART 7 /x\x000\0
        d0 TE 7 T\0
        d0 GET_PERMS 0 /x/a\0
        d0 DIRECTORY 0 /x\0
        d0 TS 0 \0
        d0 TE 8 F\0
        d0 TE 8 F\0
        d0 RM 0 /x\0
        ",
    );
}

#[test]
fn set_target_grants_a_device_model_its_targets_rights() {
    compare(
        "target",
        r"
        d0 INTRODUCE 0 5\x001\x001\0
        d0 INTRODUCE 0 6\x001\x001\0
        d0 WRITE 0 /local/domain/6/dev\0d
        d0 SET_PERMS 0 /local/domain/6\0n6\0
        d0 SET_PERMS 0 /local/domain/6/dev\0n6\0
        g5 connect 5
        g5 READ 0 /local/domain/6/dev\0
        d0 SET_TARGET 0 5\x006\0
        g5 READ 0 /local/domain/6/dev\0
        g5 WRITE 0 /local/domain/6/dev\0dm
        g5 GET_PERMS 0 /local/domain/6/dev\0
        g5 WRITE 0 /local/domain/6/new\0n
        g5 GET_PERMS 0 /local/domain/6/new\0
        g5 SET_PERMS 0 /local/domain/6/dev\0n6\0r0\0
        g5 SET_PERMS 0 /local/domain/6/dev\0n5\0
        g5 IDI 0 6\0
        ",
    );
}

#[test]
fn guest_transaction_node_quota() {
    let mut s = String::from(
        r"
        d0 INTRODUCE 0 5\x001\x001\0
        d0 MKDIR 0 /local/domain/5\0
        d0 SET_PERMS 0 /local/domain/5\0n5\0
        d0 MKDIR 0 /q\0
        d0 SET_PERMS 0 /q\0n0\0r5\0
        ",
    );
    for i in 0..1030 {
        s.push_str(&format!("+d0 MKDIR 0 /q/d{}/n{i}\\0\n", i / 100));
    }
    s.push_str("d0 READ 0 /q\\0\ng5 connect 5\ng5 TS 0 \\0\n");
    for i in 0..1030 {
        s.push_str(&format!("+g5 READ 1 /q/d{}/n{i}\\0\n", i / 100));
    }
    s.push_str("g5 READ 1 /q\\0\ng5 TE 1 T\\0\n");
    compare("txquota", &s);
}

/// A header announcing more bytes than sent waits for them; bytes beyond
/// a message start the next one; a header announcing more than 4096 bytes
/// closes the connection.
#[test]
fn framing_errors() {
    compare(
        "framing",
        r"
        d0 raw \x0b\0\0\0\x07\0\0\0\0\0\0\0\x08\0\0\0/tool\0
        d0 raw v\0
        d0 READ 0 /tool\0
        d0 raw \x03\0\0\0\x09\0\0\0\0\0\0\0\x06\0\0\0/tool\0\x02\0\0\0\x0a\0\0\0\0\0\0\0\x06\0\0\0/tool\0
        d0 raw \x0b\0\0\0\x0b\0\0\0\0\0\0\0\x00\0\0\0
        d0 raw \x03\0\0\0\x0c\0\0\0
        d0 raw \0\0\0\0\x06\0\0\0/tool\0
        d0 raw \xff\xff\xff\xff\x0d\0\0\0\0\0\0\0\x00\0\0\0
        d0 raw \x03\0\0\0\x0e\0\0\0\0\0\0\0\x01\x10\0\0
        d0 READ 0 /tool\0
        ",
    );
}

#[test]
fn reset_watches_and_special_names() {
    compare(
        "reset",
        r"
        d0 WATCH 0 /r\0t\0
        d0 TS 0 \0
        d0 WRITE 1 /r/a\0v
        d0 RESET_WATCHES 0
        d0 TE 1 T\0
        d0 READ 0 /r/a\0
        d0 WRITE 0 /r/b\0v
        d0 UNWATCH 0 /r\0t\0
        d0 SET_PERMS 0 @foo\0n0\0
        d0 SET_PERMS 0 @releaseDomain\0n0\0r5\0r6\0
        d0 SET_PERMS 0 @releaseDomain\0n0\0
        d0 WATCH 0 @foo\0f\0
        d0 WATCH 0 @\0g\0
        d0 INTRODUCE 0 5\x001\x001\0
        d0 RELEASE 0 5\0
        d0 WATCH 0 /\0root\0
        d0 INTRODUCE 0 6\x001\x001\0
        d0 RELEASE 0 6\0
        d0 WRITE 0 /r/c\0v
        d0 RM 0 /r\0
        ",
    );
}

#[test]
fn released_domain_leaves_nothing_to_its_successor() {
    // XSA-322: what a domain owned goes with it, entries naming it grant
    // nothing (but stay listed), and a new domain with its id starts clean.
    compare(
        "release",
        r"
        d0 INTRODUCE 0 5\x001\x001\0
        d0 INTRODUCE 0 6\x001\x001\0
        d0 MKDIR 0 /local/domain/5\0
        d0 SET_PERMS 0 /local/domain/5\0n5\0
        d0 WRITE 0 /shared\0s
        d0 SET_PERMS 0 /shared\0n0\0b5\0r6\0
        d0 WRITE 0 /local/domain/6/data\0d
        d0 SET_PERMS 0 /local/domain/6/data\0n6\0r5\0w7\0
        d0 SET_PERMS 0 @releaseDomain\0n5\0r6\0
        d0 WATCH 0 /local\0l\0
        d0 WATCH 0 /shared\0s\0
        g5 connect 5
        g6 connect 6
        g6 WATCH 0 /shared\0g6\0
        g6 WATCH 0 @releaseDomain\0rel\0
        g5 WRITE 0 /local/domain/5/a/b\0x
        g5 WRITE 0 /shared/mine\0m
        g5 WRITE 0 /shared/mine/deep\0m
        g5 GET_PERMS 0 /shared/mine\0
        g5 READ 0 /local/domain/6/data\0
        g5 WRITE 0 /local/domain/6/data\0no
        d0 RELEASE 0 5\0
        d0 IDI 0 5\0
        d0 DIRECTORY 0 /local/domain\0
        d0 DIRECTORY 0 /shared\0
        d0 READ 0 /shared/mine\0
        d0 GET_PERMS 0 /shared\0
        d0 GET_PERMS 0 /local/domain/6/data\0
        g6 READ 0 /shared\0
        # C gives a node rewritten by the release itself (here /shared,
        # which lost a child) a generation equal to that of a domain
        # introduced next, so without this write C lets the new domain 5 use
        # /shared's old b5 entry; ours never does (see the differences doc).
        d0 WRITE 0 /other\0o
        d0 INTRODUCE 0 5\x001\x001\0
        g5b connect 5
        g5b READ 0 /shared\0
        g5b GET_PERMS 0 /shared\0
        g5b WRITE 0 /shared/x\0x
        g5b READ 0 /local/domain/6/data\0
        g5b READ 0 /local/domain/5\0
        g5b WRITE 0 /local/domain/5/a\0y
        d0 MKDIR 0 /shared/kid\0
        g5b READ 0 /shared/kid\0
        d0 GET_PERMS 0 /shared/kid\0
        d0 WRITE 0 /shared\0again
        g5b READ 0 /shared\0
        g6 READ 0 /shared/kid\0
        d0 SET_PERMS 0 /shared\0n0\0b5\0
        g5b READ 0 /shared\0
        g5b WRITE 0 /shared/x\0x
        g5b GET_PERMS 0 /shared/x\0
        ",
    );
}
