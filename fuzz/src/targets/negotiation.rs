//! A hostile peer's negotiation keys, parsed as each example driver's
//! feature structs and the buffer-pool keys read them: any keys of the
//! vocabulary the parsers look at, any values. Nothing may panic; an error
//! names a key of the device's directory; what parses writes back to keys
//! that parse to the same thing.

use xenmq::driver::{Both, PoolKeys};
use xenmq::xenbus::config::Config;
use xenmq::xenbus::Keys;
use xenmq_examples::{blk, vkv};

use crate::harness::Input;

const DIR: &str = "/local/domain/1/device/x/0";

const KEYS: [&str; 8] = [
    "sectors",
    "feature-flush",
    "max-keys",
    "xenmq-pool-refs",
    "ring-ref",
    "event-channel",
    "feature-persistent",
    "",
];

const VALUES: [&str; 14] = [
    "0",
    "1",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "0x10",
    " 1",
    "1 2 3",
    "8 9",
    "true",
    "",
    "\u{fffd}",
    "07",
];

fn check<C: Config + std::fmt::Debug>(keys: &Keys) {
    match keys.parse::<C>(DIR) {
        Ok(c) => {
            let mut again = Keys::new();
            c.write(&mut |k, v| again.insert(k, v));
            let back = again
                .parse::<C>(DIR)
                .expect("what parsed writes back parseable");
            assert_eq!(
                format!("{back:?}"),
                format!("{c:?}"),
                "a round trip changed it"
            );
        }
        Err(e) => assert!(e.path().starts_with(DIR), "error {e} names a key elsewhere"),
    }
}

fn go(data: &[u8]) -> Option<()> {
    let mut input = Input::new(data);
    let mut keys = Keys::new();
    for _ in 0..input.byte()? % 8 {
        let key = input.pick(&KEYS)?;
        let value = match input.byte()? % 3 {
            0 => input.pick(&VALUES)?.to_string(),
            1 => input.string()?,
            _ => {
                let n = u32::from(input.byte()? % 40);
                (0..n)
                    .map(|i| (i * 7 % 1000).to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        keys.insert(key, value);
    }
    check::<blk::Disk>(&keys);
    check::<vkv::Limits>(&keys);
    check::<PoolKeys>(&keys);
    check::<Both<vkv::Limits, PoolKeys>>(&keys);
    Some(())
}

/// One execution.
pub fn run(data: &[u8]) {
    let _ = go(data);
}
