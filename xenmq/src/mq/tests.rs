use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::*;

#[crate::message]
struct Metric {
    seq: u64,
    value: u64,
}

#[crate::message]
struct Other {
    seq: u64,
    value: u32,
    pad: u32,
}

#[crate::message]
struct Huge {
    data: [u8; 1024],
}

fn spec() -> Spec {
    Spec::new::<Metric>("metrics", 64, Mode::FanOut, vec![1, 2], vec![0]).unwrap()
}

fn nodes(spec: &Spec) -> BTreeMap<String, String> {
    spec.to_nodes()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn parse(name: &str, nodes: &BTreeMap<String, String>) -> Result<Spec, Error> {
    Spec::parse(name, &mut |k| nodes.get(k).cloned())
}

#[test]
fn names() {
    assert!(valid_name("metrics"));
    assert!(valid_name("a-b_9"));
    for bad in ["", "Metrics", "a/b", "a b", "..", &"x".repeat(65)] {
        assert!(!valid_name(bad), "{bad:?}");
    }
    assert_eq!(path("q"), "/xenmq/mq/q");
    assert_eq!(
        member_path("q", Role::Receiver, 3),
        "/xenmq/mq/q/receiver/3"
    );
    assert_eq!(link_path("q", 2, 0), "/xenmq/mq/q/sender/2/0");
}

#[test]
fn spec_round_trips_through_its_nodes() {
    let s = spec();
    assert_eq!(s.quota, 32);
    assert_eq!(parse("metrics", &nodes(&s)), Ok(s.clone()));
    assert_eq!(s.expect::<Metric>(), Ok(()));
    assert!(matches!(
        s.expect::<Other>(),
        Err(Error::Fingerprint {
            expected_size: 16,
            found_size: 16,
            ..
        })
    ));
    assert!(s.permits(1, Role::Sender) && !s.permits(0, Role::Sender));
    assert!(s.permits(0, Role::Receiver) && !s.permits(2, Role::Receiver));
}

#[test]
fn malformed_nodes_are_named() {
    let good = nodes(&spec());
    let cases: [(&str, Option<&str>, &str); 10] = [
        ("fingerprint", None, "fingerprint"),
        ("fingerprint", Some("1234"), "fingerprint"),
        ("message-size", Some("-1"), "message-size"),
        ("message-size", Some("0"), ""),
        ("capacity", Some("8"), ""),
        ("quota", Some("0"), ""),
        ("mode", Some("broadcast"), "mode"),
        ("senders", Some("1 x"), "senders"),
        ("receivers", Some("65535"), "receivers"),
        ("senders", Some("1 1"), ""),
    ];
    for (key, value, named) in cases {
        let mut n = good.clone();
        match value {
            Some(v) => n.insert(key.to_string(), v.to_string()),
            None => n.remove(key),
        };
        match parse("metrics", &n) {
            Err(Error::Malformed { key: k, name, .. }) => {
                assert_eq!(
                    (k.as_str(), name.as_str()),
                    (named, "metrics"),
                    "{key}={value:?}"
                )
            }
            other => panic!("{key}={value:?}: {other:?}"),
        }
    }
    assert!(matches!(parse("Bad", &good), Err(Error::BadName { .. })));
}

#[test]
fn specs_that_make_no_queue_are_refused() {
    let bad = |r: Result<Spec, Error>| matches!(r, Err(Error::BadSpec { .. }));
    // 3 senders cannot each have a share of a capacity of 2.
    assert!(bad(Spec::new::<Metric>(
        "q",
        2,
        Mode::FanOut,
        vec![1, 2, 3],
        vec![0]
    )));
    assert!(bad(Spec::new::<Metric>(
        "q",
        8,
        Mode::FanOut,
        vec![],
        vec![0]
    )));
    assert!(bad(Spec::new::<Metric>(
        "q",
        8,
        Mode::FanOut,
        vec![1],
        vec![]
    )));
    assert!(bad(Spec::new::<Metric>(
        "q",
        8,
        Mode::Compete,
        vec![1],
        vec![0x7ff0]
    )));
    // No 16-page ring holds 100 slots of 1 KiB.
    assert!(bad(Spec::new::<Huge>(
        "q",
        100,
        Mode::FanOut,
        vec![1],
        vec![0]
    )));
    assert!(Spec::new::<Huge>("q", 32, Mode::FanOut, vec![1], vec![0]).is_ok());
    assert!(matches!(
        Spec::new::<Metric>("no/slash", 8, Mode::FanOut, vec![1], vec![0]),
        Err(Error::BadName { .. })
    ));
}

#[test]
fn ring_pages_agree_with_the_ring() {
    for quota in [1, 8, 15, 16, 200, 255, 256, 1000, 2048] {
        let s = Spec::new::<Metric>("q", quota, Mode::FanOut, vec![1], vec![0]).unwrap();
        let pages = s.ring_pages().unwrap();
        assert!(ring_slots::<Metric>(pages).unwrap() >= quota);
        if pages > 1 {
            assert!(ring_slots::<Metric>(pages / 2).unwrap() < quota);
        }
    }
    for pages in [1, 2, 4, 8, 16] {
        assert_eq!(
            native_slots(core::mem::size_of::<Huge>(), pages * PAGE_SIZE),
            ring_slots::<Huge>(pages)
        );
        assert_eq!(
            native_slots(16, pages * PAGE_SIZE),
            ring_slots::<Metric>(pages)
        );
    }
}

#[test]
fn links_are_checked() {
    let s = spec();
    let link = Link {
        refs: vec![7],
        port: 3,
        generation: 99,
    };
    let n: BTreeMap<String, String> = link
        .to_nodes()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(Link::parse(&s, &mut |k| n.get(k).cloned()), Ok(link));
    for (key, value) in [
        ("ring-ref", "7 8"),
        ("ring-ref", "x"),
        ("ring-ref", ""),
        ("event-channel", "-1"),
        ("generation", "g"),
    ] {
        let mut m = n.clone();
        m.insert(key.to_string(), value.to_string());
        assert!(
            Link::parse(&s, &mut |k| m.get(k).cloned()).is_err(),
            "{key}={value}"
        );
    }
}

#[test]
fn credit_counts_the_quota() {
    let mut c = Credit::new(2);
    assert!(c.take() && c.take());
    assert!(!c.take() && c.is_full());
    assert!(c.give() && c.give());
    assert!(!c.give());
    assert_eq!(c.in_flight(), 0);
    let domids: Vec<DomId> = parse_domids(" 1  2 3 ").unwrap();
    assert_eq!(domids, vec![1, 2, 3]);
}
