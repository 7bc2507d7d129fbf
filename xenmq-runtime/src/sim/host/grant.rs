//! The grant table: sharing pages (memfds handed over `SCM_RIGHTS`),
//! mapping them, unmapping and ending access.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;

use xenmq::grant::{DomId, GrantRef, DOMID_FIRST_RESERVED, PAGE_SIZE};
use xenmq_sys::sock::MAX_FDS;
use xenmq_sys::MemfdFlags;

use crate::sim::proto::{self, Code, Refusal, Writer};

use super::{internal, lock, Dom, Entry, Shared, State};

impl Shared {
    pub(super) fn share(
        &self,
        conn: u64,
        domid: DomId,
        peer: DomId,
        pages: u32,
        ro: bool,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        if pages == 0 || pages as usize > proto::MAX_PAGES {
            return Err(Refusal::new(Code::BadCount, pages, proto::MAX_PAGES as u32));
        }
        if peer >= DOMID_FIRST_RESERVED {
            return Err(Refusal::new(Code::NoDomain, peer.into(), 0));
        }
        {
            let st = lock(&self.state);
            let d = st
                .doms
                .get(&domid)
                .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
            if d.grants.len() + pages as usize > proto::MAX_GRANTS {
                return Err(Refusal::new(
                    Code::NoSpace,
                    d.grants.len() as u32,
                    proto::MAX_GRANTS as u32,
                ));
            }
            // Each share holds a descriptor in the host: bound them per
            // domain so one guest cannot exhaust the host's descriptors.
            let files = live_files(d);
            if files >= proto::MAX_SHARES {
                return Err(Refusal::new(
                    Code::NoSpace,
                    files as u32,
                    proto::MAX_SHARES as u32,
                ));
            }
        }
        let fd = xenmq_sys::memfd(
            c"xenmq-grant",
            pages as usize * PAGE_SIZE,
            MemfdFlags::CLOEXEC,
        )
        .map_err(internal)?;
        let file = Arc::new(File::from(fd));
        let mut st = lock(&self.state);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        if d.grants.len() + pages as usize > proto::MAX_GRANTS {
            return Err(Refusal::new(
                Code::NoSpace,
                d.grants.len() as u32,
                proto::MAX_GRANTS as u32,
            ));
        }
        let mut w = Writer::new(0).u32(pages);
        for page in 0..pages {
            // Bounded: fewer than MAX_GRANTS entries are in use.
            let mut gref = d.next_gref;
            while d.grants.contains_key(&gref) || gref < proto::FIRST_GREF {
                gref = gref.wrapping_add(1);
            }
            d.next_gref = gref.wrapping_add(1);
            d.grants.insert(
                gref,
                Entry {
                    grantee: peer,
                    readonly: ro,
                    file: Arc::clone(&file),
                    page,
                    maps: 0,
                    conn,
                },
            );
            w = w.u32(gref);
        }
        Ok((w, vec![file]))
    }

    pub(super) fn map(
        &self,
        conn: u64,
        domid: DomId,
        peer: DomId,
        refs: &[GrantRef],
        ro: bool,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let mut st = lock(&self.state);
        let State { doms, conns, .. } = &mut *st;
        let c = conns.get_mut(&conn).ok_or(Code::Internal)?;
        if c.maps.len() >= proto::MAX_MAPS {
            return Err(Refusal::new(
                Code::NoSpace,
                c.maps.len() as u32,
                proto::MAX_MAPS as u32,
            ));
        }
        if c.mapped + refs.len() > proto::MAX_MAPPED_PAGES {
            return Err(Refusal::new(
                Code::NoSpace,
                c.mapped as u32,
                proto::MAX_MAPPED_PAGES as u32,
            ));
        }
        let pd = doms
            .get_mut(&peer)
            .ok_or(Refusal::new(Code::NoDomain, peer.into(), 0))?;
        // Check every reference before touching any.
        let mut files: Vec<Arc<File>> = Vec::new();
        // (file index, first page, pages)
        let mut pieces: Vec<(u16, u32, u32)> = Vec::new();
        for &gref in refs {
            let e = pd
                .grants
                .get(&gref)
                .filter(|e| e.grantee == domid)
                .ok_or(Refusal::new(Code::BadRef, peer.into(), gref))?;
            if e.readonly && !ro {
                return Err(Refusal::new(Code::ReadOnly, peer.into(), gref));
            }
            let idx = match files.iter().position(|f| Arc::ptr_eq(f, &e.file)) {
                Some(i) => i,
                None => {
                    if files.len() >= MAX_FDS {
                        return Err(Refusal::new(
                            Code::BadCount,
                            refs.len() as u32,
                            MAX_FDS as u32,
                        ));
                    }
                    files.push(Arc::clone(&e.file));
                    files.len() - 1
                }
            } as u16;
            match pieces.last_mut() {
                Some((i, first, n)) if *i == idx && first.checked_add(*n) == Some(e.page) => {
                    *n += 1
                }
                _ => pieces.push((idx, e.page, 1)),
            }
        }
        for &gref in refs {
            if let Some(e) = pd.grants.get_mut(&gref) {
                e.maps = e.maps.saturating_add(1);
            }
        }
        let mut handle = c.next_handle;
        while c.maps.contains_key(&handle) || handle == 0 {
            handle = handle.wrapping_add(1);
        }
        c.next_handle = handle.wrapping_add(1);
        c.mapped += refs.len();
        c.maps
            .insert(handle, refs.iter().map(|&g| (peer, g)).collect());
        let mut w = Writer::new(0).u32(handle).u16(pieces.len() as u16);
        for (i, first, n) in pieces {
            w = w.u16(i).u32(first).u32(n);
        }
        Ok((w, files))
    }

    pub(super) fn unmap_refs(doms: &mut BTreeMap<DomId, Dom>, refs: &[(DomId, GrantRef)]) {
        for (peer, gref) in refs {
            // A revoked grant (its owner died) is simply gone.
            if let Some(e) = doms.get_mut(peer).and_then(|d| d.grants.get_mut(gref)) {
                e.maps = e.maps.saturating_sub(1);
            }
        }
    }

    pub(super) fn unmap(&self, conn: u64, handle: u32) -> Result<(), Refusal> {
        let mut st = lock(&self.state);
        let State { doms, conns, .. } = &mut *st;
        let c = conns.get_mut(&conn).ok_or(Code::Internal)?;
        let refs = c
            .maps
            .remove(&handle)
            .ok_or(Refusal::new(Code::BadRef, u32::MAX, handle))?;
        c.mapped = c.mapped.saturating_sub(refs.len());
        Shared::unmap_refs(doms, &refs);
        Ok(())
    }

    pub(super) fn end_access(
        &self,
        conn: u64,
        domid: DomId,
        refs: &[GrantRef],
    ) -> Result<(), Refusal> {
        let mut st = lock(&self.state);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        for &gref in refs {
            let e = d
                .grants
                .get(&gref)
                .filter(|e| e.conn == conn)
                .ok_or(Refusal::new(Code::BadRef, domid.into(), gref))?;
            if e.maps > 0 {
                return Err(Refusal::new(Code::StillMapped, domid.into(), gref));
            }
        }
        for gref in refs {
            d.grants.remove(gref);
        }
        Ok(())
    }
}

/// How many distinct memory files back a domain's live grants.
pub(super) fn live_files(d: &Dom) -> usize {
    let files: std::collections::BTreeSet<*const File> =
        d.grants.values().map(|e| Arc::as_ptr(&e.file)).collect();
    files.len()
}
