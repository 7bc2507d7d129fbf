//! A fixed-capacity table of things in flight, named by generation-tagged
//! ids: `generation << 32 | slot`. An id is valid from its insert to its
//! removal; every removal bumps the slot's generation, so a stale or forged
//! id (a response answered twice, a ticket used twice) finds nothing.
//!
//! Memory is allocated only by [`Table::reserve`] (at connect); insert and
//! remove never allocate.

use alloc::vec::Vec;

/// One slot: its generation (odd while it holds a value, even while free)
/// and the value last put in it.
#[derive(Debug, Clone, Copy, Default)]
struct Cell<V> {
    gen: u32,
    val: V,
}

#[derive(Debug)]
pub(crate) struct Table<V> {
    cells: Vec<Cell<V>>,
    /// The free slots are `free[..top]`; the array has room for every slot.
    free: Vec<u32>,
    top: usize,
}

impl<V: Copy + Default> Table<V> {
    pub(crate) const fn new() -> Self {
        Table {
            cells: Vec::new(),
            free: Vec::new(),
            top: 0,
        }
    }

    /// Grows the table to `cap` slots (never shrinks).
    pub(crate) fn reserve(&mut self, cap: u32) {
        let old = self.cells.len();
        let cap = cap as usize;
        if cap <= old {
            return;
        }
        self.cells.resize(cap, Cell::default());
        // The free array keeps every slot's room; the new slots are free.
        self.free.truncate(self.top);
        self.free.extend((old..cap).rev().map(|s| s as u32));
        self.top = self.free.len();
        self.free.resize(cap, 0);
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.cells.len().saturating_sub(self.top)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub(crate) fn insert(&mut self, v: V) -> Option<u64> {
        let top = self.top.checked_sub(1)?;
        let slot = *self.free.get(top)?;
        let cell = self.cells.get_mut(slot as usize)?;
        self.top = top;
        // Even (free) to odd (taken).
        cell.gen = cell.gen.wrapping_add(1);
        cell.val = v;
        Some((u64::from(cell.gen) << 32) | u64::from(slot))
    }

    #[inline(always)]
    fn split(id: u64) -> (u32, usize) {
        ((id >> 32) as u32, (id & 0xffff_ffff) as usize)
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        let (gen, slot) = Self::split(id);
        gen & 1 == 1 && self.cells.get(slot).is_some_and(|c| c.gen == gen)
    }

    #[inline]
    pub(crate) fn remove(&mut self, id: u64) -> Option<V> {
        let (gen, slot) = Self::split(id);
        let cell = self.cells.get_mut(slot)?;
        // Only the generation the slot holds now names it, and only while
        // it is odd (taken): an even one would name a free slot.
        if cell.gen != gen || gen & 1 == 0 {
            return None;
        }
        cell.gen = gen.wrapping_add(1);
        let v = cell.val;
        // A taken slot is not in `free[..top]`, and `free` has room for
        // every slot, so `top` is in bounds.
        *self.free.get_mut(self.top)? = slot as u32;
        self.top = self.top.wrapping_add(1);
        Some(v)
    }

    /// Removes every entry, lowest slot first, handing each to `f`.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(u64, V)) {
        for slot in 0..self.cells.len() {
            let gen = self.cells.get(slot).map_or(0, |c| c.gen);
            let id = (u64::from(gen) << 32) | slot as u64;
            if let Some(v) = self.remove(id) {
                f(id, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Table;
    use alloc::vec::Vec;

    #[test]
    fn ids_are_single_use_and_slots_reused() {
        let mut t = Table::new();
        t.reserve(2);
        let a = t.insert('a').unwrap();
        let b = t.insert('b').unwrap();
        assert_eq!(t.insert('c'), None);
        assert_eq!(t.remove(a), Some('a'));
        assert_eq!(t.remove(a), None, "removed twice");
        // The free slot's own (even) generation names nothing either.
        assert_eq!(t.remove(a + (1 << 32)), None, "a free slot");
        assert!(!t.contains(a + (1 << 32)));
        let c = t.insert('c').unwrap();
        assert_ne!(a, c, "a reused slot gets a new generation");
        assert_eq!(a & 0xffff_ffff, c & 0xffff_ffff);
        assert_eq!(t.remove(0xdead_0000_0001), None);
        assert_eq!(t.remove(u64::MAX), None);
        let mut seen = Vec::new();
        t.drain(|id, v| seen.push((id, v)));
        assert_eq!(seen, [(c, 'c'), (b, 'b')]);
        assert!(t.is_empty());
        t.reserve(4);
        for _ in 0..4 {
            assert!(t.insert('x').unwrap() & 0xffff_ffff < 4);
        }
        assert_eq!(t.insert('y'), None);
    }
}
