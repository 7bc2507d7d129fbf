//! A named queue with every member a separate process in its own domain
//! (the `mq-domain` helper): 1 receiver and 8 senders, every message
//! delivered once, in per-sender order, with its true sender; a sender
//! killed mid-stream and a hostile sender scribbling its ring leave the
//! others unaffected, and nothing is leaked.
//!
//! `XENMQ_MQ_COUNT` sets the messages per honest sender (default 10^6).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xenmq::grant::DomId;
use xenmq::xenstore::{Store, Tx};
use xenmq_runtime::mq::{self, Mode, Spec};
use xenmq_runtime::sim::{domain_command, Host};
use xenmq_runtime::xenstore::Connection;
use xenmq_tests::mq::Seq;
use xenmq_tests::run_dir;

/// A member process; killed on drop if still running. Its stdout lines
/// arrive on `lines`.
struct Member {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Member {
    fn spawn(dir: &std::path::Path, domid: DomId, args: &[&str]) -> Member {
        let mut child = domain_command(dir, domid, env!("CARGO_BIN_EXE_mq-domain"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn mq-domain");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Member { child, lines }
    }

    fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn count() -> u64 {
    std::env::var("XENMQ_MQ_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Per-sender results the receiver printed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    count: u64,
    ordered: bool,
    forged: u64,
    last: i64,
}

fn parse_tally(line: &str) -> Option<(DomId, Tally)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["from", d, "count", c, "ordered", o, "forged", f, "last", l] => Some((
            d.parse().ok()?,
            Tally {
                count: c.parse().ok()?,
                ordered: *o == "1",
                forged: f.parse().ok()?,
                last: l.parse().ok()?,
            },
        )),
        _ => None,
    }
}

#[test]
fn eight_senders_one_receiver_a_killed_and_a_hostile_sender() {
    let n = count();
    let dir = run_dir("mq-proof");
    let host = Host::with_xenstored(&dir).expect("start host");
    let xs = Connection::connect(&dir.join("socket")).expect("dom0 store");
    let recv_dom = host.create_domain("receiver").unwrap();
    let senders: Vec<DomId> = (0..8)
        .map(|i| host.create_domain(&format!("sender{i}")).unwrap())
        .collect();
    let spec = Spec::new::<Seq>(
        "proof",
        8 * 256,
        Mode::FanOut,
        senders.clone(),
        vec![recv_dom],
    )
    .unwrap();
    mq::create(&xs, &spec).unwrap();
    let used = |d: DomId| {
        host.domains()
            .into_iter()
            .find(|i| i.domid == d)
            .map(|i| (i.grants, i.maps, i.ports))
    };
    for &d in senders.iter().chain([&recv_dom]) {
        assert_eq!(used(d), Some((0, 0, 0)), "dom{d} starts empty");
    }

    let started = Instant::now();
    let receiver = Member::spawn(&dir, recv_dom, &["recv", "proof", "8"]);
    assert_eq!(
        receiver.line(Duration::from_secs(10)).as_deref(),
        Some("ready")
    );
    let (honest, rest) = senders.split_at(6);
    let (killed, hostile) = (rest[0], rest[1]);
    let n_s = n.to_string();
    let honest_procs: Vec<Member> = honest
        .iter()
        .map(|&d| Member::spawn(&dir, d, &["send", "proof", &n_s]))
        .collect();
    // These two would send for ever; one is killed, the other cut off.
    let endless = u64::MAX.to_string();
    let mut killed_proc = Member::spawn(&dir, killed, &["send", "proof", &endless]);
    let forged_claim = senders[0].to_string();
    let hostile_proc = Member::spawn(&dir, hostile, &["send", "proof", &endless, &forged_claim]);

    // The hostile sender's ring, from the channel it published.
    let link = format!("{}/ring-ref", mq_link(hostile, recv_dom));
    let deadline = Instant::now() + Duration::from_secs(20);
    let gref: u32 = loop {
        if let Ok(v) = xs.read_string(Tx::NONE, &link) {
            // The first page holds the indices and the first slots.
            break v.split_whitespace().next().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "the hostile sender never linked");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_millis(100));
    // Entries first (the receiver takes whatever bytes as the hostile
    // sender's messages), then its producer index, until the receiver
    // cuts the channel.
    let slots: Vec<u32> = (0..(4096 - 256) / 4).map(|i| 256 + 4 * i).collect();
    host.corrupt(hostile, gref, 7, &slots).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // Mid-stream: the killed sender is SIGKILLed.
    killed_proc.child.kill().unwrap();
    let _ = killed_proc.child.wait();

    let mut closed = BTreeMap::new();
    let mut tallies = BTreeMap::new();
    let mut pokes = 0u32;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        if !closed.contains_key(&hostile) {
            // The producer index, far past anything the ring holds.
            let _ = host.poke(
                hostile,
                gref,
                0,
                &0x8000_0000u32.wrapping_add(pokes).to_le_bytes(),
            );
            pokes += 1;
        }
        let Some(line) = receiver.line(Duration::from_millis(2)) else {
            assert!(Instant::now() < deadline, "the receiver did not finish");
            continue;
        };
        if let Some(rest) = line.strip_prefix("closed ") {
            let (d, f) = rest.split_once(' ').unwrap();
            let d: DomId = d.parse().unwrap();
            closed.insert(d, f == "1");
            if d == killed {
                // The receiver let go of the dead sender's pages (its
                // unmap reaches the host a moment after it says so).
                let until = Instant::now() + Duration::from_secs(5);
                while used(killed) != Some((0, 0, 0)) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                assert_eq!(
                    used(killed),
                    Some((0, 0, 0)),
                    "the killed sender left nothing"
                );
            }
        } else if let Some((d, t)) = parse_tally(&line) {
            tallies.insert(d, t);
        } else if line == "done" {
            break;
        } else {
            panic!("receiver said {line:?}");
        }
    }
    let elapsed = started.elapsed();
    for mut p in honest_procs {
        assert_eq!(p.line(Duration::from_secs(60)), Some(format!("sent {n}")));
        assert!(p.child.wait().unwrap().success());
    }
    drop(hostile_proc);
    let receiver_status = { receiver }.child.wait().unwrap();
    assert!(receiver_status.success());

    // Every honest sender: all its messages, once, in order, as itself.
    for &d in honest {
        let t = tallies[&d];
        assert_eq!(
            (t.count, t.ordered, t.forged),
            (n, true, 0),
            "dom{d}: {t:?}"
        );
        assert_eq!(closed.get(&d), Some(&false));
    }
    // The killed one: a prefix of what it sent, in order, then closed.
    let t = tallies[&killed];
    assert!(t.ordered && t.forged == 0 && t.count > 0, "killed: {t:?}");
    assert_eq!(t.last + 1, t.count as i64);
    assert_eq!(closed.get(&killed), Some(&false));
    // The hostile one: its forgeries are put down to it, and its channel
    // was cut for breaking the ring.
    let t = tallies[&hostile];
    assert!(t.forged > 0 && t.forged == t.count, "hostile: {t:?}");
    assert_eq!(closed.get(&hostile), Some(&true));

    // Nothing leaked: every domain is back where it started.
    let deadline = Instant::now() + Duration::from_secs(10);
    for &d in senders.iter().chain([&recv_dom]) {
        while used(d) != Some((0, 0, 0)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(used(d), Some((0, 0, 0)), "dom{d} leaked");
    }
    eprintln!(
        "{} messages from 6 honest senders (+ a killed and a hostile one) in {:.2?}",
        6 * n,
        elapsed
    );
}

fn mq_link(sender: DomId, receiver: DomId) -> String {
    xenmq::mq::link_path("proof", sender, receiver)
}

#[test]
fn eight_senders_deliver_every_message_once_in_order() {
    let n = count();
    let dir = run_dir("mq-eight");
    let host = Host::with_xenstored(&dir).expect("start host");
    let xs = Connection::connect(&dir.join("socket")).expect("dom0 store");
    let recv_dom = host.create_domain("receiver").unwrap();
    let senders: Vec<DomId> = (0..8)
        .map(|i| host.create_domain(&format!("sender{i}")).unwrap())
        .collect();
    let spec = Spec::new::<Seq>(
        "eight",
        8 * 256,
        Mode::FanOut,
        senders.clone(),
        vec![recv_dom],
    )
    .unwrap();
    mq::create(&xs, &spec).unwrap();
    let started = Instant::now();
    let receiver = Member::spawn(&dir, recv_dom, &["recv", "eight", "8"]);
    assert_eq!(
        receiver.line(Duration::from_secs(10)).as_deref(),
        Some("ready")
    );
    let n_s = n.to_string();
    let procs: Vec<Member> = senders
        .iter()
        .map(|&d| Member::spawn(&dir, d, &["send", "eight", &n_s]))
        .collect();
    let mut tallies = BTreeMap::new();
    let mut closed = 0;
    loop {
        let line = receiver
            .line(Duration::from_secs(600))
            .expect("the receiver finishes");
        if line.starts_with("closed ") {
            assert!(line.ends_with(" 0"), "{line}");
            closed += 1;
        } else if let Some((d, t)) = parse_tally(&line) {
            tallies.insert(d, t);
        } else if line == "done" {
            break;
        } else {
            panic!("receiver said {line:?}");
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(closed, 8);
    for mut p in procs {
        assert_eq!(p.line(Duration::from_secs(60)), Some(format!("sent {n}")));
        assert!(p.child.wait().unwrap().success());
    }
    for &d in &senders {
        let t = tallies[&d];
        assert_eq!(
            (t.count, t.ordered, t.forged),
            (n, true, 0),
            "dom{d}: {t:?}"
        );
    }
    assert!({ receiver }.child.wait().unwrap().success());
    eprintln!("{} messages from 8 senders in {elapsed:.2?}", 8 * n);
}
