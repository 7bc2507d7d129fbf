//! A blocking Xenstore client over any byte transport.
//!
//! [`Connection`] speaks the `xs_wire.h` protocol over a Unix socket (dom0's
//! xenstored, the simulator's per-domain sockets) or any `Read` + `Write`
//! pair (`/dev/xen/xenbus` in a guest). It is shared by threads (`&self`):
//! each request gets its own `req_id`, and a reader thread hands each reply
//! to the request waiting for it, while watch events go to a bounded queue
//! read with [`Store::next_event`]. It implements [`xenmq::xenstore::Store`],
//! so platform-free code runs on it unchanged, and [`Pollable`]: a
//! descriptor readable while watch events wait, so that one `poll` (or an
//! async reactor) sleeps on Xenstore and on event channels together.
//!
//! ```no_run
//! use xenmq::xenstore::{transaction, Store, Tx};
//! let xs = xenmq_runtime::xenstore::Connection::connect("/run/xenstored/socket".as_ref())?;
//! xs.write(Tx::NONE, "/local/domain/0/hello", b"world")?;
//! transaction(&xs, |tx| xs.write(tx, "/local/domain/0/a", b"1"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use xenmq::xenstore::perms::Perms;
use xenmq::xenstore::wire::{self, args, Errno, Header, MsgType, HEADER_LEN};
use xenmq::xenstore::{Error, Store, Tx, WatchEvent};

/// A Xenstore connection whose watch events can be waited for with `poll`
/// beside other descriptors (event channels), instead of in
/// [`Store::next_event`].
pub trait Pollable: Store {
    /// A descriptor that is readable while watch events are queued for
    /// [`Store::next_event`], or once the connection is closed (which
    /// `next_event` then reports). Only `next_event` takes events: reading
    /// the descriptor is not the way, and it stays readable until the
    /// queue is empty.
    fn watch_fd(&self) -> BorrowedFd<'_>;
}

/// Watch events kept while nobody reads them; later ones are dropped (and
/// counted, see [`Connection::dropped_events`]).
pub const DEFAULT_EVENT_QUEUE: usize = 1024;

struct Reply {
    typ: u32,
    payload: Vec<u8>,
}

#[derive(Default)]
struct State {
    next_req: u32,
    waiting: HashMap<u32, Option<Reply>>,
    events: VecDeque<WatchEvent>,
    dropped: u64,
    /// Set when the reader stops: the connection is unusable.
    closed: Option<&'static str>,
    /// Whether the watch descriptor is readable now.
    armed: bool,
}

struct Inner {
    writer: Mutex<Box<dyn Write + Send>>,
    /// The transport, for a connection with no reader thread
    /// ([`Connection::inline`]): each request reads it itself.
    inline: Option<Mutex<Box<dyn Read + Send>>>,
    state: Mutex<State>,
    changed: Condvar,
    max_events: usize,
    /// Readable exactly while `events` is not empty or the connection is
    /// closed ([`Pollable::watch_fd`]).
    ready: xenmq_sys::EventFd,
}

impl Inner {
    fn new(
        writer: Box<dyn Write + Send>,
        inline: Option<Box<dyn Read + Send>>,
    ) -> io::Result<Inner> {
        Ok(Inner {
            writer: Mutex::new(writer),
            inline: inline.map(Mutex::new),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            max_events: DEFAULT_EVENT_QUEUE,
            ready: xenmq_sys::EventFd::new(
                xenmq_sys::EventfdFlags::NONBLOCK | xenmq_sys::EventfdFlags::CLOEXEC,
            )?,
        })
    }

    /// Marks the connection closed, for `why`.
    fn close(&self, why: &'static str) {
        let mut st = self.lock();
        st.closed = Some(why);
        self.sync_ready(&mut st);
        drop(st);
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections are single inserts/removes: a panic elsewhere
        // cannot leave the state half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the watch descriptor readable exactly when there is something
    /// for `next_event`; called with the state locked after each change of
    /// the queue or of `closed`, so the two agree whenever the lock is free.
    fn sync_ready(&self, st: &mut State) {
        let want = !st.events.is_empty() || st.closed.is_some();
        if want == st.armed {
            return;
        }
        // Neither can fail on a live eventfd of ours: the counter only
        // moves between 0 and 1 here. Were one to fail, `armed` would stay
        // as it was and the next change would try again.
        let done = if want {
            self.ready.notify().is_ok()
        } else {
            self.ready.take().is_ok()
        };
        if done {
            st.armed = want;
        }
    }
}

/// A connection to a Xenstore server.
pub struct Connection {
    inner: Arc<Inner>,
    /// Closed with the client, which ends the reader thread: the socket
    /// (shut down both ways) or the cancel end of [`Cancellable`].
    shutdown: Option<UnixStream>,
}

/// A reader that waits for its transport or for a cancel socket, whichever
/// is readable first: once the other end of the cancel socket is closed it
/// reports end of file. For transports with no shutdown of their own
/// (`/dev/xen/xenbus`), so that the reader thread ends with the client.
struct Cancellable<R> {
    reader: R,
    cancel: UnixStream,
}

impl<R: Read + AsFd> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let fds = [self.cancel.as_fd(), self.reader.as_fd()];
        match xenmq_sys::poll_any(&fds, None)? {
            // The client is gone (or the cancel socket broke): nobody
            // waits for what the transport may still say.
            Some(0) => Ok(0),
            _ => self.reader.read(buf),
        }
    }
}

impl Connection {
    /// Connects to a server's Unix socket.
    pub fn connect(path: &Path) -> io::Result<Connection> {
        Connection::from_stream(UnixStream::connect(path)?)
    }

    /// Uses a connected Unix socket.
    pub fn from_stream(stream: UnixStream) -> io::Result<Connection> {
        let reader = stream.try_clone()?;
        let writer = stream.try_clone()?;
        let mut c = Connection::new(reader, writer)?;
        c.shutdown = Some(stream);
        Ok(c)
    }

    /// Uses any transport, as a reader and a writer of the same stream
    /// (e.g. two handles of `/dev/xen/xenbus`). The reader is read by a
    /// thread of the client's own until it reports end of file or an error.
    pub fn new<R, W>(reader: R, writer: W) -> io::Result<Connection>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let inner = Arc::new(Inner::new(Box::new(writer), None)?);
        let for_reader = inner.clone();
        thread::Builder::new()
            .name("xenstore-client".into())
            .spawn(move || read_loop(reader, &for_reader))?;
        Ok(Connection {
            inner,
            shutdown: None,
        })
    }

    /// A connection with no reader thread: each request reads the transport
    /// itself, frame by frame, until its reply has come; watch events read
    /// meanwhile are queued, and [`Store::next_event`] hands out only those
    /// (it never reads). For a single thread whose transport answers at
    /// once or reports end of file, such as a test or fuzzing harness
    /// playing the server; a request blocks in `read` as long as the
    /// transport does.
    pub fn inline<R, W>(reader: R, writer: W) -> io::Result<Connection>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let inner = Inner::new(Box::new(writer), Some(Box::new(reader)))?;
        Ok(Connection {
            inner: Arc::new(inner),
            shutdown: None,
        })
    }

    /// As [`new`](Connection::new), for a transport that cannot be shut down
    /// from another thread (`/dev/xen/xenbus`): the reader thread waits on
    /// the transport and on a socket the client closes when dropped, so it
    /// ends with the client instead of staying blocked in `read`.
    pub fn cancellable<R, W>(reader: R, writer: W) -> io::Result<Connection>
    where
        R: Read + AsFd + Send + 'static,
        W: Write + Send + 'static,
    {
        let (mine, cancel) = UnixStream::pair()?;
        let mut c = Connection::new(Cancellable { reader, cancel }, writer)?;
        c.shutdown = Some(mine);
        Ok(c)
    }

    /// Watch events dropped because the queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.inner.lock().dropped
    }

    /// Sends one request and waits for its reply; the reply's payload, or
    /// the server's error.
    pub fn request(&self, typ: MsgType, tx: Tx, payload: &[u8]) -> Result<Vec<u8>, Error> {
        let inner = &self.inner;
        let req_id = {
            let mut st = inner.lock();
            if st.closed.is_some() {
                return Err(Error::Closed);
            }
            // Skip ids still waiting (after 2^32 requests).
            let mut id = st.next_req;
            while st.waiting.contains_key(&id) {
                id = id.wrapping_add(1);
            }
            st.next_req = id.wrapping_add(1);
            st.waiting.insert(id, None);
            id
        };
        let msg = wire::encode(typ, req_id, tx.0, payload)
            .ok_or(Error::BadArgument("request longer than 4096 bytes"));
        let sent = msg.and_then(|m| {
            let mut w = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            w.write_all(&m)
                .and_then(|()| w.flush())
                .map_err(|e| Error::Transport(Box::new(e)))
        });
        let mut st = inner.lock();
        if let Err(e) = sent {
            st.waiting.remove(&req_id);
            return Err(e);
        }
        let reply = loop {
            if let Some(Some(_)) = st.waiting.get(&req_id) {
                break st.waiting.remove(&req_id).flatten();
            }
            if st.closed.is_some() {
                st.waiting.remove(&req_id);
                return Err(Error::Closed);
            }
            if let Some(reader) = &inner.inline {
                drop(st);
                {
                    let mut r = reader.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Err(why) = read_frame(&mut *r, inner) {
                        inner.close(why);
                    }
                }
                st = inner.lock();
                continue;
            }
            st = inner
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        };
        drop(st);
        let Some(reply) = reply else {
            return Err(Error::Closed);
        };
        if reply.typ == u32::from(MsgType::Error) {
            return Err(match Errno::from_payload(&reply.payload) {
                Ok(e) => Error::Refused(e),
                Err(e) => Error::Protocol(e),
            });
        }
        if reply.typ != u32::from(typ) {
            return Err(Error::Protocol(wire::Error::UnexpectedReply {
                want: typ,
                got: reply.typ,
            }));
        }
        Ok(reply.payload)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(s) = &self.shutdown {
            // Ends the reader thread; failure means the socket is gone.
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn read_loop<R: Read>(mut r: R, inner: &Inner) {
    let why = loop {
        if let Err(why) = read_frame(&mut r, inner) {
            break why;
        }
    };
    inner.close(why);
}

/// Reads one frame from the server and hands it out: a reply to the
/// request waiting for it, a watch event to the queue. `Err`: why the
/// connection is over.
fn read_frame<R: Read + ?Sized>(r: &mut R, inner: &Inner) -> Result<(), &'static str> {
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head).map_err(|_| "connection closed")?;
    let hdr = Header::parse(&head).map_err(|_| "short header")?;
    let len = hdr
        .check_len()
        .map_err(|_| "oversized message from server")?;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)
        .map_err(|_| "connection closed")?;
    let mut st = inner.lock();
    if hdr.msg_type == u32::from(MsgType::WatchEvent) {
        let Some([path, token]) = args::first_n::<2>(&payload) else {
            return Ok(());
        };
        if st.events.len() >= inner.max_events {
            st.dropped = st.dropped.saturating_add(1);
            return Ok(());
        }
        st.events.push_back(WatchEvent {
            path: String::from_utf8_lossy(path).into_owned(),
            token: String::from_utf8_lossy(token).into_owned(),
        });
        inner.sync_ready(&mut st);
    } else if let Some(slot) = st.waiting.get_mut(&hdr.req_id) {
        *slot = Some(Reply {
            typ: hdr.msg_type,
            payload,
        });
    }
    // A reply nobody waits for is dropped.
    drop(st);
    inner.changed.notify_all();
    Ok(())
}

fn no_nul(s: &str) -> Result<&str, Error> {
    if s.contains('\0') {
        Err(Error::BadArgument("NUL inside a path or token"))
    } else {
        Ok(s)
    }
}

fn path_arg(p: &str) -> Result<Vec<u8>, Error> {
    let mut v = no_nul(p)?.as_bytes().to_vec();
    v.push(0);
    Ok(v)
}

fn ok_reply(v: Vec<u8>) -> Result<(), Error> {
    // Replies that acknowledge carry "OK\0"; anything else is ignored as C
    // libxenstore does.
    let _ = v;
    Ok(())
}

impl Pollable for Connection {
    fn watch_fd(&self) -> BorrowedFd<'_> {
        self.inner.ready.as_fd()
    }
}

impl Store for Connection {
    fn read(&self, tx: Tx, path: &str) -> Result<Vec<u8>, Error> {
        self.request(MsgType::Read, tx, &path_arg(path)?)
    }

    fn write(&self, tx: Tx, path: &str, value: &[u8]) -> Result<(), Error> {
        let mut p = path_arg(path)?;
        p.extend_from_slice(value);
        self.request(MsgType::Write, tx, &p).and_then(ok_reply)
    }

    fn mkdir(&self, tx: Tx, path: &str) -> Result<(), Error> {
        self.request(MsgType::Mkdir, tx, &path_arg(path)?)
            .and_then(ok_reply)
    }

    fn rm(&self, tx: Tx, path: &str) -> Result<(), Error> {
        self.request(MsgType::Rm, tx, &path_arg(path)?)
            .and_then(ok_reply)
    }

    fn directory(&self, tx: Tx, path: &str) -> Result<Vec<String>, Error> {
        let v = self.request(MsgType::Directory, tx, &path_arg(path)?)?;
        Ok(args::strings(&v)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    fn get_perms(&self, tx: Tx, path: &str) -> Result<Perms, Error> {
        let v = self.request(MsgType::GetPerms, tx, &path_arg(path)?)?;
        Perms::parse(args::strings(&v))
            .ok_or(Error::Protocol(wire::Error::Malformed(MsgType::GetPerms)))
    }

    fn set_perms(&self, tx: Tx, path: &str, perms: &Perms) -> Result<(), Error> {
        let mut p = path_arg(path)?;
        p.extend_from_slice(&perms.to_payload());
        self.request(MsgType::SetPerms, tx, &p).and_then(ok_reply)
    }

    fn watch(&self, path: &str, token: &str) -> Result<(), Error> {
        let mut p = path_arg(path)?;
        p.extend_from_slice(&path_arg(token)?);
        self.request(MsgType::Watch, Tx::NONE, &p)
            .and_then(ok_reply)
    }

    fn unwatch(&self, path: &str, token: &str) -> Result<(), Error> {
        let mut p = path_arg(path)?;
        p.extend_from_slice(&path_arg(token)?);
        self.request(MsgType::Unwatch, Tx::NONE, &p)
            .and_then(ok_reply)
    }

    fn next_event(&self, timeout: Option<Duration>) -> Result<Option<WatchEvent>, Error> {
        // A timeout too long to add to now is as good as none.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = self.inner.lock();
        loop {
            if let Some(e) = st.events.pop_front() {
                self.inner.sync_ready(&mut st);
                return Ok(Some(e));
            }
            if st.closed.is_some() {
                return Err(Error::Closed);
            }
            // With no reader thread, nothing else will come meanwhile.
            if self.inner.inline.is_some() {
                return Ok(None);
            }
            st = match deadline {
                None => self
                    .inner
                    .changed
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    self.inner
                        .changed
                        .wait_timeout(st, d.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn transaction_start(&self) -> Result<Tx, Error> {
        let v = self.request(MsgType::TransactionStart, Tx::NONE, b"\0")?;
        let id = args::one(&v)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse().ok())
            .ok_or(Error::Protocol(wire::Error::Malformed(
                MsgType::TransactionStart,
            )))?;
        Ok(Tx(id))
    }

    fn transaction_end(&self, tx: Tx, commit: bool) -> Result<(), Error> {
        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.request(MsgType::TransactionEnd, tx, arg)
            .and_then(ok_reply)
    }

    fn get_domain_path(&self, domid: u32) -> Result<String, Error> {
        let v = self.request(
            MsgType::GetDomainPath,
            Tx::NONE,
            format!("{domid}\0").as_bytes(),
        )?;
        args::one(&v)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .ok_or(Error::Protocol(wire::Error::Malformed(
                MsgType::GetDomainPath,
            )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(typ: MsgType, req_id: u32, payload: &[u8]) -> Vec<u8> {
        wire::encode(typ, req_id, 0, payload).unwrap()
    }

    #[test]
    fn an_inline_connection_reads_its_replies_itself() {
        // A watch event, a stray reply, then the answers to requests 0 and 1.
        let mut server = frame(MsgType::WatchEvent, 0, b"/a\0tok\0");
        server.extend(frame(MsgType::Read, 77, b"stray"));
        server.extend(frame(MsgType::Read, 0, b"value"));
        server.extend(frame(MsgType::Error, 1, b"ENOENT\0"));
        let xs = Connection::inline(io::Cursor::new(server), io::sink()).unwrap();
        assert_eq!(xs.read(Tx::NONE, "/a").unwrap(), b"value");
        assert!(matches!(
            xs.read(Tx::NONE, "/b"),
            Err(Error::Refused(Errno::ENOENT))
        ));
        let ev = xs.next_event(None).unwrap().unwrap();
        assert_eq!((ev.path.as_str(), ev.token.as_str()), ("/a", "tok"));
        // Nothing more queued, and no thread to wait for: no blocking.
        assert!(xs.next_event(None).unwrap().is_none());
        // The transport is at its end: the next request fails, and so do
        // the later ones.
        assert!(matches!(xs.read(Tx::NONE, "/c"), Err(Error::Closed)));
        assert!(matches!(xs.next_event(None), Err(Error::Closed)));
    }
}
