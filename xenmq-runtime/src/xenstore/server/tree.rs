//! The node tree: values, permissions, ordered children, generations and
//! per-owner node counts. A transaction works on its own copy.

use std::collections::HashMap;

use xenmq::xenstore::perms::{Mode, Perms};

/// One node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Vec<u8>,
    pub perms: Perms,
    /// Child names in creation order, as C xenstored keeps them.
    pub children: Vec<String>,
    pub generation: u64,
}

impl Node {
    /// The bytes C xenstored 4.17 charges an unprivileged domain for this
    /// node (record header, permissions, value, NUL-terminated children).
    pub fn charged_size(&self) -> usize {
        let children = self
            .children
            .iter()
            .fold(0usize, |n, c| n.saturating_add(c.len()).saturating_add(1));
        self.perms
            .entries()
            .len()
            .saturating_mul(8)
            .saturating_add(24)
            .saturating_add(self.value.len())
            .saturating_add(children)
    }

    /// The children as DIRECTORY sends them: each name and a NUL.
    pub fn children_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        out
    }
}

/// The tree.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    nodes: HashMap<String, Node>,
    owned: HashMap<u32, u32>,
}

impl Tree {
    /// The tree C xenstored starts with: `/`, `/tool`, `/tool/xenstored`,
    /// all owned by dom0 with no access for others.
    pub fn new() -> Self {
        let mut t = Tree {
            nodes: HashMap::new(),
            owned: HashMap::new(),
        };
        for (p, kids) in [
            ("/", vec!["tool"]),
            ("/tool", vec!["xenstored"]),
            ("/tool/xenstored", vec![]),
        ] {
            t.insert_raw(
                p.to_owned(),
                Node {
                    value: Vec::new(),
                    perms: Perms::new(0, Mode::None),
                    children: kids.into_iter().map(str::to_owned).collect(),
                    generation: 0,
                },
            );
        }
        t
    }

    pub fn get(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    /// Nodes owned by `domid`.
    pub fn owned_by(&self, domid: u32) -> u32 {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    fn count(&mut self, owner: u32, up: bool) {
        let n = self.owned.entry(owner).or_insert(0);
        *n = if up {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
    }

    /// Inserts or replaces a node, keeping owner counts (not children).
    pub fn insert_raw(&mut self, p: String, node: Node) {
        let new_owner = node.perms.owner();
        if let Some(old) = self.nodes.insert(p, node) {
            self.count(old.perms.owner(), false);
        }
        self.count(new_owner, true);
    }

    /// Removes one node (not its children, not from its parent's list).
    pub fn remove_raw(&mut self, p: &str) -> Option<Node> {
        let old = self.nodes.remove(p)?;
        self.count(old.perms.owner(), false);
        Some(old)
    }

    /// Marks every permission entry naming `domid` (other than an owner's)
    /// ignored, without a new generation: C xenstored does so lazily each
    /// time it reads such a node once the domain is gone, which nothing
    /// can tell apart from doing it once now.
    pub fn ignore_domain(&mut self, domid: u32) {
        for n in self.nodes.values_mut() {
            n.perms.ignore(domid);
        }
    }
}
