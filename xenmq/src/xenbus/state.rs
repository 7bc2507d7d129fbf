//! `XenbusState`, as `xen/io/xenbus.h` numbers it and Xenstore spells it.

use core::fmt;

use super::Error;

/// The state of one end of a split device (`enum xenbus_state`), published
/// as a decimal number in the end's `state` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// 0: no state (also what a missing `state` key reads as).
    Unknown = 0,
    /// 1: the end is setting itself up.
    Initialising = 1,
    /// 2: early set-up done, waiting for the peer (backends publish their
    /// features and limits, then wait here).
    InitWait = 2,
    /// 3: the frontend has published its ring and waits for the backend.
    Initialised = 3,
    /// 4: both ends are talking.
    Connected = 4,
    /// 5: the device is being closed, after an error or an unplug.
    Closing = 5,
    /// 6: closed.
    Closed = 6,
    /// 7: being reconfigured.
    Reconfiguring = 7,
    /// 8: reconfigured.
    Reconfigured = 8,
}

impl State {
    /// Every state, in numeric order.
    pub const ALL: [State; 9] = [
        State::Unknown,
        State::Initialising,
        State::InitWait,
        State::Initialised,
        State::Connected,
        State::Closing,
        State::Closed,
        State::Reconfiguring,
        State::Reconfigured,
    ];

    /// The state numbered `n`, if any.
    pub fn from_u32(n: u32) -> Option<State> {
        usize::try_from(n)
            .ok()
            .and_then(|i| State::ALL.get(i).copied())
    }

    /// Parses a `state` key's value (`"4"`). Xen writes it with `%d`; this
    /// accepts exactly the decimal numbers 0 to 8, nothing else.
    pub fn parse(value: &str) -> Result<State, Error> {
        let n = match value.as_bytes() {
            [d] if d.is_ascii_digit() => u32::from(d.wrapping_sub(b'0')),
            _ => u32::MAX,
        };
        State::from_u32(n).ok_or_else(|| Error::BadState {
            value: super::config::quote(value),
        })
    }

    /// The value written to a `state` key.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "0",
            State::Initialising => "1",
            State::InitWait => "2",
            State::Initialised => "3",
            State::Connected => "4",
            State::Closing => "5",
            State::Closed => "6",
            State::Reconfiguring => "7",
            State::Reconfigured => "8",
        }
    }

    /// The lowercase name used in messages (`initwait`).
    pub fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Initialising => "initialising",
            State::InitWait => "initwait",
            State::Initialised => "initialised",
            State::Connected => "connected",
            State::Closing => "closing",
            State::Closed => "closed",
            State::Reconfiguring => "reconfiguring",
            State::Reconfigured => "reconfigured",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for State {
    type Err = Error;
    fn from_str(s: &str) -> Result<State, Error> {
        State::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn every_state_round_trips() {
        for (n, s) in State::ALL.iter().enumerate() {
            assert_eq!(*s as usize, n);
            assert_eq!(State::parse(s.as_str()), Ok(*s));
            assert_eq!(State::from_u32(n as u32), Some(*s));
            assert_eq!(s.as_str().parse::<State>(), Ok(*s));
        }
        assert_eq!(State::from_u32(9), None);
        assert_eq!(State::from_u32(u32::MAX), None);
        assert_eq!(State::InitWait.to_string(), "initwait");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for v in [
            "",
            "9",
            "10",
            "-1",
            "+4",
            " 4",
            "4 ",
            "04",
            "٤",
            "connected",
        ] {
            assert!(
                matches!(State::parse(v), Err(Error::BadState { .. })),
                "{v:?}"
            );
        }
        let long = "x".repeat(100_000);
        let e = State::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 120, "{e}");
    }
}
