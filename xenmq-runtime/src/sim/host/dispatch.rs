//! Connection dispatch: the accept threads of the control and Xenstore
//! sockets, one thread per control connection reading framed requests,
//! and the request switch that hands each to its concern.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use xenmq::evtchn::Port;
use xenmq::grant::DomId;
use xenmq_sys::process::{kill9, own_pid};

use crate::sim::proto::{self, Code, Refusal, Request, Writer};
use crate::sim::Error;

use super::{lock, Conn, Shared, State, StoreHost};

/// A listening socket served by a thread; dropping it stops the thread and
/// removes the socket file.
pub(super) struct Acceptor {
    path: PathBuf,
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    pub(super) fn spawn(
        path: PathBuf,
        serve: impl Fn(UnixStream) + Send + 'static,
    ) -> Result<Acceptor, Error> {
        // A stale socket from a crashed run would make bind fail.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|source| Error::Listen {
            path: path.clone(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let waker = listener.try_clone().map_err(|source| Error::Listen {
            path: path.clone(),
            source,
        })?;
        let thread = std::thread::Builder::new()
            .name("xenmq-sim-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    // Acquire: pairs with the Release store in Drop.
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    match conn {
                        Ok(s) => serve(s),
                        // Shut down (see Drop) or out of descriptors: back
                        // off and look at the flag again.
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
            .map_err(|source| Error::Listen {
                path: path.clone(),
                source,
            })?;
        Ok(Acceptor {
            path,
            listener: waker,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        // Release: pairs with the accept loop's Acquire load.
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept: it fails once the socket is shut down.
        let _ = xenmq_sys::sock::shutdown(self.listener.as_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

pub(super) fn store_acceptor(
    path: PathBuf,
    store: Arc<dyn StoreHost>,
    domid: DomId,
) -> Result<Acceptor, Error> {
    Acceptor::spawn(path, move |stream| {
        // The server bounds what one connection may cost (quotas) and
        // serves it on its own threads.
        let _ = store.serve(stream, domid);
    })
}

impl Shared {
    pub(super) fn accept_control(this: &Arc<Shared>, stream: UnixStream, domid: DomId) {
        let pid = xenmq_sys::sock::peer_pid(&stream).ok();
        let id = {
            let mut st = lock(&this.state);
            // Any number of processes may be one domain, at once or one
            // after another, as drivers are loaded into a guest.
            if !st.doms.contains_key(&domid) {
                return;
            }
            let Ok(clone) = stream.try_clone() else {
                return;
            };
            let id = st.next_conn;
            st.next_conn += 1;
            st.conns.insert(
                id,
                Conn {
                    domid,
                    stream: clone,
                    pid,
                    maps: BTreeMap::new(),
                    mapped: 0,
                    next_handle: 1,
                },
            );
            id
        };
        this.changed.notify_all();
        let s = Arc::clone(this);
        let spawned = std::thread::Builder::new()
            .name(format!("xenmq-sim-dom{domid}"))
            .spawn(move || {
                s.serve_conn(&stream, id, domid, pid);
                s.drop_conn(id);
            });
        if spawned.is_err() {
            this.drop_conn(id);
        }
    }

    pub(super) fn serve_conn(
        self: &Arc<Self>,
        stream: &UnixStream,
        id: u64,
        domid: DomId,
        pid: Option<u32>,
    ) {
        let mut reader = stream;
        loop {
            let mut len = [0u8; 4];
            if reader.read_exact(&mut len).is_err() {
                return;
            }
            let len = u32::from_le_bytes(len) as usize;
            if len > proto::MAX_FRAME {
                // The stream cannot be resynchronised: refuse and hang up.
                let r = Refusal::new(
                    Code::BadCount,
                    u32::try_from(len).unwrap_or(u32::MAX),
                    proto::MAX_FRAME as u32,
                );
                let _ = send_reply(stream, Err(r));
                return;
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            if self.count_request(domid) {
                // The fault plan says this domain crashes here: its
                // processes die with it (this connection is cut by the
                // destruction).
                tracing::info!(domid, "fault: the domain dies at this request");
                if domid == 0 {
                    match pid {
                        Some(p) if p != own_pid() => {
                            let _ = kill9(p);
                        }
                        _ => {}
                    }
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                } else {
                    let _ = self.destroy(domid, true);
                }
                return;
            }
            let reply = self.handle(id, domid, &body);
            if send_reply(stream, reply).is_err() {
                return;
            }
        }
    }

    pub(super) fn handle(
        self: &Arc<Self>,
        conn: u64,
        domid: DomId,
        body: &[u8],
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let reply = self.dispatch(conn, domid, body);
        trace_request(domid, body, &reply);
        reply
    }

    fn dispatch(
        self: &Arc<Self>,
        conn: u64,
        domid: DomId,
        body: &[u8],
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        if domid != 0 && Request::is_toolstack_op(body) {
            return Err(Code::Denied.into());
        }
        let done = |r: Result<(), Refusal>| r.map(|()| (Writer::new(0), vec![]));
        match Request::parse(body)? {
            Request::Share {
                peer,
                pages,
                readonly,
            } => self.share(conn, domid, peer, pages, readonly),
            Request::Map {
                peer,
                readonly,
                refs,
            } => self.map(conn, domid, peer, &refs, readonly),
            Request::Unmap { handle } => done(self.unmap(conn, handle)),
            Request::EndAccess { refs } => done(self.end_access(conn, domid, &refs)),
            Request::AllocUnbound { remote } => self.alloc_unbound(conn, domid, remote),
            Request::Bind {
                remote,
                remote_port,
            } => self.bind(conn, domid, remote, remote_port),
            Request::PeerFd { port } => self.peer_fd(conn, domid, port),
            Request::Close { port } => done(self.close_port(conn, domid, port)),
            Request::Status { port } => self.port_status(conn, domid, port),
            Request::Create { name } => {
                let id = self.create_named(&name)?;
                Ok((Writer::new(0).u16(id), vec![]))
            }
            Request::Destroy { domid } => done(self.destroy(domid, true)),
            Request::Kill { domid } => done(self.kill(domid)),
            Request::SetFaults { domid, faults } => done(self.set_faults(domid, faults)),
            Request::Poke {
                domid,
                gref,
                offset,
                data,
            } => done(self.poke(domid, gref, offset, &data)),
            Request::List => {
                let list = self.list();
                let mut w = Writer::new(0).u16(list.len() as u16);
                for d in &list {
                    w = w
                        .u16(d.domid)
                        .u32(d.pid.unwrap_or(0))
                        .u32(d.processes)
                        .u32(d.grants)
                        .u32(d.maps)
                        .u32(d.ports)
                        .u16(d.name.len() as u16)
                        .bytes(d.name.as_bytes());
                }
                Ok((w, vec![]))
            }
        }
    }

    /// A connection closed: release what it held (its mappings, grants and
    /// ports), as a driver unloading from its domain would. The domain
    /// itself lives on until it is destroyed.
    pub(super) fn drop_conn(&self, id: u64) {
        {
            let mut st = lock(&self.state);
            let Some(c) = st.conns.remove(&id) else {
                return;
            };
            let State { doms, .. } = &mut *st;
            for refs in c.maps.values() {
                Shared::unmap_refs(doms, refs);
            }
            // Dropping the entries makes new maps fail; mappings other
            // domains hold keep their memory (the memfd is refcounted).
            if let Some(d) = doms.get_mut(&c.domid) {
                d.grants.retain(|_, e| e.conn != id);
            }
            let ports: Vec<Port> = doms
                .get(&c.domid)
                .map(|d| {
                    d.ports
                        .iter()
                        .filter(|(_, p)| p.conn == id)
                        .map(|(&k, _)| k)
                        .collect()
                })
                .unwrap_or_default();
            for p in ports {
                Shared::remove_port(doms, c.domid, p);
            }
        }
        self.changed.notify_all();
    }
}

/// One event per host request at `debug` level (grants, event channels,
/// domains, faults), with its refusal if any; parsed again only when
/// someone listens.
fn trace_request(domid: DomId, body: &[u8], reply: &Result<(Writer, Vec<Arc<File>>), Refusal>) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let Ok(req) = Request::parse(body) else {
        tracing::debug!(domid, "malformed host request refused");
        return;
    };
    match reply {
        Ok(_) => tracing::debug!(domid, request = ?req, "host request"),
        Err(r) => tracing::debug!(domid, request = ?req, refusal = %r, "host request refused"),
    }
}

pub(super) fn send_reply(
    stream: &UnixStream,
    reply: Result<(Writer, Vec<Arc<File>>), Refusal>,
) -> io::Result<()> {
    match reply {
        Ok((w, files)) => {
            let fds: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
            xenmq_sys::sock::send_with_fds(stream, &w.frame(), &fds)
        }
        Err(r) => (&*stream).write_all(&Writer::new(r.code as u8).u32(r.a).u32(r.b).frame()),
    }
}
