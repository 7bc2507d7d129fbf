//! Node permissions and their string form (`n0`, `r5`, `w7`, `b3`).
//!
//! The first entry names the owner (who may do anything) and the access of
//! every domain not listed; later entries give listed domains their access.

use alloc::vec::Vec;

/// What a domain may do with a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Mode {
    /// The letter on the wire.
    pub fn letter(self) -> char {
        match self {
            Mode::None => 'n',
            Mode::Read => 'r',
            Mode::Write => 'w',
            Mode::Both => 'b',
        }
    }

    /// Whether this allows reading.
    pub fn can_read(self) -> bool {
        matches!(self, Mode::Read | Mode::Both)
    }

    /// Whether this allows writing.
    pub fn can_write(self) -> bool {
        matches!(self, Mode::Write | Mode::Both)
    }
}

/// One entry: a domain and its access. The id is C's `unsigned int`: any
/// 32-bit value a peer sent, shown signed as C prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub id: u32,
    /// Its access.
    pub access: Mode,
}

/// A node's permission list; never empty.
///
/// Entries naming a domain that is gone can be marked ignored
/// ([`Perms::ignore`]): they are still listed but grant nothing, as C
/// xenstored's `XS_PERM_IGNORE` flag does, so that a new domain reusing the
/// id inherits no access.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Perms {
    entries: Vec<Perm>,
    /// Domains whose non-owner entries grant nothing.
    ignored: Vec<u32>,
}

/// What a connection may do with a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// May read.
    pub read: bool,
    /// May write.
    pub write: bool,
    /// Owns the node (may change its permissions).
    pub owner: bool,
}

impl Perms {
    /// Permissions owned by `owner`, with `others` for everyone else.
    pub fn new(owner: u32, others: Mode) -> Self {
        Perms {
            entries: alloc::vec![Perm {
                id: owner,
                access: others
            }],
            ignored: Vec::new(),
        }
    }

    /// Builds from entries; `None` if there are none.
    pub fn from_entries(entries: Vec<Perm>) -> Option<Self> {
        if entries.is_empty() {
            None
        } else {
            Some(Perms {
                entries,
                ignored: Vec::new(),
            })
        }
    }

    /// All entries, owner first.
    pub fn entries(&self) -> &[Perm] {
        &self.entries
    }

    /// The owner's domain id.
    pub fn owner(&self) -> u32 {
        self.entries.first().map_or(0, |p| p.id)
    }

    /// Marks the entries naming domain `id`, other than the owner's, as
    /// ignored: they stay in [`Perms::to_payload`] but grant nothing.
    pub fn ignore(&mut self, id: u32) {
        let named = self.entries.iter().skip(1).any(|p| p.id == id);
        if named && !self.ignored.contains(&id) {
            self.ignored.push(id);
        }
    }

    /// Whether the entries naming `id` are ignored.
    pub fn is_ignored(&self, id: u32) -> bool {
        self.ignored.contains(&id)
    }

    /// Replaces the owner (C xenstored gives what an unprivileged domain
    /// creates to that domain, keeping the inherited access list).
    pub fn set_owner(&mut self, id: u32) {
        if let Some(p) = self.entries.first_mut() {
            p.id = id;
        }
    }

    /// Parses strings such as `["n0", "r5"]` (C's `xs_strings_to_perms`:
    /// a letter, then a number in C `strtol` base-0 syntax, nothing else).
    pub fn parse<'a>(strings: impl IntoIterator<Item = &'a [u8]>) -> Option<Self> {
        let mut v = Vec::new();
        for s in strings {
            let (&letter, num) = s.split_first()?;
            let access = match letter {
                b'n' => Mode::None,
                b'r' => Mode::Read,
                b'w' => Mode::Write,
                b'b' => Mode::Both,
                _ => return None,
            };
            let (id, used) = super::wire::args::strtol(num);
            if num.is_empty() || used != num.len() {
                return None;
            }
            // C stores the long in an unsigned int: keep the low 32 bits.
            v.push(Perm {
                id: id as u32,
                access,
            });
        }
        Perms::from_entries(v)
    }

    /// The wire form: each entry and a NUL (`"n0\0r5\0"`).
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.entries {
            let s = alloc::format!("{}{}\0", p.access.letter(), p.id as i32);
            out.extend_from_slice(s.as_bytes());
        }
        out
    }

    /// The rights of an unprivileged domain `domid` (and of the domain it
    /// is the device model for, `target`): the owner may do anything; a
    /// listed domain gets its first entry that is not ignored; anyone else
    /// the first entry's access.
    pub fn rights_of(&self, domid: u32, target: Option<u32>) -> Rights {
        let is = |id: u32| id == domid || target == Some(id);
        let all = Rights {
            read: true,
            write: true,
            owner: true,
        };
        let Some((first, rest)) = self.entries.split_first() else {
            return all;
        };
        if is(first.id) {
            return all;
        }
        let access = rest
            .iter()
            .find(|p| is(p.id) && !self.ignored.contains(&p.id))
            .map_or(first.access, |p| p.access);
        Rights {
            read: access.can_read(),
            write: access.can_write(),
            owner: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Option<Perms> {
        Perms::parse(s.iter().map(|x| x.as_bytes()))
    }

    #[test]
    fn parse_and_print() {
        let perms = p(&["n0", "r5", "w0x10", "b010", "r-1"]).unwrap();
        assert_eq!(perms.to_payload(), b"n0\0r5\0w16\0b8\0r-1\0");
        assert_eq!(p(&["r 5"]).unwrap().to_payload(), b"r5\0");
        assert!(p(&["x0"]).is_none());
        assert!(p(&["r"]).is_none());
        assert!(p(&["r5x"]).is_none());
        assert!(p(&["R5"]).is_none());
        assert!(p(&[""]).is_none());
        assert!(p(&[]).is_none());
    }

    #[test]
    fn rights() {
        let perms = p(&["r1", "w2", "n3"]).unwrap();
        assert!(perms.rights_of(1, None).owner);
        let r2 = perms.rights_of(2, None);
        assert!(r2.write && !r2.read && !r2.owner);
        let r3 = perms.rights_of(3, None);
        assert!(!r3.write && !r3.read);
        let r4 = perms.rights_of(4, None);
        assert!(r4.read && !r4.write);
        assert!(perms.rights_of(4, Some(1)).owner);
        assert!(perms.rights_of(4, Some(2)).write);
    }

    #[test]
    fn ignored_entries_grant_nothing_but_stay_listed() {
        let mut perms = p(&["n1", "b2", "r3"]).unwrap();
        perms.ignore(2);
        perms.ignore(1);
        assert!(perms.is_ignored(2) && !perms.is_ignored(1));
        let r2 = perms.rights_of(2, None);
        assert!(!r2.read && !r2.write && !r2.owner);
        assert!(perms.rights_of(1, None).owner);
        assert!(perms.rights_of(3, None).read);
        assert_eq!(perms.to_payload(), b"n1\0b2\0r3\0");
    }
}
