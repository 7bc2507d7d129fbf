//! Our Xenstore server (`xenmq_runtime::sim::xenstored`) on Unix sockets
//! in a fresh directory, as a test starts it: dom0's socket, and guests'
//! on request. Dropping it closes the sockets and removes the directory.

use std::path::PathBuf;

use xenmq_runtime::xenstore::server::{Limits, Listener, Xenstored};

/// A running server and its sockets.
pub struct OurXenstored {
    /// The server, for what a test does to it directly (introduce and
    /// release domains, quotas).
    pub server: Xenstored,
    dir: crate::RunDir,
    listeners: Vec<Listener>,
}

impl OurXenstored {
    /// Starts a server with the default configuration, listening for dom0;
    /// `tag` names the directory.
    pub fn start(tag: &str) -> Self {
        let dir = crate::run_dir(tag);
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let mut ours = OurXenstored {
            server: Xenstored::new(Limits::default()),
            dir,
            listeners: Vec::new(),
        };
        ours.listen(0);
        ours
    }

    /// Listens for domain `domid` on its own socket, and returns its path.
    pub fn listen(&mut self, domid: u16) -> PathBuf {
        let path = self.domain_socket(domid);
        let l = self.server.listen(&path, domid).expect("listen");
        self.listeners.push(l);
        path
    }

    /// dom0's socket.
    pub fn socket(&self) -> PathBuf {
        self.domain_socket(0)
    }

    /// Domain `domid`'s socket (once [`listen`](Self::listen) made it).
    pub fn domain_socket(&self, domid: u16) -> PathBuf {
        self.dir.join(format!("dom{domid}"))
    }
}

impl Drop for OurXenstored {
    fn drop(&mut self) {
        self.listeners.clear();
    }
}
