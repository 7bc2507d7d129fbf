//! `/dev/xen/xenbus`: a guest's byte stream to Xenstore.
//!
//! Each `write` carries (part of) an `xs_wire.h` message; replies and watch
//! events are read back in the same framing. The Xenstore client
//! ([`crate::xenstore::Connection`]) does the framing: this is only the transport,
//! `Read + Write`. Replies go to the open file that sent the request, so the
//! client's reader and writer must share one open file ([`Xenbus::try_clone`],
//! which [`Xenbus::client`] uses), not two opens of the device.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use super::{dev_err, Error, Result};
use crate::xenstore::Connection;

/// The open `/dev/xen/xenbus` device.
#[derive(Debug)]
pub struct Xenbus(File);

impl Xenbus {
    /// The device node.
    pub const PATH: &'static str = "/dev/xen/xenbus";

    /// Opens [`Self::PATH`] read-write.
    pub fn open() -> Result<Self> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(Self::PATH)
            .map(Xenbus)
            .map_err(|source| Error::Open {
                path: Self::PATH,
                source,
            })
    }

    /// Another handle on the same open file (the same Xenstore connection).
    pub fn try_clone(&self) -> Result<Self> {
        self.0
            .try_clone()
            .map(Xenbus)
            .map_err(dev_err("dup of /dev/xen/xenbus"))
    }

    /// A Xenstore client over this connection. The device has no shutdown,
    /// so its reader thread also polls a socket the client closes when it
    /// is dropped ([`Connection::cancellable`]): the thread ends with it.
    pub fn client(self) -> Result<Connection> {
        let reader = self.try_clone()?;
        Connection::cancellable(reader, self).map_err(dev_err("start of the Xenstore client"))
    }
}

impl Read for Xenbus {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Xenbus {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Xenbus {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
