//! A blocking Xenstore client over a Unix socket (the simulator's per-domain
//! sockets, or dom0's xenstored socket), implementing [`Store`].
//!
//! Requests are answered in order on one connection; watch events that
//! arrive meanwhile are queued (at most [`MAX_QUEUED_EVENTS`], the oldest
//! dropped beyond) for [`Store::next_event`].

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use xenmq::store::{Error, Store, Tx, WatchEvent};
use xenmq::xenstore::perms::Perms;
use xenmq::xenstore::{self, args, Errno, Header, MsgType, HEADER_LEN};

/// Watch events kept while nobody asks for them.
pub const MAX_QUEUED_EVENTS: usize = 1024;

struct Inner {
    stream: UnixStream,
    next_id: u32,
    events: VecDeque<WatchEvent>,
    dropped: u64,
    rbuf: Vec<u8>,
}

/// A Xenstore connection; see the [module](self) docs.
pub struct SocketStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SocketStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketStore").finish_non_exhaustive()
    }
}

fn transport(e: io::Error) -> Error {
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
            Error::Closed
        }
        _ => Error::Transport(Box::new(e)),
    }
}

impl SocketStore {
    /// Connects to the server listening at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<SocketStore, Error> {
        let stream = UnixStream::connect(path).map_err(transport)?;
        Ok(SocketStore {
            inner: Mutex::new(Inner {
                stream,
                next_id: 1,
                events: VecDeque::new(),
                dropped: 0,
                rbuf: Vec::new(),
            }),
        })
    }

    /// Connects to the socket named by `XENSTORED_PATH`.
    pub fn from_env() -> Result<SocketStore, Error> {
        let path = std::env::var_os("XENSTORED_PATH")
            .ok_or(Error::BadArgument("XENSTORED_PATH is not set"))?;
        SocketStore::connect(path)
    }

    /// Watch events dropped because nobody took them.
    pub fn dropped_events(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn call(&self, ty: MsgType, tx: Tx, payload: &[u8]) -> Result<Vec<u8>, Error> {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id = inner.next_id.wrapping_add(1).max(1);
        let msg = xenstore::encode(ty, id, tx.0, payload)
            .ok_or(Error::BadArgument("request longer than 4096 bytes"))?;
        inner
            .stream
            .set_nonblocking(false)
            .and_then(|()| inner.stream.write_all(&msg))
            .map_err(transport)?;
        loop {
            let (h, body) = inner.read_msg(None)?.ok_or(Error::Closed)?;
            if h.msg_type == u32::from(MsgType::WatchEvent) {
                inner.queue_event(&body);
                continue;
            }
            if h.req_id != id {
                // A reply to nothing we asked (a confused server): skip it.
                continue;
            }
            if h.msg_type == u32::from(MsgType::Error) {
                return Err(match Errno::from_payload(&body) {
                    Ok(e) => Error::Refused(e),
                    Err(e) => Error::Protocol(e),
                });
            }
            if h.msg_type != u32::from(ty) {
                return Err(Error::Protocol(xenstore::Error::UnexpectedReply {
                    want: ty,
                    got: h.msg_type,
                }));
            }
            return Ok(body);
        }
    }
}

impl Inner {
    /// A whole message from the buffer, if one is there.
    fn take_msg(&mut self) -> Result<Option<(Header, Vec<u8>)>, Error> {
        if self.rbuf.len() < HEADER_LEN {
            return Ok(None);
        }
        let h = Header::parse(&self.rbuf).map_err(Error::Protocol)?;
        let len = h.check_len().map_err(Error::Protocol)?;
        if self.rbuf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = self.rbuf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.rbuf.drain(..HEADER_LEN + len);
        Ok(Some((h, body)))
    }

    /// One whole message; `None` if none came within `timeout` (`None`:
    /// wait for ever). Partial messages stay buffered for the next call.
    fn read_msg(&mut self, timeout: Option<Duration>) -> Result<Option<(Header, Vec<u8>)>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(m) = self.take_msg()? {
                return Ok(Some(m));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match left {
                Some(l) if l.is_zero() => self.stream.set_nonblocking(true),
                Some(l) => self
                    .stream
                    .set_nonblocking(false)
                    .and_then(|()| self.stream.set_read_timeout(Some(l))),
                None => self
                    .stream
                    .set_nonblocking(false)
                    .and_then(|()| self.stream.set_read_timeout(None)),
            }
            .map_err(transport)?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if left.is_some() {
                        return Ok(None);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(transport(e)),
            }
        }
    }

    fn queue_event(&mut self, body: &[u8]) {
        let mut it = args::strings(body);
        let (Some(path), Some(token)) = (it.next(), it.next()) else {
            return;
        };
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.dropped = self.dropped.wrapping_add(1);
        }
        self.events.push_back(WatchEvent {
            path: String::from_utf8_lossy(path).into_owned(),
            token: String::from_utf8_lossy(token).into_owned(),
        });
    }
}

fn nul(parts: &[&[u8]]) -> Result<Vec<u8>, Error> {
    let mut v = Vec::new();
    for p in parts {
        if p.contains(&0) {
            return Err(Error::BadArgument("NUL inside a path or token"));
        }
        v.extend_from_slice(p);
        v.push(0);
    }
    Ok(v)
}

fn text(body: &[u8]) -> String {
    let s = body.strip_suffix(&[0]).unwrap_or(body);
    String::from_utf8_lossy(s).into_owned()
}

impl Store for SocketStore {
    fn read(&self, tx: Tx, path: &str) -> Result<Vec<u8>, Error> {
        self.call(MsgType::Read, tx, &nul(&[path.as_bytes()])?)
    }

    fn write(&self, tx: Tx, path: &str, value: &[u8]) -> Result<(), Error> {
        let mut p = nul(&[path.as_bytes()])?;
        p.extend_from_slice(value);
        self.call(MsgType::Write, tx, &p).map(drop)
    }

    fn mkdir(&self, tx: Tx, path: &str) -> Result<(), Error> {
        self.call(MsgType::Mkdir, tx, &nul(&[path.as_bytes()])?)
            .map(drop)
    }

    fn rm(&self, tx: Tx, path: &str) -> Result<(), Error> {
        self.call(MsgType::Rm, tx, &nul(&[path.as_bytes()])?)
            .map(drop)
    }

    fn directory(&self, tx: Tx, path: &str) -> Result<Vec<String>, Error> {
        let body = self.call(MsgType::Directory, tx, &nul(&[path.as_bytes()])?)?;
        Ok(args::strings(&body)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    fn get_perms(&self, tx: Tx, path: &str) -> Result<Perms, Error> {
        let body = self.call(MsgType::GetPerms, tx, &nul(&[path.as_bytes()])?)?;
        Perms::parse(args::strings(&body)).ok_or(Error::Protocol(xenstore::Error::Malformed(
            MsgType::GetPerms,
        )))
    }

    fn set_perms(&self, tx: Tx, path: &str, perms: &Perms) -> Result<(), Error> {
        let mut p = nul(&[path.as_bytes()])?;
        p.extend_from_slice(&perms.to_payload());
        self.call(MsgType::SetPerms, tx, &p).map(drop)
    }

    fn watch(&self, path: &str, token: &str) -> Result<(), Error> {
        self.call(
            MsgType::Watch,
            Tx::NONE,
            &nul(&[path.as_bytes(), token.as_bytes()])?,
        )
        .map(drop)
    }

    fn unwatch(&self, path: &str, token: &str) -> Result<(), Error> {
        self.call(
            MsgType::Unwatch,
            Tx::NONE,
            &nul(&[path.as_bytes(), token.as_bytes()])?,
        )
        .map(drop)
    }

    fn next_event(&self, timeout: Option<Duration>) -> Result<Option<WatchEvent>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut inner = self.lock();
        loop {
            if let Some(ev) = inner.events.pop_front() {
                return Ok(Some(ev));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let Some((h, body)) = inner.read_msg(left)? else {
                return Ok(None);
            };
            if h.msg_type == u32::from(MsgType::WatchEvent) {
                inner.queue_event(&body);
            }
            if left.is_some_and(|l| l.is_zero()) && inner.events.is_empty() {
                return Ok(None);
            }
        }
    }

    fn transaction_start(&self) -> Result<Tx, Error> {
        let body = self.call(MsgType::TransactionStart, Tx::NONE, b"\0")?;
        text(&body)
            .parse()
            .map(Tx)
            .map_err(|_| Error::Protocol(xenstore::Error::Malformed(MsgType::TransactionStart)))
    }

    fn transaction_end(&self, tx: Tx, commit: bool) -> Result<(), Error> {
        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.call(MsgType::TransactionEnd, tx, arg).map(drop)
    }

    fn get_domain_path(&self, domid: u32) -> Result<String, Error> {
        let body = self.call(
            MsgType::GetDomainPath,
            Tx::NONE,
            &nul(&[domid.to_string().as_bytes()])?,
        )?;
        Ok(text(&body))
    }
}
