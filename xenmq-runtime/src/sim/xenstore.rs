//! Wiring of the simulator's Xenstore server into the host.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use xenmq::grant::DomId;

use crate::sim::host::{Host, StoreHost};
use crate::sim::Error;
use crate::xenstore::server::{Limits, Xenstored};

impl StoreHost for Xenstored {
    fn serve(&self, stream: UnixStream, domid: DomId) -> io::Result<()> {
        Xenstored::serve(self, stream, domid)
    }

    fn introduce(&self, domid: DomId) {
        Xenstored::introduce(self, domid);
    }

    fn release(&self, domid: DomId) {
        Xenstored::release(self, domid);
    }
}

impl Host {
    /// Starts a host in `dir` with the simulator's own Xenstore server
    /// (C xenstored's default quotas).
    pub fn with_xenstored(dir: impl AsRef<Path>) -> Result<Host, Error> {
        Host::with_xenstored_config(dir, Limits::default())
    }

    /// As [`Host::with_xenstored`], with the server's limits given.
    pub fn with_xenstored_config(dir: impl AsRef<Path>, config: Limits) -> Result<Host, Error> {
        Host::with_store(dir, Arc::new(Xenstored::new(config)))
    }
}
