//! The `echo` example for a kernel module: the very file the simulator and
//! userspace builds use (`examples/src/echo.rs`), compiled `no_std`.
//!
//! ```text
//! xenmq-kmod build --crate examples/kmod/echo --frontend echo::EchoFront \
//!     --on-connect check --devtype echo
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[path = "../../../src/echo.rs"]
pub mod echo;

use xenmq::driver::{Client, Error};
use xenmq::evtchn::Channel;

/// Round trips the frontend module makes once connected.
pub const PINGS: u32 = 64;

/// Once per connection: [`PINGS`] pings, four in flight, every pong's
/// payload checked against its ping's ([`echo::ping`]).
pub fn check<C: Channel>(client: &mut Client<echo::Echo, C>) -> Result<u32, Error> {
    echo::ping(client, PINGS, 4)
}
