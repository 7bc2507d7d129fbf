//! The protocol engine: one request in, replies and watch events out.
//!
//! Semantics follow C xenstored 4.17 (what Debian 12 ships), checked by the
//! differential tests in `tests/tests/xenstore_diff.rs`; the deliberate
//! differences are listed in `docs/xenstore-differences.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use xenmq::xenstore::path;
use xenmq::xenstore::perms::{Mode, Perms};
use xenmq::xenstore::wire::{args, encode, Errno, Header, MsgType, PAYLOAD_MAX};

use super::outbox::Outbox;
use super::tree::Tree;
use super::Limits;

mod node;
mod txn;
mod watch;

use node::{next_generation, node_ops, NodeResult, Want};
use txn::{Txn, View};
use watch::Watch;

type Res<T> = Result<T, Errno>;

/// A node change, remembered until its watch events are fired.
#[derive(Clone)]
pub(crate) struct Change {
    path: String,
    /// Only watches on exactly this path fire (a removed descendant).
    exact: bool,
    /// Permissions the node had (before and after), for watch checks.
    perms: Vec<Perms>,
}

pub(crate) struct ConnState {
    pub domid: u32,
    watches: Vec<Watch>,
    txs: BTreeMap<u32, Txn>,
    next_tx: u32,
    pub out: Arc<Outbox>,
    pub stream: Option<UnixStream>,
}

impl ConnState {
    pub fn new(domid: u32, out: Arc<Outbox>, stream: Option<UnixStream>) -> Self {
        ConnState {
            domid,
            watches: Vec::new(),
            txs: BTreeMap::new(),
            next_tx: 0,
            out,
            stream,
        }
    }
}

pub(crate) struct State {
    pub cfg: Limits,
    tree: Tree,
    generation: u64,
    pub conns: BTreeMap<u64, ConnState>,
    domains: BTreeSet<u32>,
    targets: HashMap<u32, u32>,
    introduce_perms: Perms,
    release_perms: Perms,
}

/// Who is asking.
#[derive(Clone, Copy)]
struct Who {
    domid: u32,
    privileged: bool,
    target: Option<u32>,
}

impl Who {
    fn allowed(&self, perms: &Perms, want: Want) -> bool {
        if self.privileged {
            return true;
        }
        let r = perms.rights_of(self.domid, self.target);
        match want {
            Want::Read => r.read,
            Want::Write => r.write,
            Want::Own => r.owner,
        }
    }
}

/// `perms` without domain `domid`: the owner becomes dom0 and entries
/// naming it go (C's treatment of the special watch names' permissions).
fn without_domain(perms: &Perms, domid: u32) -> Perms {
    let mut entries = perms.entries().to_vec();
    let mut out = Vec::with_capacity(entries.len());
    let mut iter = entries.drain(..);
    if let Some(mut first) = iter.next() {
        if first.id == domid {
            first.id = 0;
        }
        out.push(first);
    }
    out.extend(iter.filter(|p| p.id != domid));
    Perms::from_entries(out).unwrap_or_else(|| Perms::new(0, Mode::None))
}

fn ok_payload() -> Vec<u8> {
    b"OK\0".to_vec()
}

/// What handling one request produced.
pub(crate) struct Outcome {
    /// Close the connection (the request was a protocol violation).
    pub close: bool,
}

impl State {
    pub fn new(cfg: Limits) -> Self {
        State {
            cfg,
            tree: Tree::new(),
            generation: 1,
            conns: BTreeMap::new(),
            domains: BTreeSet::from([0]),
            targets: HashMap::new(),
            introduce_perms: Perms::new(0, Mode::None),
            release_perms: Perms::new(0, Mode::None),
        }
    }

    fn who(&self, domid: u32) -> Who {
        Who {
            domid,
            privileged: domid == 0,
            target: self.targets.get(&domid).copied(),
        }
    }

    /// Handles one request of connection `cid`.
    pub fn handle(&mut self, cid: u64, hdr: Header, payload: &[u8]) -> Outcome {
        let Some(conn) = self.conns.get(&cid) else {
            return Outcome { close: true };
        };
        let who = self.who(conn.domid);
        let mut events = Vec::new();
        let result = self.dispatch(cid, who, hdr, payload, &mut events);
        let (typ, body) = match result {
            Ok((t, b)) => (t, b),
            Err(e) => (MsgType::Error, e.payload()),
        };
        // C xenstored queues the events a request causes before its reply,
        // except @releaseDomain, which follows the reply to RELEASE.
        let release = hdr.typ() == Some(MsgType::Release);
        if !release {
            self.fire(&events);
        }
        let (typ, body) = if body.len() > PAYLOAD_MAX {
            (MsgType::Error, Errno::E2BIG.payload())
        } else {
            (typ, body)
        };
        trace_request(who.domid, hdr, payload, typ, &body);
        if let Some(conn) = self.conns.get(&cid) {
            if let Some(msg) = encode(typ, hdr.req_id, hdr.tx_id, &body) {
                conn.out.reply(msg);
            }
            if typ == MsgType::Watch {
                self.initial_event(cid, payload);
            }
        }
        if release {
            self.fire(&events);
        }
        Outcome { close: false }
    }

    fn dispatch(
        &mut self,
        cid: u64,
        who: Who,
        hdr: Header,
        payload: &[u8],
        events: &mut Vec<Change>,
    ) -> Res<(MsgType, Vec<u8>)> {
        use MsgType::*;
        let typ = match hdr.typ() {
            Some(WatchEvent | Error) | None => return Err(Errno::ENOSYS),
            Some(t) => t,
        };
        let privileged_only = matches!(
            typ,
            Control | Introduce | Release | IsDomainIntroduced | Resume | SetTarget
        );
        if privileged_only && !who.privileged {
            return Err(Errno::EACCES);
        }
        let tx_id = if matches!(typ, Watch | Unwatch) {
            0
        } else {
            hdr.tx_id
        };
        if tx_id != 0
            && !self
                .conns
                .get(&cid)
                .is_some_and(|c| c.txs.contains_key(&tx_id))
        {
            return Err(Errno::ENOENT);
        }
        let body = match typ {
            Read | Directory | DirectoryPart | GetPerms | Write | Mkdir | Rm | SetPerms => {
                return self.node_op(cid, who, typ, tx_id, payload, events);
            }
            Watch => self.watch(cid, who, payload)?,
            Unwatch => self.unwatch(cid, who, payload)?,
            TransactionStart => self.tx_start(cid, who, tx_id)?,
            TransactionEnd => self.tx_end(cid, who, tx_id, payload, events)?,
            Introduce => {
                let [d, _mfn, port] = args::first_n::<3>(payload).ok_or(Errno::EINVAL)?;
                if args::atoi_u32(port) == 0 {
                    return Err(Errno::EINVAL);
                }
                self.introduce_domain(args::atoi_u32(d), events);
                ok_payload()
            }
            Release => {
                let d = args::atoi_u32(args::one(payload).ok_or(Errno::EINVAL)?);
                if d == 0 {
                    return Err(Errno::EINVAL);
                }
                if !self.domains.contains(&d) {
                    return Err(Errno::ENOENT);
                }
                self.release_domain(d, events);
                ok_payload()
            }
            GetDomainPath => {
                let d = args::atoi_u32(args::one(payload).ok_or(Errno::EINVAL)?);
                let mut v = path::home(d).into_bytes();
                v.push(0);
                v
            }
            IsDomainIntroduced => {
                let d = args::atoi_u32(args::one(payload).ok_or(Errno::EINVAL)?);
                if self.domains.contains(&d) {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                }
            }
            Resume => {
                let d = args::atoi_u32(args::one(payload).ok_or(Errno::EINVAL)?);
                if d == 0 {
                    return Err(Errno::EINVAL);
                }
                if !self.domains.contains(&d) {
                    return Err(Errno::ENOENT);
                }
                ok_payload()
            }
            SetTarget => {
                let [d, t] = args::first_n::<2>(payload).ok_or(Errno::EINVAL)?;
                let (d, t) = (args::atoi_u32(d), args::atoi_u32(t));
                if !self.domains.contains(&d) || !self.domains.contains(&t) {
                    return Err(Errno::ENOENT);
                }
                self.targets.insert(d, t);
                ok_payload()
            }
            ResetWatches => {
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.watches.clear();
                    c.txs.clear();
                }
                ok_payload()
            }
            // The debug interface of C xenstored is not provided.
            Control => return Err(Errno::ENOSYS),
            WatchEvent | Error => return Err(Errno::ENOSYS),
        };
        Ok((typ, body))
    }

    /// Marks a domain as introduced; fires `@introduceDomain` if it is new.
    pub fn introduce_domain(&mut self, domid: u32, events: &mut Vec<Change>) {
        if self.domains.insert(domid) {
            events.push(Change {
                path: path::INTRODUCE_DOMAIN.to_owned(),
                exact: true,
                perms: vec![self.introduce_perms.clone()],
            });
        }
    }

    /// Forgets a domain as C xenstored 4.17 does when its connection is
    /// freed: removes every node it owns (with the subtree below, firing
    /// their watches), makes permission entries naming it grant nothing
    /// (listed still), takes it out of the `@introduceDomain` and
    /// `@releaseDomain` permissions, closes its connections and fires
    /// `@releaseDomain` if the domain was introduced (C fires nothing for
    /// a domain it only knew from permissions). A new domain reusing the id
    /// inherits nothing.
    pub fn release_domain(&mut self, domid: u32, events: &mut Vec<Change>) {
        let mut introduced = domid == 0;
        if domid != 0 {
            introduced = self.domains.remove(&domid);
            self.remove_owned(domid, events);
            self.tree.ignore_domain(domid);
            for c in self.conns.values_mut() {
                for tx in c.txs.values_mut() {
                    for n in tx.overlay.values_mut().flatten() {
                        n.perms.ignore(domid);
                    }
                }
            }
            for special in [&mut self.introduce_perms, &mut self.release_perms] {
                *special = without_domain(special, domid);
            }
        }
        self.targets.remove(&domid);
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.domid == domid)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.drop_conn(id);
        }
        if !introduced {
            return;
        }
        events.push(Change {
            path: path::RELEASE_DOMAIN.to_owned(),
            exact: true,
            perms: vec![self.release_perms.clone()],
        });
    }

    /// Removes the nodes `domid` owns, each with its subtree, in the order
    /// of C's walk (depth first, children in creation order). Every removed
    /// node fires its watches as a removal does.
    fn remove_owned(&mut self, domid: u32, events: &mut Vec<Change>) {
        if self.tree.owned_by(domid) == 0 {
            return;
        }
        let mut doomed = Vec::new();
        let mut stack = vec![String::from("/")];
        while let Some(p) = stack.pop() {
            let Some(n) = self.tree.get(&p) else { continue };
            if p != "/" && n.perms.owner() == domid {
                doomed.push(p);
                continue;
            }
            for c in n.children.iter().rev() {
                stack.push(path::join(&p, c));
            }
        }
        for root in doomed {
            let mut view = View {
                main: &self.tree,
                tx: None,
                writes: Vec::new(),
            };
            let sub = node::subtree(&mut view, &root);
            for p in &sub {
                if let Some(n) = self.tree.remove_raw(p) {
                    events.push(Change {
                        path: p.clone(),
                        exact: *p != root,
                        perms: vec![n.perms],
                    });
                }
            }
            let parent = path::parent(&root).to_owned();
            if let Some(mut n) = self.tree.get(&parent).cloned() {
                let base = path::basename(&root);
                n.children.retain(|c| c != base);
                n.generation = self.generation;
                self.generation = next_generation(self.generation);
                self.tree.insert_raw(parent, n);
            }
        }
    }

    /// Fires events outside any request (host API).
    pub fn fire_now(&mut self, events: &[Change]) {
        self.fire(events);
    }

    /// Removes a connection and everything it owned.
    pub fn drop_conn(&mut self, cid: u64) {
        if let Some(c) = self.conns.remove(&cid) {
            c.out.close();
            if let Some(s) = &c.stream {
                // The reader and writer threads see the shutdown and exit;
                // a failure means the socket is already gone.
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn node_op(
        &mut self,
        cid: u64,
        who: Who,
        typ: MsgType,
        tx_id: u32,
        payload: &[u8],
        events: &mut Vec<Change>,
    ) -> Res<(MsgType, Vec<u8>)> {
        let cfg = self.cfg.clone();
        let (main, conns) = (&self.tree, &mut self.conns);
        let tx = match tx_id {
            0 => None,
            id => conns.get_mut(&cid).and_then(|c| c.txs.get_mut(&id)),
        };
        let mut view = View {
            main,
            tx,
            writes: Vec::new(),
        };
        let mut changes = Vec::new();
        let result = node_ops(&cfg, &mut view, who, typ, payload, &mut changes);
        let over_quota = !who.privileged && view.tx.is_some() && view.accessed() > cfg.max_tx_nodes;
        let View { tx, writes, .. } = view;
        let body = match result? {
            NodeResult::Special(name, perms) => {
                if name == path::INTRODUCE_DOMAIN {
                    self.introduce_perms = perms;
                } else {
                    self.release_perms = perms;
                }
                return Ok((typ, ok_payload()));
            }
            NodeResult::Body(b) => b,
        };
        if over_quota {
            if let Some(tx) = tx {
                tx.failed = true;
            }
            return Err(Errno::ENOSPC);
        }
        match tx {
            Some(tx) => {
                for (p, n) in writes {
                    let before = match tx.overlay.get(&p) {
                        Some(b) => b.clone(),
                        None => self.tree.get(&p).cloned(),
                    };
                    if let Some(b) = &before {
                        let d = tx.owned_delta.entry(b.perms.owner()).or_insert(0);
                        *d = d.saturating_sub(1);
                    }
                    if let Some(a) = &n {
                        let d = tx.owned_delta.entry(a.perms.owner()).or_insert(0);
                        *d = d.saturating_add(1);
                    }
                    tx.overlay.insert(p, n);
                }
                for c in changes {
                    match tx.changes.iter_mut().find(|x| x.path == c.path) {
                        Some(x) => {
                            x.exact &= c.exact;
                            x.perms.extend(c.perms);
                        }
                        None => tx.changes.push(c),
                    }
                }
            }
            None => {
                for (p, n) in writes {
                    match n {
                        Some(mut n) => {
                            n.generation = self.generation;
                            self.generation = next_generation(self.generation);
                            self.tree.insert_raw(p, n);
                        }
                        None => {
                            self.tree.remove_raw(&p);
                        }
                    }
                }
                events.extend(changes);
            }
        }
        Ok((typ, body))
    }
}

/// One event per request at `trace` level, like C xenstored's trace: the
/// domain, the operation with its payload, and the reply. Payloads show
/// their NULs as spaces, cut at 128 bytes.
fn trace_request(domid: u32, hdr: Header, payload: &[u8], reply: MsgType, body: &[u8]) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    let op = hdr
        .typ()
        .map_or_else(|| format!("type {}", hdr.msg_type), |t| format!("{t:?}"));
    tracing::trace!(
        domid,
        op = %op,
        req_id = hdr.req_id,
        tx_id = hdr.tx_id,
        request = %printable(payload),
        reply = ?reply,
        body = %printable(body),
        "xenstore request"
    );
}

fn printable(bytes: &[u8]) -> String {
    let cut = bytes.get(..128).unwrap_or(bytes);
    let mut s: String = String::from_utf8_lossy(cut)
        .trim_end_matches('\0')
        .replace('\0', " ");
    if cut.len() < bytes.len() {
        s.push_str("...");
    }
    s
}
