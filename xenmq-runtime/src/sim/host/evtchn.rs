//! Event channels: unbound ports, interdomain binding, peer eventfds,
//! port status words and closing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use xenmq::evtchn::Port;
use xenmq::grant::{DomId, DOMID_FIRST_RESERVED, PAGE_SIZE};
use xenmq_sys::{EventfdFlags, MemfdFlags};

use crate::sim::proto::{self, Code, Refusal, Writer};

use super::{internal, lock, Dom, PortEnt, Shared, State};

impl Shared {
    pub(super) fn alloc_unbound(
        &self,
        conn: u64,
        domid: DomId,
        remote: DomId,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        if remote >= DOMID_FIRST_RESERVED {
            return Err(Refusal::new(Code::NoDomain, remote.into(), 0));
        }
        let evfd = Arc::new(File::from(
            xenmq_sys::eventfd(EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).map_err(internal)?,
        ));
        let status = Arc::new(File::from(
            xenmq_sys::memfd(c"xenmq-evtchn", PAGE_SIZE, MemfdFlags::CLOEXEC).map_err(internal)?,
        ));
        let mut st = lock(&self.state);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        let port = free_port(d)?;
        d.ports.insert(
            port,
            PortEnt {
                conn,
                remote,
                peer: None,
                closed: false,
                evfd: Arc::clone(&evfd),
                status: Arc::clone(&status),
            },
        );
        let w = Writer::new(0).u32(port).faults(&d.faults);
        Ok((w, vec![evfd, status]))
    }

    pub(super) fn bind(
        &self,
        conn: u64,
        domid: DomId,
        remote: DomId,
        rport: Port,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let evfd = Arc::new(File::from(
            xenmq_sys::eventfd(EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).map_err(internal)?,
        ));
        let mut st = lock(&self.state);
        let bad = Refusal::new(Code::BadPort, remote.into(), rport);
        let rd = st
            .doms
            .get(&remote)
            .ok_or(Refusal::new(Code::NoDomain, remote.into(), 0))?;
        let rp = rd
            .ports
            .get(&rport)
            .filter(|p| p.peer.is_none() && !p.closed && p.remote == domid)
            .ok_or(bad)?;
        let status = Arc::clone(&rp.status);
        let peer_evfd = Arc::clone(&rp.evfd);
        let d = st
            .doms
            .get_mut(&domid)
            .ok_or(Refusal::new(Code::NoDomain, domid.into(), 0))?;
        let port = free_port(d)?;
        d.ports.insert(
            port,
            PortEnt {
                conn,
                remote,
                peer: Some(rport),
                closed: false,
                evfd: Arc::clone(&evfd),
                status: Arc::clone(&status),
            },
        );
        let faults = d.faults;
        if let Some(rp) = st
            .doms
            .get_mut(&remote)
            .and_then(|d| d.ports.get_mut(&rport))
        {
            rp.peer = Some(port);
        }
        set_status(&status, proto::PORT_CONNECTED);
        let w = Writer::new(0).u32(port).faults(&faults);
        Ok((w, vec![evfd, status, peer_evfd]))
    }

    pub(super) fn own_port(
        st: &State,
        conn: u64,
        domid: DomId,
        port: Port,
    ) -> Result<&PortEnt, Refusal> {
        st.doms
            .get(&domid)
            .and_then(|d| d.ports.get(&port))
            .filter(|p| p.conn == conn)
            .ok_or(Refusal::new(Code::BadPort, domid.into(), port))
    }

    pub(super) fn peer_fd(
        &self,
        conn: u64,
        domid: DomId,
        port: Port,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let st = lock(&self.state);
        let p = Shared::own_port(&st, conn, domid, port)?;
        if p.closed {
            return Err(Code::PeerClosed.into());
        }
        let rport = p
            .peer
            .ok_or(Refusal::new(Code::BadPort, domid.into(), port))?;
        let rp = st
            .doms
            .get(&p.remote)
            .and_then(|d| d.ports.get(&rport))
            .ok_or(Refusal::from(Code::PeerClosed))?;
        Ok((Writer::new(0), vec![Arc::clone(&rp.evfd)]))
    }

    pub(super) fn port_status(
        &self,
        conn: u64,
        domid: DomId,
        port: Port,
    ) -> Result<(Writer, Vec<Arc<File>>), Refusal> {
        let st = lock(&self.state);
        let p = Shared::own_port(&st, conn, domid, port)?;
        let w = match (p.closed, p.peer) {
            (true, _) => Writer::new(0).u8(2).u16(p.remote).u32(0),
            (false, Some(rp)) => Writer::new(0).u8(1).u16(p.remote).u32(rp),
            (false, None) => Writer::new(0).u8(0).u16(p.remote).u32(0),
        };
        Ok((w, vec![]))
    }

    /// Removes a port and tells its peer (if any) that it is closed.
    pub(super) fn remove_port(doms: &mut BTreeMap<DomId, Dom>, domid: DomId, port: Port) {
        if let Some(p) = doms.get_mut(&domid).and_then(|d| d.ports.remove(&port)) {
            Shared::closed(doms, port, &p);
        }
    }

    /// Port `port` (entry `p`, already out of its table) is gone: mark the
    /// channel closed and wake the peer so it notices.
    pub(super) fn closed(doms: &mut BTreeMap<DomId, Dom>, port: Port, p: &PortEnt) {
        set_status(&p.status, proto::PORT_CLOSED);
        let Some(rport) = p.peer else { return };
        if let Some(rp) = doms
            .get_mut(&p.remote)
            .and_then(|d| d.ports.get_mut(&rport))
        {
            if rp.peer == Some(port) {
                rp.closed = true;
                kick(&rp.evfd);
            }
        }
    }

    pub(super) fn close_port(&self, conn: u64, domid: DomId, port: Port) -> Result<(), Refusal> {
        let mut st = lock(&self.state);
        Shared::own_port(&st, conn, domid, port)?;
        Shared::remove_port(&mut st.doms, domid, port);
        Ok(())
    }
}

pub(super) fn set_status(status: &File, value: u32) {
    // The word only ever holds values below 256, which a torn write
    // cannot mix up; see the domain's `Channel::state`.
    let _ = status.write_at(&value.to_le_bytes(), 0);
}

pub(super) fn kick(evfd: &File) {
    // A full counter (never in practice) still leaves the fd readable.
    let _ = (&*evfd).write(&1u64.to_le_bytes());
}

pub(super) fn free_port(d: &Dom) -> Result<Port, Refusal> {
    if d.ports.len() >= proto::MAX_PORTS {
        return Err(Refusal::new(
            Code::NoSpace,
            d.ports.len() as u32,
            proto::MAX_PORTS as u32,
        ));
    }
    // Port 0 is never valid, as on Xen; lowest free first.
    (1..=proto::MAX_PORTS as Port)
        .find(|p| !d.ports.contains_key(p))
        .ok_or(Code::NoSpace.into())
}
