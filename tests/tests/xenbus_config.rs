//! `#[derive(XenstoreConfig)]`: keys, conventions, bounds, errors, and the
//! round trip through a map standing in for a store directory.

use std::collections::BTreeMap;

use xenmq::prelude::*;
use xenmq::xenbus::config::{Error, MAX_VALUE_LEN};
use xenmq::xenbus::{Config, Fingerprint, RingRefs};

const DIR: &str = "/local/domain/3/device/vkv/0";

// Reads a whole frontend directory, the handshake's keys included: those
// fields are marked `reserved`.
#[derive(XenstoreConfig, Debug, PartialEq)]
struct Vkv {
    #[xenstore(rename = "ring-ref", reserved)]
    ring: RingRefs,
    #[xenstore(reserved)]
    event_channel: u32,
    #[xenstore(reserved)]
    protocol: Option<String>,
    feature_persistent: bool,
    #[xenstore(
        rename = "feature-max-indirect-segments",
        default = 32,
        min = 1,
        max = 256
    )]
    max_segments: u16,
    #[xenstore(min = -5, max = 5)]
    tilt: Option<i8>,
    #[xenstore(default = "vkv")]
    r#type: String,
    #[xenstore(reserved)]
    xenmq_fingerprint: Fingerprint,
}

fn read(map: &BTreeMap<String, String>) -> Result<Vkv, Error> {
    Vkv::read(DIR, &mut |k| map.get(k).cloned())
}

fn base() -> BTreeMap<String, String> {
    [
        ("ring-ref", "12"),
        ("event-channel", "7"),
        ("xenmq-fingerprint", "00000000000000ff"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn defaults_and_conventions() {
    let v = read(&base()).unwrap();
    assert_eq!(v.ring.refs(), &[12]);
    assert_eq!(v.ring.order(), 0);
    assert_eq!(v.event_channel, 7);
    assert_eq!(v.protocol, None);
    // Xen's feature-* convention: missing is false.
    assert!(!v.feature_persistent);
    assert_eq!(v.max_segments, 32);
    assert_eq!(v.tilt, None);
    assert_eq!(v.r#type, "vkv");
    assert_eq!(v.xenmq_fingerprint, Fingerprint(0xff));
}

#[test]
fn keys_are_kebab_case_renamed_and_expanded() {
    let mut keys = Vec::new();
    Vkv::keys(&mut keys);
    let mut want = vec!["ring-ref".to_string(), "ring-page-order".to_string()];
    want.extend((0..16).map(|i| format!("ring-ref{i}")));
    want.extend(
        [
            "event-channel",
            "protocol",
            "feature-persistent",
            "feature-max-indirect-segments",
            "tilt",
            "type",
            "xenmq-fingerprint",
        ]
        .map(String::from),
    );
    assert_eq!(keys, want);
}

#[test]
fn round_trip_multi_page() {
    let v = Vkv {
        ring: RingRefs::new(vec![1, 2, 3, 4]).unwrap(),
        event_channel: 9,
        protocol: Some("x86_64-abi".into()),
        feature_persistent: true,
        max_segments: 256,
        tilt: Some(-5),
        r#type: "disk".into(),
        xenmq_fingerprint: Fingerprint(u64::MAX),
    };
    let pairs = v.to_pairs();
    let map: BTreeMap<String, String> = pairs.iter().cloned().collect();
    assert_eq!(map.get("ring-page-order").map(String::as_str), Some("2"));
    assert_eq!(map.get("ring-ref3").map(String::as_str), Some("4"));
    assert!(!map.contains_key("ring-ref"));
    assert_eq!(map.get("feature-persistent").map(String::as_str), Some("1"));
    assert_eq!(map.get("tilt").map(String::as_str), Some("-5"));
    assert_eq!(
        map.get("xenmq-fingerprint").map(String::as_str),
        Some("ffffffffffffffff")
    );
    assert_eq!(read(&map).unwrap(), v);
    // None is not written.
    let v2 = Vkv {
        protocol: None,
        tilt: None,
        ..v
    };
    let pairs = v2.to_pairs();
    assert!(pairs.iter().all(|(k, _)| k != "protocol" && k != "tilt"));
    assert_eq!(read(&pairs.into_iter().collect()).unwrap(), v2);
}

fn err(set: &[(&str, &str)], drop: &[&str]) -> String {
    let mut m = base();
    for k in drop {
        m.remove(*k);
    }
    for (k, v) in set {
        m.insert(k.to_string(), v.to_string());
    }
    read(&m).unwrap_err().to_string()
}

#[test]
fn errors_name_path_value_and_expectation() {
    assert_eq!(
        err(&[("feature-max-indirect-segments", "0")], &[]),
        format!("{DIR}/feature-max-indirect-segments: \"0\" is out of range 1..=256")
    );
    assert_eq!(
        err(&[("feature-max-indirect-segments", "65536")], &[]),
        format!("{DIR}/feature-max-indirect-segments: \"65536\" is not an unsigned 16-bit integer")
    );
    assert_eq!(
        err(&[("tilt", "6")], &[]),
        format!("{DIR}/tilt: \"6\" is out of range -5..=5")
    );
    assert_eq!(
        err(&[("feature-persistent", "2")], &[]),
        format!("{DIR}/feature-persistent: \"2\" is not \"0\" or \"1\"")
    );
    assert_eq!(
        err(&[("feature-persistent", "true")], &[]),
        format!("{DIR}/feature-persistent: \"true\" is not \"0\" or \"1\"")
    );
    assert_eq!(
        err(&[], &["event-channel"]),
        format!("{DIR}/event-channel: missing, expected an unsigned 32-bit integer")
    );
    assert_eq!(
        err(&[("ring-page-order", "5")], &[]),
        format!("{DIR}/ring-page-order: \"5\" is out of range 0..=4")
    );
    assert_eq!(
        err(&[("ring-page-order", "1"), ("ring-ref0", "5")], &[]),
        format!("{DIR}/ring-ref1: missing, expected a grant reference")
    );
    let long = "a".repeat(MAX_VALUE_LEN + 1);
    assert_eq!(
        err(&[("type", &long)], &[]),
        format!("{DIR}/type: value of 4097 bytes is longer than 4096 bytes")
    );
}

#[test]
fn read_asks_only_for_its_keys_and_a_bounded_ring() {
    // However big the order claims to be, no more than 16 ring-refs are
    // asked for, and an out-of-range order none at all.
    let mut asked = Vec::new();
    let mut m = base();
    m.insert("ring-page-order".into(), "200".into());
    let r = Vkv::read(DIR, &mut |k| {
        asked.push(k.to_string());
        m.get(k).cloned()
    });
    assert!(r.is_err());
    assert!(asked.iter().all(|k| k == "ring-page-order"), "{asked:?}");
}

#[test]
fn ring_refs_constructor_checks_the_count() {
    assert!(RingRefs::new(vec![]).is_none());
    assert!(RingRefs::new(vec![1, 2, 3]).is_none());
    assert!(RingRefs::new((0..32).collect()).is_none());
    assert_eq!(RingRefs::new((0..16).collect()).unwrap().order(), 4);
}
