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
use super::tree::{Node, Tree};
use super::Limits;

type Res<T> = Result<T, Errno>;

struct Watch {
    /// Canonical path, or an `@` name.
    path: String,
    token: Vec<u8>,
    relative: bool,
}

/// A node change, remembered until its watch events are fired.
#[derive(Clone)]
pub(crate) struct Change {
    path: String,
    /// Only watches on exactly this path fire (a removed descendant).
    exact: bool,
    /// Permissions the node had (before and after), for watch checks.
    perms: Vec<Perms>,
}

struct Txn {
    /// Nodes written (`Some`) or removed (`None`) by the transaction.
    overlay: HashMap<String, Option<Node>>,
    /// Every node the transaction looked at, with its generation then.
    accessed: HashMap<String, Option<u64>>,
    changes: Vec<Change>,
    owned_delta: HashMap<u32, i64>,
    /// Hit the nodes-per-transaction quota: the commit fails (ENOMEM, as C).
    failed: bool,
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

/// What a request needs: read, write, or ownership.
#[derive(Clone, Copy)]
enum Want {
    Read,
    Write,
    Own,
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

/// The tree as one request sees it: the store itself, or a transaction's
/// view of it.
struct View<'a> {
    main: &'a Tree,
    tx: Option<&'a mut Txn>,
    writes: Vec<(String, Option<Node>)>,
}

impl View<'_> {
    fn get(&mut self, p: &str) -> Option<Node> {
        if let Some((_, n)) = self.writes.iter().rev().find(|(q, _)| q == p) {
            return n.clone();
        }
        match self.tx.as_deref_mut() {
            None => self.main.get(p).cloned(),
            Some(tx) => {
                if let Some(n) = tx.overlay.get(p) {
                    return n.clone();
                }
                let n = self.main.get(p).cloned();
                tx.accessed
                    .entry(p.to_owned())
                    .or_insert_with(|| n.as_ref().map(|n| n.generation));
                n
            }
        }
    }

    fn put(&mut self, p: &str, n: Option<Node>) {
        // Record the access (and the generation seen) before writing.
        let _ = self.get(p);
        self.writes.push((p.to_owned(), n));
    }

    fn owned_by(&self, domid: u32) -> i64 {
        let base = i64::from(self.main.owned_by(domid));
        let delta = self
            .tx
            .as_deref()
            .and_then(|t| t.owned_delta.get(&domid))
            .copied()
            .unwrap_or(0);
        base + delta
    }

    fn nearest_ancestor(&mut self, p: &str) -> Option<Node> {
        let mut cur = p;
        loop {
            if let Some(n) = self.get(cur) {
                return Some(n);
            }
            if cur == "/" {
                return None;
            }
            cur = path::parent(cur);
        }
    }

    fn accessed(&self) -> usize {
        self.tx.as_deref().map_or(0, |t| t.accessed.len())
    }
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

    fn initial_event(&mut self, cid: u64, payload: &[u8]) {
        let Some([p, token]) = args::first_n::<2>(payload) else {
            return;
        };
        let mut body = Vec::with_capacity(p.len() + token.len() + 2);
        body.extend_from_slice(p);
        body.push(0);
        body.extend_from_slice(token);
        body.push(0);
        if let (Some(conn), Some(msg)) = (
            self.conns.get(&cid),
            encode(MsgType::WatchEvent, 0, 0, &body),
        ) {
            conn.out.event(msg, false);
        }
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

    /// Forgets a domain: closes its connections, fires `@releaseDomain`.
    pub fn release_domain(&mut self, domid: u32, events: &mut Vec<Change>) {
        if domid != 0 {
            self.domains.remove(&domid);
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
        events.push(Change {
            path: path::RELEASE_DOMAIN.to_owned(),
            exact: true,
            perms: vec![self.release_perms.clone()],
        });
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

    fn canon_node(who: Who, p: &[u8]) -> Res<String> {
        let name = path::canonicalize(who.domid, p).ok_or(Errno::EINVAL)?;
        if path::is_valid(&name) {
            Ok(name)
        } else {
            Err(Errno::EINVAL)
        }
    }

    fn lookup(view: &mut View<'_>, who: Who, name: &str, want: Want) -> Res<Node> {
        match view.get(name) {
            Some(n) if who.allowed(&n.perms, want) => Ok(n),
            Some(_) => Err(Errno::EACCES),
            None => {
                let want = if matches!(want, Want::Own) {
                    Want::Write
                } else {
                    want
                };
                match view.nearest_ancestor(name) {
                    Some(a) if !who.allowed(&a.perms, want) => Err(Errno::EACCES),
                    _ => Err(Errno::ENOENT),
                }
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
                        *tx.owned_delta.entry(b.perms.owner()).or_insert(0) -= 1;
                    }
                    if let Some(a) = &n {
                        *tx.owned_delta.entry(a.perms.owner()).or_insert(0) += 1;
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
                            self.generation += 1;
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

    fn watch(&mut self, cid: u64, who: Who, payload: &[u8]) -> Res<Vec<u8>> {
        if args::count(payload) != 2 {
            return Err(Errno::EINVAL);
        }
        let [p, token] = args::first_n::<2>(payload).ok_or(Errno::EINVAL)?;
        let (name, relative) = self.watch_name(who, p)?;
        let count: usize = self
            .conns
            .values()
            .filter(|c| c.domid == who.domid)
            .map(|c| c.watches.len())
            .sum();
        let conn = self.conns.get_mut(&cid).ok_or(Errno::EINVAL)?;
        if conn
            .watches
            .iter()
            .any(|w| w.path == name && w.token == token)
        {
            return Err(Errno::EEXIST);
        }
        if !who.privileged && count > self.cfg.max_watches {
            return Err(Errno::E2BIG);
        }
        conn.watches.push(Watch {
            path: name,
            token: token.to_vec(),
            relative,
        });
        Ok(ok_payload())
    }

    fn watch_name(&self, who: Who, p: &[u8]) -> Res<(String, bool)> {
        if p.first() == Some(&b'@') {
            if p.len() > xenmq::xenstore::wire::REL_PATH_MAX {
                return Err(Errno::EINVAL);
            }
            let s = String::from_utf8_lossy(p).into_owned();
            return Ok((s, false));
        }
        let relative = p.first() != Some(&b'/');
        Ok((Self::canon_node(who, p)?, relative))
    }

    fn unwatch(&mut self, cid: u64, who: Who, payload: &[u8]) -> Res<Vec<u8>> {
        if args::count(payload) != 2 {
            return Err(Errno::EINVAL);
        }
        let [p, token] = args::first_n::<2>(payload).ok_or(Errno::EINVAL)?;
        let (name, _) = self.watch_name(who, p)?;
        let conn = self.conns.get_mut(&cid).ok_or(Errno::EINVAL)?;
        let i = conn
            .watches
            .iter()
            .position(|w| w.path == name && w.token == token)
            .ok_or(Errno::ENOENT)?;
        conn.watches.remove(i);
        Ok(ok_payload())
    }

    fn tx_start(&mut self, cid: u64, who: Who, tx_id: u32) -> Res<Vec<u8>> {
        if tx_id != 0 {
            return Err(Errno::EBUSY);
        }
        let max = self.cfg.max_transactions;
        let conn = self.conns.get_mut(&cid).ok_or(Errno::EINVAL)?;
        if !who.privileged && conn.txs.len() > max {
            return Err(Errno::ENOSPC);
        }
        let mut id = conn.next_tx;
        loop {
            id = id.wrapping_add(1);
            if id != 0 && !conn.txs.contains_key(&id) {
                break;
            }
        }
        conn.next_tx = id;
        conn.txs.insert(
            id,
            Txn {
                overlay: HashMap::new(),
                accessed: HashMap::new(),
                changes: Vec::new(),
                owned_delta: HashMap::new(),
                failed: false,
            },
        );
        Ok(format!("{id}\0").into_bytes())
    }

    fn tx_end(
        &mut self,
        cid: u64,
        _who: Who,
        tx_id: u32,
        payload: &[u8],
        events: &mut Vec<Change>,
    ) -> Res<Vec<u8>> {
        let commit = match args::one(payload) {
            Some(b"T") => true,
            Some(b"F") => false,
            _ => return Err(Errno::EINVAL),
        };
        if tx_id == 0 {
            return Err(Errno::ENOENT);
        }
        let conn = self.conns.get_mut(&cid).ok_or(Errno::EINVAL)?;
        let tx = conn.txs.remove(&tx_id).ok_or(Errno::ENOENT)?;
        if !commit {
            return Ok(ok_payload());
        }
        if tx.failed {
            return Err(Errno::ENOMEM);
        }
        let conflict = tx
            .accessed
            .iter()
            .any(|(p, g)| self.tree.get(p).map(|n| n.generation) != *g);
        if conflict {
            return Err(Errno::EAGAIN);
        }
        // A node the transaction created and removed again never existed
        // for anyone else: C fires no event for it.
        let transient = |p: &str| {
            matches!(tx.accessed.get(p), Some(None)) && matches!(tx.overlay.get(p), Some(None))
        };
        let changes: Vec<Change> = tx
            .changes
            .iter()
            .filter(|c| !transient(&c.path))
            .cloned()
            .collect();
        let mut overlay: Vec<(String, Option<Node>)> = tx.overlay.into_iter().collect();
        overlay.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, n) in overlay {
            match n {
                Some(mut n) => {
                    n.generation = self.generation;
                    self.generation += 1;
                    self.tree.insert_raw(p, n);
                }
                None => {
                    self.tree.remove_raw(&p);
                }
            }
        }
        events.extend(changes);
        Ok(ok_payload())
    }

    /// Queues the watch events for `changes` on every connection.
    fn fire(&mut self, changes: &[Change]) {
        for ch in changes {
            let special = ch.path.starts_with('@');
            let parent_perms = if special {
                None
            } else {
                self.tree
                    .get(path::parent(&ch.path))
                    .map(|n| n.perms.clone())
            };
            let targets = &self.targets;
            for conn in self.conns.values() {
                let who = Who {
                    domid: conn.domid,
                    privileged: conn.domid == 0,
                    target: targets.get(&conn.domid).copied(),
                };
                let permitted = who.privileged
                    || ch.perms.iter().any(|p| who.allowed(p, Want::Read))
                    || parent_perms
                        .as_ref()
                        .is_some_and(|p| who.allowed(p, Want::Read));
                if !permitted {
                    continue;
                }
                for w in &conn.watches {
                    let hit = if special || w.path.starts_with('@') {
                        special && w.path == ch.path
                    } else if ch.exact {
                        w.path == ch.path
                    } else {
                        path::is_at_or_below(&ch.path, &w.path)
                    };
                    if !hit {
                        continue;
                    }
                    let name = if w.relative {
                        path::relative_to_home(&ch.path, conn.domid)
                    } else {
                        ch.path.as_str()
                    };
                    let mut body = Vec::with_capacity(name.len() + w.token.len() + 2);
                    body.extend_from_slice(name.as_bytes());
                    body.push(0);
                    body.extend_from_slice(&w.token);
                    body.push(0);
                    // Events over the payload limit are dropped, as in C.
                    if let Some(msg) = encode(MsgType::WatchEvent, 0, 0, &body) {
                        conn.out.event(msg, !who.privileged && !special);
                    }
                }
            }
        }
    }
}

enum NodeResult {
    Body(Vec<u8>),
    /// SET_PERMS on `@introduceDomain` / `@releaseDomain`.
    Special(String, Perms),
}

/// Creates `name` (and missing parents) with `value`. Parents get empty
/// values; every new node inherits its parent's permissions, owned by the
/// creator when the creator is unprivileged.
fn create(cfg: &Limits, view: &mut View<'_>, who: Who, name: &str, value: &[u8]) -> Res<()> {
    let mut missing = vec![name.to_owned()];
    let mut cur = path::parent(name).to_owned();
    let mut parent = loop {
        if let Some(n) = view.get(&cur) {
            break n;
        }
        missing.push(cur.clone());
        if cur == "/" {
            return Err(Errno::ENOENT);
        }
        cur = path::parent(&cur).to_owned();
    };
    let mut parent_path = cur;
    if !who.privileged {
        let owned = view.owned_by(who.domid);
        if owned + missing.len() as i64 > i64::from(cfg.max_nodes) {
            return Err(Errno::ENOSPC);
        }
    }
    for p in missing.into_iter().rev() {
        let mut perms = parent.perms.clone();
        if !who.privileged {
            perms.set_owner(who.domid);
        }
        parent.children.push(path::basename(&p).to_owned());
        check_size(cfg, who, &parent)?;
        let node = Node {
            value: if p == name {
                value.to_vec()
            } else {
                Vec::new()
            },
            perms,
            children: Vec::new(),
            generation: 0,
        };
        check_size(cfg, who, &node)?;
        view.put(&parent_path, Some(parent));
        parent = node;
        parent_path = p;
    }
    view.put(&parent_path, Some(parent));
    Ok(())
}

fn check_size(cfg: &Limits, who: Who, n: &Node) -> Res<()> {
    if !who.privileged && n.charged_size() >= cfg.max_node_size {
        return Err(Errno::ENOSPC);
    }
    Ok(())
}

fn change(name: &str, exact: bool, perms: Vec<Perms>) -> Change {
    Change {
        path: name.to_owned(),
        exact,
        perms,
    }
}

fn node_ops(
    cfg: &Limits,
    view: &mut View<'_>,
    who: Who,
    typ: MsgType,
    payload: &[u8],
    changes: &mut Vec<Change>,
) -> Res<NodeResult> {
    use MsgType::*;
    use NodeResult::Body;
    match typ {
        Read => {
            // C xenstored answers a malformed READ with whatever errno an
            // earlier operation left behind; we answer EINVAL.
            let p = args::one(payload).ok_or(Errno::EINVAL)?;
            let name = State::canon_node(who, p)?;
            Ok(Body(State::lookup(view, who, &name, Want::Read)?.value))
        }
        Directory => {
            let p = args::one(payload).ok_or(Errno::EINVAL)?;
            let name = State::canon_node(who, p)?;
            Ok(Body(
                State::lookup(view, who, &name, Want::Read)?.children_bytes(),
            ))
        }
        DirectoryPart => {
            let [p, off] = args::first_n::<2>(payload).ok_or(Errno::EINVAL)?;
            let name = State::canon_node(who, p)?;
            let node = State::lookup(view, who, &name, Want::Read)?;
            let off = args::atoi_u32(off) as usize;
            Ok(Body(directory_part(&node, off)))
        }
        GetPerms => {
            let p = args::one(payload).ok_or(Errno::EINVAL)?;
            let name = State::canon_node(who, p)?;
            Ok(Body(
                State::lookup(view, who, &name, Want::Read)?
                    .perms
                    .to_payload(),
            ))
        }
        Write => {
            let (p, value) = args::split_first(payload).ok_or(Errno::EINVAL)?;
            let name = State::canon_node(who, p)?;
            match State::lookup(view, who, &name, Want::Write) {
                Ok(mut node) => {
                    node.value = value.to_vec();
                    check_size(cfg, who, &node)?;
                    let perms = node.perms.clone();
                    view.put(&name, Some(node));
                    changes.push(change(&name, false, vec![perms]));
                }
                Err(Errno::ENOENT) => {
                    create(cfg, view, who, &name, value)?;
                    let perms = view.get(&name).map(|n| n.perms).into_iter().collect();
                    changes.push(change(&name, false, perms));
                }
                Err(e) => return Err(e),
            }
            Ok(Body(ok_payload()))
        }
        Mkdir => {
            let p = args::one(payload).ok_or(Errno::EINVAL)?;
            let name = State::canon_node(who, p)?;
            match State::lookup(view, who, &name, Want::Write) {
                Ok(_) => {}
                Err(Errno::ENOENT) => {
                    create(cfg, view, who, &name, b"")?;
                    let perms = view.get(&name).map(|n| n.perms).into_iter().collect();
                    changes.push(change(&name, false, perms));
                }
                Err(e) => return Err(e),
            }
            Ok(Body(ok_payload()))
        }
        Rm => {
            let p = args::one(payload).ok_or(Errno::EINVAL)?;
            let name = State::canon_node(who, p)?;
            match State::lookup(view, who, &name, Want::Write) {
                Ok(_) => {}
                Err(Errno::ENOENT) => {
                    // Removing what is not there is fine if the parent is.
                    return if view.get(path::parent(&name)).is_some() {
                        Ok(Body(ok_payload()))
                    } else {
                        Err(Errno::ENOENT)
                    };
                }
                Err(e) => return Err(e),
            }
            if name == "/" {
                return Err(Errno::EINVAL);
            }
            let doomed = subtree(view, &name);
            for p in &doomed {
                let perms = view.get(p).map(|n| n.perms).into_iter().collect();
                changes.push(change(p, p != &name, perms));
                view.put(p, None);
            }
            let parent_name = path::parent(&name).to_owned();
            if let Some(mut parent) = view.get(&parent_name) {
                let base = path::basename(&name);
                parent.children.retain(|c| c != base);
                view.put(&parent_name, Some(parent));
            }
            Ok(Body(ok_payload()))
        }
        SetPerms => {
            let count = payload.iter().filter(|&&b| b == 0).count();
            if count < 2 {
                return Err(Errno::EINVAL);
            }
            let nperms = count - 1;
            if !who.privileged && nperms > cfg.max_perms {
                return Err(Errno::ENOSPC);
            }
            let (p, rest) = args::split_first(payload).ok_or(Errno::EINVAL)?;
            let perms = Perms::parse(args::strings(rest).take(nperms)).ok_or(Errno::EINVAL)?;
            if p.first() == Some(&b'@') {
                let name = String::from_utf8_lossy(p).into_owned();
                if !who.privileged {
                    return Err(Errno::EACCES);
                }
                if name != path::INTRODUCE_DOMAIN && name != path::RELEASE_DOMAIN {
                    return Err(Errno::ENOENT);
                }
                return Ok(NodeResult::Special(name, perms));
            }
            let name = State::canon_node(who, p)?;
            let mut node = State::lookup(view, who, &name, Want::Own)?;
            if !who.privileged && perms.owner() != node.perms.owner() {
                return Err(Errno::EPERM);
            }
            let old = std::mem::replace(&mut node.perms, perms.clone());
            if !who.privileged
                && perms.owner() != old.owner()
                && view.owned_by(perms.owner()) + 1 > i64::from(cfg.max_nodes)
            {
                return Err(Errno::ENOSPC);
            }
            check_size(cfg, who, &node)?;
            view.put(&name, Some(node));
            changes.push(change(&name, false, vec![old, perms]));
            Ok(Body(ok_payload()))
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// The subtree at `name`, children first (post-order), `name` last.
fn subtree(view: &mut View<'_>, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(name.to_owned(), false)];
    while let Some((cur, expanded)) = stack.pop() {
        if expanded {
            out.push(cur);
            continue;
        }
        let kids: Vec<String> = view
            .get(&cur)
            .map(|n| n.children.iter().map(|c| path::join(&cur, c)).collect())
            .unwrap_or_default();
        stack.push((cur, true));
        for k in kids.into_iter().rev() {
            stack.push((k, false));
        }
    }
    out
}

/// A DIRECTORY_PART reply: the node's generation and a NUL, then as many
/// whole child names from byte offset `off` of the child list as fit, then
/// an empty name if the list ends there.
fn directory_part(node: &Node, off: usize) -> Vec<u8> {
    let children = node.children_bytes();
    let mut out = format!("{}\0", node.generation).into_bytes();
    let gen_len = out.len();
    let Some(tail) = children.get(off..).filter(|t| !t.is_empty()) else {
        out.push(0);
        return out;
    };
    let mut len = 0usize;
    while len < tail.len() {
        let rest = tail.get(len..).unwrap_or(&[]);
        let name_len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len()) + 1;
        if gen_len + len + name_len > PAYLOAD_MAX - 1 {
            break;
        }
        len += name_len;
    }
    out.extend_from_slice(tail.get(..len).unwrap_or(&[]));
    if len == tail.len() {
        out.push(0);
    }
    out
}
