//! The node requests (READ, WRITE, MKDIR, RM, GET/SET_PERMS, DIRECTORY,
//! DIRECTORY_PART, ...) on a [`View`](super::txn::View): lookups with
//! permission checks, creation with parents, quotas.

use xenmq::xenstore::path;
use xenmq::xenstore::perms::Perms;
use xenmq::xenstore::wire::{args, Errno, MsgType, PAYLOAD_MAX};

use super::super::tree::Node;
use super::super::Limits;

use super::txn::View;
use super::{ok_payload, Change, Res, State, Who};

impl State {
    pub(super) fn canon_node(who: Who, p: &[u8]) -> Res<String> {
        let name = path::canonicalize(who.domid, p).ok_or(Errno::EINVAL)?;
        if path::is_valid(&name) {
            Ok(name)
        } else {
            Err(Errno::EINVAL)
        }
    }

    pub(super) fn lookup(view: &mut View<'_>, who: Who, name: &str, want: Want) -> Res<Node> {
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
}

/// What a request needs: read, write, or ownership.
#[derive(Clone, Copy)]
pub(super) enum Want {
    Read,
    Write,
    Own,
}

pub(super) enum NodeResult {
    Body(Vec<u8>),
    /// SET_PERMS on `@introduceDomain` / `@releaseDomain`.
    Special(String, Perms),
}

/// Creates `name` (and missing parents) with `value`. Parents get empty
/// values; every new node inherits its parent's permissions, owned by the
/// creator when the creator is unprivileged.
pub(super) fn create(
    cfg: &Limits,
    view: &mut View<'_>,
    who: Who,
    name: &str,
    value: &[u8],
) -> Res<()> {
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
        let new_nodes = i64::try_from(missing.len()).unwrap_or(i64::MAX);
        if owned.saturating_add(new_nodes) > i64::from(cfg.max_nodes) {
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

pub(super) fn check_size(cfg: &Limits, who: Who, n: &Node) -> Res<()> {
    if !who.privileged && n.charged_size() >= cfg.max_node_size {
        return Err(Errno::ENOSPC);
    }
    Ok(())
}

pub(super) fn change(name: &str, exact: bool, perms: Vec<Perms>) -> Change {
    Change {
        path: name.to_owned(),
        exact,
        perms,
    }
}

pub(super) fn node_ops(
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
            // The path, then at least one permission.
            let nperms = count
                .checked_sub(1)
                .filter(|&n| n >= 1)
                .ok_or(Errno::EINVAL)?;
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
                && view.owned_by(perms.owner()).saturating_add(1) > i64::from(cfg.max_nodes)
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
pub(super) fn subtree(view: &mut View<'_>, name: &str) -> Vec<String> {
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

/// The generation after `g`. A `u64` counting writes does not wrap in
/// practice (2^64 writes); if it ever did, wrapping keeps the server going.
pub(super) fn next_generation(g: u64) -> u64 {
    g.wrapping_add(1)
}

/// A DIRECTORY_PART reply: the node's generation and a NUL, then as many
/// whole child names from byte offset `off` of the child list as fit, then
/// an empty name if the list ends there.
pub(super) fn directory_part(node: &Node, off: usize) -> Vec<u8> {
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
        let name_len = rest
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(rest.len())
            .saturating_add(1);
        // The reply keeps one byte for the empty name that ends the list.
        if gen_len.saturating_add(len).saturating_add(name_len) >= PAYLOAD_MAX {
            break;
        }
        len = len.saturating_add(name_len);
    }
    out.extend_from_slice(tail.get(..len).unwrap_or(&[]));
    if len == tail.len() {
        out.push(0);
    }
    out
}
