//! Watches: registering and removing them, the initial event C xenstored
//! fires on WATCH, and firing events for changed nodes.

use xenmq::xenstore::path;
use xenmq::xenstore::wire::{args, encode, Errno, MsgType};

use super::node::Want;
use super::{ok_payload, Change, Res, State, Who};

impl State {
    pub(super) fn initial_event(&mut self, cid: u64, payload: &[u8]) {
        let Some([p, token]) = args::first_n::<2>(payload) else {
            return;
        };
        let mut body = Vec::with_capacity(p.len().saturating_add(token.len()).saturating_add(2));
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

    pub(super) fn watch(&mut self, cid: u64, who: Who, payload: &[u8]) -> Res<Vec<u8>> {
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

    pub(super) fn watch_name(&self, who: Who, p: &[u8]) -> Res<(String, bool)> {
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

    pub(super) fn unwatch(&mut self, cid: u64, who: Who, payload: &[u8]) -> Res<Vec<u8>> {
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

    /// Queues the watch events for `changes` on every connection.
    pub(super) fn fire(&mut self, changes: &[Change]) {
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
                    let mut body = Vec::with_capacity(
                        name.len().saturating_add(w.token.len()).saturating_add(2),
                    );
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

pub(super) struct Watch {
    /// Canonical path, or an `@` name.
    pub(super) path: String,
    pub(super) token: Vec<u8>,
    pub(super) relative: bool,
}
