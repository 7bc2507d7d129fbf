//! Transactions: a transaction's overlay and access log ([`Txn`]), the
//! tree as one request sees it ([`View`]), and starting and ending them
//! (with C xenstored's conflict rule: any node read or written changed
//! meanwhile fails the commit with `EAGAIN`).

use std::collections::HashMap;

use xenmq::xenstore::path;
use xenmq::xenstore::wire::{args, Errno};

use super::super::tree::{Node, Tree};

use super::node::next_generation;
use super::{ok_payload, Change, Res, State, Who};

impl State {
    pub(super) fn tx_start(&mut self, cid: u64, who: Who, tx_id: u32) -> Res<Vec<u8>> {
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

    pub(super) fn tx_end(
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
                    self.generation = next_generation(self.generation);
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
}

pub(super) struct Txn {
    /// Nodes written (`Some`) or removed (`None`) by the transaction.
    pub(super) overlay: HashMap<String, Option<Node>>,
    /// Every node the transaction looked at, with its generation then.
    pub(super) accessed: HashMap<String, Option<u64>>,
    pub(super) changes: Vec<Change>,
    pub(super) owned_delta: HashMap<u32, i64>,
    /// Hit the nodes-per-transaction quota: the commit fails (ENOMEM, as C).
    pub(super) failed: bool,
}

/// The tree as one request sees it: the store itself, or a transaction's
/// view of it.
pub(super) struct View<'a> {
    pub(super) main: &'a Tree,
    pub(super) tx: Option<&'a mut Txn>,
    pub(super) writes: Vec<(String, Option<Node>)>,
}

impl View<'_> {
    pub(super) fn get(&mut self, p: &str) -> Option<Node> {
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

    pub(super) fn put(&mut self, p: &str, n: Option<Node>) {
        // Record the access (and the generation seen) before writing.
        let _ = self.get(p);
        self.writes.push((p.to_owned(), n));
    }

    pub(super) fn owned_by(&self, domid: u32) -> i64 {
        let base = i64::from(self.main.owned_by(domid));
        let delta = self
            .tx
            .as_deref()
            .and_then(|t| t.owned_delta.get(&domid))
            .copied()
            .unwrap_or(0);
        base.saturating_add(delta)
    }

    pub(super) fn nearest_ancestor(&mut self, p: &str) -> Option<Node> {
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

    pub(super) fn accessed(&self) -> usize {
        self.tx.as_deref().map_or(0, |t| t.accessed.len())
    }
}
