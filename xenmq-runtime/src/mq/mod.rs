//! Named message queues between any domains, on any platform.
//!
//! A queue is made once ([`create`], `xenmq mq create`) by a privileged
//! domain, with its message type, capacity and access list; then any
//! domain on the list opens it by name: [`Sender::open`] or
//! [`Receiver::open`], over the same [`Env`] a device end uses. What the
//! nodes are and how they are checked is [`xenmq::mq`]'s; this module does
//! the I/O.
//!
//! ```no_run
//! use xenmq_runtime::mq::{self, Mode, Receiver, Sender, Spec};
//! # fn env() -> xenmq_runtime::device::sim::SimEnv {
//! #     xenmq_runtime::device::sim::attach("/run/xenmq-sim".as_ref(), 0).expect("a simulator")
//! # }
//!
//! #[xenmq::message]
//! pub struct Line { pub seq: u64, pub len: u32, pub _pad: u32, pub text: [u8; 112] }
//!
//! // dom0: guests 1 and 2 send to dom0.
//! let spec = Spec::new::<Line>("logs", 256, Mode::FanOut, vec![1, 2], vec![0])?;
//! mq::create(&env().store, &spec)?;
//! let mut rx = Receiver::<Line, _, _, _>::open(env(), "logs")?;
//! // in a guest: let mut tx = Sender::<Line, _, _, _>::open(env(), "logs")?; tx.send(&line)?;
//! let got = rx.recv()?;
//! println!("dom{} says seq {}", got.from, got.msg.seq);
//! # Ok::<(), mq::Error>(())
//! ```
//!
//! Each sender/receiver pair has its own ring and event channel (see
//! [`xenmq::mq`] for the layout and the safety argument). The data path
//! never touches Xenstore: a sender looks at it for new receivers only
//! when it has no room or every few thousand messages, and both publish
//! their counts now and then for `xenmq mq stat`.

mod recv;
mod send;

use std::time::{Duration, Instant};

use xenmq::grant::DomId;
use xenmq::xenstore::perms::{Mode as PermMode, Perm, Perms};
use xenmq::xenstore::{self, Errno, Store, Tx};

pub use recv::{Delivery, Receiver};
pub use send::Sender;
pub use xenmq::mq::{Mode, Role, Spec, ROOT};

use crate::device::Env;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue refused the operation (missing, not permitted, another
    /// message type, malformed, full, removed).
    #[error(transparent)]
    Queue(#[from] xenmq::mq::Error),
    /// A Xenstore operation failed.
    #[error("xenstore operation failed")]
    Store(#[from] xenstore::Error),
    /// A grant operation failed.
    #[error("grant operation failed")]
    Grant(#[from] xenmq::grant::Error),
    /// An event channel operation failed.
    #[error("event channel operation failed")]
    Event(#[from] xenmq::evtchn::Error),
    /// The ring could not be set up.
    #[error("ring set-up failed")]
    Ring(#[from] xenmq::ring::Error),
    /// Waiting failed.
    #[error("poll failed")]
    Poll(#[from] std::io::Error),
}

/// How often (in messages) a member publishes its count.
const COUNT_EVERY: u64 = 1 << 16;

/// Maps a Xenstore refusal to the queue's error: `ENOENT` is no queue,
/// `EACCES` is the store refusing this domain `what`.
fn refusal(name: &str, domid: DomId, what: &'static str, e: xenstore::Error) -> Error {
    match e.errno() {
        Some(Errno::ENOENT) => xenmq::mq::Error::NoQueue { name: name.into() }.into(),
        Some(Errno::EACCES) | Some(Errno::EPERM) => xenmq::mq::Error::NotPermitted {
            name: name.into(),
            domid,
            what,
        }
        .into(),
        _ => Error::Store(e),
    }
}

fn read_opt<S: Store>(store: &S, tx: Tx, path: &str) -> Result<Option<String>, xenstore::Error> {
    match store.read_string(tx, path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads and checks queue `name`'s spec as domain `domid`.
pub fn spec<S: Store>(store: &S, name: &str, domid: DomId) -> Result<Spec, Error> {
    if !xenmq::mq::valid_name(name) {
        return Err(xenmq::mq::Error::BadName { name: name.into() }.into());
    }
    let dir = xenmq::mq::path(name);
    // The queue node itself first, so that a missing queue and a queue
    // this domain may not read are told apart.
    store
        .read(Tx::NONE, &dir)
        .map_err(|e| refusal(name, domid, "read the queue", e))?;
    let mut failed = None;
    let spec = Spec::parse(
        name,
        &mut |key| match read_opt(store, Tx::NONE, &format!("{dir}/{key}")) {
            Ok(v) => v,
            Err(e) => {
                failed.get_or_insert(e);
                None
            }
        },
    );
    if let Some(e) = failed {
        return Err(refusal(name, domid, "read the queue", e));
    }
    Ok(spec?)
}

/// Creates queue `spec.name` in Xenstore, as this connection's domain
/// (which must be privileged to write under [`ROOT`]): its spec, readable
/// by its members only, and one node per member that only that member may
/// write. Fails if it exists.
pub fn create<S: Store>(store: &S, spec: &Spec) -> Result<(), Error> {
    spec.check()?;
    let name = spec.name.as_str();
    let dir = xenmq::mq::path(name);
    let members: Vec<DomId> = {
        let mut m: Vec<DomId> = spec
            .senders
            .iter()
            .chain(&spec.receivers)
            .copied()
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    let reading = |owner: u32, readers: &[DomId]| {
        let mut entries = vec![Perm {
            id: owner,
            access: PermMode::None,
        }];
        entries.extend(
            readers
                .iter()
                .filter(|&&d| u32::from(d) != owner)
                .map(|&d| Perm {
                    id: u32::from(d),
                    access: PermMode::Read,
                }),
        );
        Perms::from_entries(entries).unwrap_or_else(|| Perms::new(owner, PermMode::None))
    };
    xenstore::transaction(store, |tx| {
        if store.exists(tx, &dir)? {
            return Ok(false);
        }
        // The directories of queues are readable by all, so that a missing
        // queue is told apart from a queue one may not read; a queue's own
        // node is its members' only.
        for top in ["/xenmq", ROOT] {
            if !store.exists(tx, top)? {
                store.mkdir(tx, top)?;
                let owner = store.get_perms(tx, top)?.owner();
                store.set_perms(tx, top, &Perms::new(owner, PermMode::Read))?;
            }
        }
        store.mkdir(tx, &dir)?;
        let owner = store.get_perms(tx, &dir)?.owner();
        store.set_perms(tx, &dir, &reading(owner, &members))?;
        for (key, value) in spec.to_nodes() {
            store.write(tx, &format!("{dir}/{key}"), value.as_bytes())?;
        }
        for (role, list, readers) in [
            (Role::Sender, &spec.senders, &spec.receivers),
            (Role::Receiver, &spec.receivers, &spec.senders),
        ] {
            store.mkdir(tx, &format!("{dir}/{}", role.dir()))?;
            for &d in list {
                let node = xenmq::mq::member_path(name, role, d);
                store.mkdir(tx, &node)?;
                let mut perms = reading(u32::from(d), readers);
                // The creator keeps reading it, for `stat`.
                if owner != u32::from(d) && !readers.iter().any(|&r| u32::from(r) == owner) {
                    perms = Perms::from_entries(
                        perms
                            .entries()
                            .iter()
                            .copied()
                            .chain([Perm {
                                id: owner,
                                access: PermMode::Read,
                            }])
                            .collect(),
                    )
                    .unwrap_or(perms);
                }
                store.set_perms(tx, &node, &perms)?;
            }
        }
        Ok(true)
    })
    .map_err(|e| refusal(name, own_domid(store), "create queues", e))?
    .then_some(())
    .ok_or_else(|| xenmq::mq::Error::Exists { name: name.into() }.into())
}

/// This connection's domain, as its `domid` key says (0 if it says
/// nothing: dom0's own tree may lack it).
fn own_domid<S: Store>(store: &S) -> DomId {
    store
        .read_string(Tx::NONE, "domid")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Removes queue `name` and everything its members published. Members
/// see it gone: their channels close once drained.
pub fn remove<S: Store>(store: &S, name: &str) -> Result<(), Error> {
    if !xenmq::mq::valid_name(name) {
        return Err(xenmq::mq::Error::BadName { name: name.into() }.into());
    }
    let dir = xenmq::mq::path(name);
    store
        .read(Tx::NONE, &dir)
        .map_err(|e| refusal(name, own_domid(store), "read the queue", e))?;
    store
        .rm(Tx::NONE, &dir)
        .map_err(|e| refusal(name, own_domid(store), "remove the queue", e))?;
    Ok(())
}

/// The queues this connection can see, by name.
pub fn list<S: Store>(store: &S) -> Result<Vec<String>, Error> {
    match store.directory(Tx::NONE, ROOT) {
        Ok(mut names) => {
            names.sort();
            Ok(names)
        }
        Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// One member as `stat` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The domain.
    pub domid: DomId,
    /// Its role.
    pub role: Role,
    /// Whether it has the queue open (a receiver's generation is
    /// published; a sender has published a channel).
    pub open: bool,
    /// Messages it sent or received, as last published.
    pub count: u64,
    /// The peers it has a channel with (for a sender: the receivers it
    /// published a ring for).
    pub links: Vec<DomId>,
}

/// A queue's spec and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// What the queue is.
    pub spec: Spec,
    /// Every listed member.
    pub members: Vec<Member>,
}

impl Stat {
    /// Messages sent and not yet received, from the counts last published
    /// (in fan-out, a message counts once per receiver).
    pub fn depth(&self) -> u64 {
        let sum = |role| {
            self.members
                .iter()
                .filter(|m| m.role == role)
                .map(|m| m.count)
                .fold(0u64, u64::saturating_add)
        };
        let sent = sum(Role::Sender);
        let sent = match self.spec.mode {
            Mode::FanOut => sent.saturating_mul(
                self.members
                    .iter()
                    .filter(|m| m.role == Role::Receiver && m.open)
                    .count()
                    .max(1) as u64,
            ),
            Mode::Compete => sent,
        };
        sent.saturating_sub(sum(Role::Receiver))
    }
}

/// Queue `name`'s spec and members, as dom0 (or any member) sees them.
pub fn stat<S: Store>(store: &S, name: &str) -> Result<Stat, Error> {
    let spec = spec(store, name, 0)?;
    let mut members = Vec::new();
    for (role, list) in [
        (Role::Sender, &spec.senders),
        (Role::Receiver, &spec.receivers),
    ] {
        for &d in list {
            let node = xenmq::mq::member_path(name, role, d);
            let count_key = match role {
                Role::Sender => "sent",
                Role::Receiver => "received",
            };
            let count = read_opt(store, Tx::NONE, &format!("{node}/{count_key}"))
                .ok()
                .flatten()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let (open, links) = match role {
                Role::Receiver => (
                    read_opt(store, Tx::NONE, &format!("{node}/generation"))
                        .ok()
                        .flatten()
                        .is_some(),
                    Vec::new(),
                ),
                Role::Sender => {
                    let links: Vec<DomId> = store
                        .directory(Tx::NONE, &node)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|c| c.parse().ok())
                        .collect();
                    (!links.is_empty(), links)
                }
            };
            members.push(Member {
                domid: d,
                role,
                open,
                count,
                links,
            });
        }
    }
    Ok(Stat { spec, members })
}

/// What sender and receiver share: the queue, this domain, the store.
struct Base<S> {
    spec: Spec,
    domid: DomId,
    store: S,
    /// This member's node.
    node: String,
    count: u64,
    published: u64,
    removed: bool,
}

impl<S: Store> Base<S> {
    fn open<M: xenmq::wire::Message, G: xenmq::grant::Grants, E>(
        env: &Env<S, G, E>,
        name: &str,
        role: Role,
    ) -> Result<Spec, Error> {
        let domid = env.grants.domid();
        let spec = spec(&env.store, name, domid)?;
        spec.expect::<M>()?;
        if !spec.permits(domid, role) {
            return Err(xenmq::mq::Error::NotPermitted {
                name: name.into(),
                domid,
                what: match role {
                    Role::Sender => "send (not on the senders list)",
                    Role::Receiver => "receive (not on the receivers list)",
                },
            }
            .into());
        }
        Ok(spec)
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    fn err(&self, make: impl FnOnce(String) -> xenmq::mq::Error) -> Error {
        Error::Queue(make(self.spec.name.clone()))
    }

    /// Publishes the count if it moved far enough (or `force`).
    fn publish_count(&mut self, key: &str, force: bool) {
        if self.count == self.published || (!force && self.count - self.published < COUNT_EVERY) {
            return;
        }
        // Best effort: the count is for people looking, not for the queue.
        if self
            .store
            .write(
                Tx::NONE,
                &format!("{}/{key}", self.node),
                self.count.to_string().as_bytes(),
            )
            .is_ok()
        {
            self.published = self.count;
        }
    }
}

/// A deadline `timeout` from now (`None`: none).
fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// What is left of `deadline`; `Some(ZERO)` once passed.
fn left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// A number that differs between incarnations of a member (a device
/// end's instance number, kept within 63 bits).
fn generation() -> u64 {
    crate::device::instance() >> 1
}
