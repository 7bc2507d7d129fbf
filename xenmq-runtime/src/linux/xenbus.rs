//! `/dev/xen/xenbus`: a guest's byte stream to Xenstore.
//!
//! Each `write` carries (part of) an `xs_wire.h` message; replies and watch
//! events are read back in the same framing. The Xenstore client does the
//! framing: this is only the transport, `Read + Write`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use super::{Error, Result};

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
