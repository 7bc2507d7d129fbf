//! What a backend's event channel may cost its host, and how it learns of
//! a peer that left without a word.
//!
//! **Storms.** A frontend may notify its channel in a loop without queueing
//! anything. Each notification would wake the serving thread for nothing,
//! so a guest could make dom0 spend a whole CPU. [`Storm`] counts the
//! wake-ups that found no work, in a row; past [`SPURIOUS_IN_A_ROW`] the
//! channel is left out of the loop's `poll` for a delay that doubles with
//! each further empty wake-up, from 1 ms up to the limit (by default
//! [`DEFAULT_STORM_LIMIT`]). Notifications that arrive meanwhile coalesce
//! into one, looked at when the delay ends; a wake-up that finds work ends
//! the deferral at once. An honest frontend notifies only when the ring
//! asks it to, so it never gets there; a storming one pays with the latency
//! of its own requests (at most the limit), nobody else.
//!
//! **Silent peers.** On platforms whose channels do not report the peer's
//! close ([`Channel::peer_check`](xenmq::evtchn::Channel::peer_check): Xen),
//! a sleeping loop asks the channel's status that often while connected.
//! Every device of a process checks at the same instants (multiples of the
//! period since the process's first check), so one thread serving many
//! devices wakes once per period for all of them.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Empty wake-ups in a row a channel gets before its notifications are
/// deferred. An honest peer's notification can find its work already done
/// (the loop took the request while it was still awake), but not several
/// times in a row.
pub const SPURIOUS_IN_A_ROW: u32 = 2;

/// The longest a storming channel's notifications are deferred, by default.
pub const DEFAULT_STORM_LIMIT: Duration = Duration::from_millis(64);

/// The first deferral.
const FIRST_DELAY: Duration = Duration::from_millis(1);

/// The notification budget of one channel.
#[derive(Debug)]
pub(crate) struct Storm {
    /// The longest deferral; `None`: never defer.
    limit: Option<Duration>,
    /// Wake-ups in a row that consumed a notification and found no work.
    empty: u32,
    /// A notification was consumed and its wake-up not judged yet.
    notified: bool,
    /// The channel is left out of the `poll` until then.
    until: Option<Instant>,
    /// Deferrals so far.
    deferrals: u64,
    /// This connection's first deferral was reported.
    reported: bool,
}

impl Storm {
    pub(crate) fn new() -> Self {
        Storm {
            limit: Some(DEFAULT_STORM_LIMIT),
            empty: 0,
            notified: false,
            until: None,
            deferrals: 0,
            reported: false,
        }
    }

    pub(crate) fn set_limit(&mut self, limit: Option<Duration>) {
        self.limit = limit;
        if limit.is_none() {
            self.until = None;
        }
    }

    /// A new connection: a new channel, with a clean record.
    pub(crate) fn reset(&mut self) {
        self.empty = 0;
        self.notified = false;
        self.until = None;
        self.reported = false;
    }

    /// Whether this is the connection's first deferral, to report once:
    /// a storming peer must not flood the host's log either.
    pub(crate) fn first_report(&mut self) -> bool {
        !std::mem::replace(&mut self.reported, true)
    }

    /// Whether the channel is to be left out of a `poll` made at `now`.
    pub(crate) fn deferring(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| now < t)
    }

    /// When the deferral ends.
    pub(crate) fn until(&self) -> Option<Instant> {
        self.until
    }

    /// The channel was looked at (its deferral, if any, over): a
    /// notification was consumed (`true`) or none was pending.
    pub(crate) fn consumed(&mut self, notified: bool) {
        self.notified |= notified;
        self.until = None;
    }

    /// The loop found work (requests, or more on their way).
    pub(crate) fn worked(&mut self) {
        self.empty = 0;
        self.notified = false;
        self.until = None;
    }

    /// The loop found nothing to do. If a notification woke it, that was
    /// an empty wake-up; past the allowance the channel is deferred.
    /// Returns the new delay, if one starts.
    pub(crate) fn idle(&mut self, now: Instant) -> Option<Duration> {
        if !std::mem::take(&mut self.notified) {
            return None;
        }
        self.empty = self.empty.saturating_add(1);
        let limit = self.limit?;
        let over = self.empty.checked_sub(SPURIOUS_IN_A_ROW)?;
        if over == 0 {
            return None;
        }
        let doublings = (over - 1).min(16);
        let delay = FIRST_DELAY.saturating_mul(1 << doublings).min(limit);
        self.until = Some(now + delay);
        self.deferrals = self.deferrals.saturating_add(1);
        Some(delay)
    }

    pub(crate) fn deferrals(&self) -> u64 {
        self.deferrals
    }

    /// Empty wake-ups in a row now.
    pub(crate) fn empty(&self) -> u32 {
        self.empty
    }
}

/// The process's clock for peer checks: every device checks at multiples
/// of its period since this instant.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The first multiple of `every` since the process's epoch after `now`.
pub(crate) fn next_check(now: Instant, every: Duration) -> Instant {
    let start = epoch();
    let every_ns = every.as_nanos().max(1);
    let since = now.saturating_duration_since(start).as_nanos();
    let n = since / every_ns + 1;
    let at = n.saturating_mul(every_ns);
    let at = u64::try_from(at).unwrap_or(u64::MAX);
    start + Duration::from_nanos(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_wake_ups_never_defer() {
        let mut s = Storm::new();
        let t = Instant::now();
        for _ in 0..1000 {
            // An empty wake-up now and then, work in between.
            s.consumed(true);
            assert_eq!(s.idle(t), None);
            s.consumed(true);
            s.worked();
        }
        assert!(!s.deferring(t));
        assert_eq!(s.deferrals(), 0);
    }

    #[test]
    fn idle_without_a_notification_is_not_counted() {
        let mut s = Storm::new();
        let t = Instant::now();
        for _ in 0..100 {
            s.consumed(false);
            assert_eq!(s.idle(t), None);
        }
        assert_eq!(s.empty(), 0);
    }

    #[test]
    fn a_storm_is_deferred_doubling_up_to_the_limit() {
        let mut s = Storm::new();
        let t = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..SPURIOUS_IN_A_ROW + 8 {
            s.consumed(true);
            delays.push(s.idle(t).map(|d| d.as_millis()));
        }
        let want: Vec<Option<u128>> = [None; SPURIOUS_IN_A_ROW as usize]
            .into_iter()
            .chain([1, 2, 4, 8, 16, 32, 64, 64].map(Some))
            .collect();
        assert_eq!(delays, want);
        assert!(s.deferring(t));
        assert!(!s.deferring(t + DEFAULT_STORM_LIMIT));
        assert_eq!(s.until(), Some(t + DEFAULT_STORM_LIMIT));
        // Work ends it at once.
        s.worked();
        assert!(!s.deferring(t));
        assert_eq!(s.deferrals(), 8);
    }

    #[test]
    fn a_storm_is_reported_once_a_connection() {
        let mut s = Storm::new();
        assert!(s.first_report());
        assert!(!s.first_report());
        s.reset();
        assert!(s.first_report());
    }

    #[test]
    fn no_limit_never_defers() {
        let mut s = Storm::new();
        s.set_limit(None);
        let t = Instant::now();
        for _ in 0..100 {
            s.consumed(true);
            assert_eq!(s.idle(t), None);
        }
        assert!(!s.deferring(t));
    }

    #[test]
    fn checks_fall_on_shared_instants() {
        let every = Duration::from_secs(1);
        // The process's first check sets the epoch.
        let _ = next_check(Instant::now(), every);
        let now = Instant::now();
        let a = next_check(now, every);
        let b = next_check(now + Duration::from_millis(300), every);
        assert!(a > now && a <= now + every);
        // Devices asking at different times check at the same instants.
        assert!(b == a || b == a + every, "{a:?} {b:?}");
        assert_eq!(next_check(a, every), a + every);
    }
}
