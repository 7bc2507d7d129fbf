//! Faults on request, seeded and repeatable.
//!
//! The same seed always gives the same sequence of decisions, so a failure
//! found under a seed can be replayed. Notification faults are applied by the
//! notifying domain itself (notifications never go through the host); the
//! host hands each channel its plan, seeded from the domain's seed and the
//! port number.

use std::time::Duration;

/// A small, fast, seedable generator (SplitMix64). Not cryptographic: its
/// only job is to be repeatable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator that yields the same sequence for the same seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// A domain's fault plan. Rates are per mille (0..=1000) of notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Seed of every random decision.
    pub seed: u64,
    /// Notifications silently lost.
    pub drop: u16,
    /// Notifications delivered twice.
    pub duplicate: u16,
    /// Notifications delivered late, after [`Faults::delay_ms`].
    pub delay: u16,
    /// How late a delayed notification arrives.
    pub delay_ms: u32,
    /// Crash the domain when it makes its N-th request to the host
    /// (counting from 1, and from the last time the plan was set), before
    /// the request is served. `Domain::connect` makes one request (a
    /// probe), so with `Some(1)` a domain dies as it connects. A guest's
    /// processes are SIGKILLed (connections from the host's own process
    /// are cut) and the guest is destroyed; for dom0 only the process that
    /// made the request dies.
    pub kill_at: Option<u64>,
}

impl Faults {
    /// Whether any notification fault is enabled.
    pub fn affects_notify(&self) -> bool {
        self.drop > 0 || self.duplicate > 0 || self.delay > 0
    }
}

/// What happens to one notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered once, now.
    Deliver,
    /// Lost.
    Drop,
    /// Delivered twice.
    Duplicate,
    /// Delivered once, later.
    Delay(Duration),
}

/// The decisions for one channel's notifications.
#[derive(Clone, Debug)]
pub struct NotifyFaults {
    rng: Rng,
    plan: Faults,
}

impl NotifyFaults {
    /// The plan of `port`: seeded from the domain's seed and the port, so
    /// each channel has its own repeatable sequence.
    pub fn for_port(plan: Faults, port: u32) -> NotifyFaults {
        let mut mix = Rng::new(plan.seed ^ (u64::from(port) << 32 | u64::from(port)));
        NotifyFaults {
            rng: Rng::new(mix.next_u64()),
            plan,
        }
    }

    /// The fate of the next notification.
    pub fn fate(&mut self) -> Fate {
        let roll = self.rng.below(1000);
        let drop = u64::from(self.plan.drop.min(1000));
        let dup = drop + u64::from(self.plan.duplicate.min(1000));
        let delay = dup + u64::from(self.plan.delay.min(1000));
        if roll < drop {
            Fate::Drop
        } else if roll < dup {
            Fate::Duplicate
        } else if roll < delay {
            Fate::Delay(Duration::from_millis(u64::from(self.plan.delay_ms)))
        } else {
            Fate::Deliver
        }
    }
}

/// Values to write at `offsets` for a seeded corruption: one random
/// little-endian `u32` per offset, the same for the same seed.
pub fn corruption(seed: u64, offsets: &[u32]) -> Vec<(u32, u32)> {
    let mut rng = Rng::new(seed);
    offsets.iter().map(|&o| (o, rng.next_u32())).collect()
}
