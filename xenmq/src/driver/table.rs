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
    /// A power of two long (or empty).
    cells: Vec<Cell<V>>,
    /// Slots taken.
    len: usize,
    /// Where the next insert looks first: the slot after the last one
    /// given out. When answers come back in about the order of requests,
    /// the slot there is free, so an insert neither searches nor follows a
    /// free list (no chain of loads from one insert to the next).
    cursor: usize,
}

impl<V: Copy + Default> Table<V> {
    pub(crate) const fn new() -> Self {
        Table {
            cells: Vec::new(),
            len: 0,
            cursor: 0,
        }
    }

    /// Grows the table to at least `cap` slots, a power of two (never
    /// shrinks).
    pub(crate) fn reserve(&mut self, cap: u32) {
        let cap = (cap as usize).checked_next_power_of_two().unwrap_or(0);
        if cap > self.cells.len() {
            self.cells.resize(cap, Cell::default());
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(crate) fn insert(&mut self, v: V) -> Option<u64> {
        let n = self.cells.len();
        if self.len >= n {
            return None;
        }
        // A free slot exists (len < n); look from the cursor on, wrapping.
        // `n` is a power of two, so the mask keeps every index in bounds.
        let mask = n.wrapping_sub(1);
        let mut slot = self.cursor & mask;
        loop {
            let cell = self.cells.get_mut(slot)?;
            if cell.gen & 1 == 0 {
                // Even (free) to odd (taken); the whole cell in one store.
                let gen = cell.gen.wrapping_add(1);
                *cell = Cell { gen, val: v };
                self.len = self.len.wrapping_add(1);
                self.cursor = slot.wrapping_add(1);
                return Some((u64::from(gen) << 32) | slot as u64);
            }
            slot = slot.wrapping_add(1) & mask;
        }
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
        self.len = self.len.wrapping_sub(1);
        Some(cell.val)
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

    /// Inserts look from the slot after the last one given out and skip
    /// slots still taken (answers out of order, or never).
    #[test]
    fn the_cursor_skips_taken_slots() {
        let mut t = Table::new();
        t.reserve(3);
        // Rounded up to a power of two.
        let ids: Vec<u64> = (0..4).map(|v| t.insert(v).unwrap()).collect();
        assert_eq!(t.insert(9), None);
        assert_eq!(t.len(), 4);
        // Slot 1 and 3 come back; 0 and 2 stay taken.
        assert_eq!(t.remove(ids[3]), Some(3));
        assert_eq!(t.remove(ids[1]), Some(1));
        let a = t.insert(10).unwrap();
        let b = t.insert(11).unwrap();
        assert_eq!([a & 0xffff_ffff, b & 0xffff_ffff], [1, 3]);
        assert_eq!(t.insert(12), None);
        assert!(t.contains(ids[0]) && t.contains(ids[2]));
        assert!(!t.contains(ids[1]) && !t.contains(ids[3]));
    }

    /// Against a model: whatever the order of removals, every id names
    /// exactly its value until removed, the table holds as many as it says,
    /// and it refuses an insert only when full.
    #[test]
    fn matches_a_model_under_any_order() {
        use alloc::collections::BTreeMap;
        let mut t = Table::new();
        t.reserve(16);
        let mut model: BTreeMap<u64, u32> = BTreeMap::new();
        let mut gone: Vec<u64> = Vec::new();
        // A small deterministic generator (xorshift).
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..20_000u32 {
            let r = next();
            if r % 3 != 0 {
                match t.insert(step) {
                    Some(id) => {
                        assert!(model.insert(id, step).is_none(), "id {id:#x} given twice");
                    }
                    None => assert_eq!(model.len(), 16, "refused while not full"),
                }
            } else if !model.is_empty() {
                let k = (r >> 8) as usize % model.len();
                let id = *model.keys().nth(k).unwrap();
                assert_eq!(t.remove(id), model.remove(&id));
                gone.push(id);
            }
            assert_eq!(t.len(), model.len());
            if step % 1000 == 0 {
                for id in &gone {
                    if !model.contains_key(id) {
                        assert_eq!(t.remove(*id), None, "a removed id still names something");
                    }
                }
                gone.clear();
            }
        }
    }
}
