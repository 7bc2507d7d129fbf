//! `echo`: the frontend pings with a payload, the backend pongs it back.

use core::time::Duration;

use xenmq::driver::Error;
use xenmq::evtchn::Channel;
use xenmq::prelude::*;

/// Payload bytes a ping carries.
pub const PAYLOAD: usize = 48;

/// A ping: `len` bytes of `data`, to be echoed.
#[xenmq::message]
#[derive(Debug, Clone, Copy)]
pub struct Ping {
    pub id: u64,
    pub seq: u32,
    pub len: u32,
    pub data: [u8; PAYLOAD],
}

/// The pong: the ping's sequence number and payload.
#[xenmq::message]
#[derive(Debug, Clone, Copy)]
pub struct Pong {
    pub id: u64,
    pub seq: u32,
    pub len: u32,
    pub data: [u8; PAYLOAD],
}

/// The protocol: one ring page, up to four, in xenmq's native ring layout
/// (both ends are xenmq drivers; no C driver has to read this ring).
#[xenmq::protocol(
    name = "echo",
    version = 1,
    request = Ping,
    response = Pong,
    max_ring_pages = 4,
    layout = native
)]
pub struct Echo;

/// The backend: every ping answered at once with its payload.
#[derive(Debug, Default)]
pub struct EchoBack {
    /// Pings answered.
    pub pings: u64,
}

impl Backend for EchoBack {
    type Protocol = Echo;

    fn handle(&mut self, ping: Ping, _io: &mut Io<'_, Echo>) -> Reply<Pong> {
        self.pings += 1;
        let len = ping.len.min(PAYLOAD as u32);
        Reply::Now(Pong { id: 0, seq: ping.seq, len, data: ping.data })
    }
}

/// The frontend: no hooks needed.
#[derive(Debug, Default)]
pub struct EchoFront;

impl Frontend for EchoFront {
    type Protocol = Echo;
}

impl Ping {
    /// Ping number `seq` carrying `payload` (truncated to [`PAYLOAD`] bytes).
    pub fn new(seq: u32, payload: &[u8]) -> Ping {
        let mut data = [0; PAYLOAD];
        let len = payload.len().min(PAYLOAD);
        data[..len].copy_from_slice(&payload[..len]);
        Ping { id: 0, seq, len: len as u32, data }
    }
}

impl Pong {
    /// The echoed bytes (a backend's `len` is not trusted past the array).
    pub fn payload(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(PAYLOAD)]
    }
}

/// Sends `count` pings, `depth` in flight at a time, and checks every pong;
/// returns how many came back.
pub fn ping<C: Channel>(
    client: &mut Client<Echo, C>,
    count: u32,
    depth: usize,
) -> Result<u32, Error> {
    let timeout = Some(Duration::from_secs(5));
    let (mut sent, mut got) = (0, 0);
    while got < count {
        while sent < count && client.in_flight() < depth {
            client.queue(Ping::new(sent, &sent.to_le_bytes()), None)?;
            sent += 1;
        }
        client.flush()?;
        let pong = client.wait(timeout)?.result?;
        if pong.payload() != pong.seq.to_le_bytes() {
            return Err(Error::BadAnswer("pong payload differs from the ping's"));
        }
        got += 1;
    }
    Ok(got)
}
