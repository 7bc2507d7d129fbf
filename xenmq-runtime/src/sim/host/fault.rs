//! Faults on request: a domain's fault plan (its `kill_at` request
//! counter) and writes into granted pages as a hostile peer would.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use xenmq::grant::{DomId, GrantRef, PAGE_SIZE};

use crate::sim::fault::Faults;
use crate::sim::proto::{Code, Refusal};

use super::{internal, lock, Shared};

impl Shared {
    /// Counts a request; true if the domain's fault plan kills it now.
    pub(super) fn count_request(&self, domid: DomId) -> bool {
        let mut st = lock(&self.state);
        let Some(d) = st.doms.get_mut(&domid) else {
            return false;
        };
        d.requests = d.requests.saturating_add(1);
        domid != 0 && d.faults.kill_at == Some(d.requests)
    }

    pub(super) fn set_faults(&self, domid: DomId, faults: Faults) -> Result<(), Refusal> {
        let mut st = lock(&self.state);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        d.faults = faults;
        d.requests = 0;
        Ok(())
    }

    pub(super) fn poke(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u32,
        data: &[u8],
    ) -> Result<(), Refusal> {
        let end = (offset as usize)
            .checked_add(data.len())
            .filter(|&e| e <= PAGE_SIZE);
        if end.is_none() {
            return Err(Refusal::new(Code::BadCount, offset, PAGE_SIZE as u32));
        }
        let (file, page) = {
            let st = lock(&self.state);
            let e = st
                .doms
                .get(&domid)
                .and_then(|d| d.grants.get(&gref))
                .ok_or(Refusal::new(Code::BadRef, domid.into(), gref))?;
            (Arc::clone(&e.file), e.page)
        };
        let at = u64::from(page) * PAGE_SIZE as u64 + u64::from(offset);
        file.write_all_at(data, at).map_err(internal)
    }
}
