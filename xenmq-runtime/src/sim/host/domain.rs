//! Domains' lifecycle: creation (sockets, the Xenstore tree libxl
//! writes), listing, destruction and killing.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;

use xenmq::grant::{DomId, DOMID_FIRST_RESERVED};
use xenmq::xenstore::perms::{Mode, Perm, Perms};
use xenmq::xenstore::{self, Store, Tx};
use xenmq_sys::process::{kill9, own_pid};

use crate::sim::proto::{self, Code, Refusal};

use super::dispatch::{store_acceptor, Acceptor};
use super::evtchn::{kick, set_status};
use super::{internal, lock, Dom, DomainInfo, Shared};

impl Shared {
    pub(super) fn domain_dir(&self, domid: DomId) -> PathBuf {
        self.dir.join("domain").join(domid.to_string())
    }

    pub(super) fn create_named(self: &Arc<Self>, name: &str) -> Result<DomId, Refusal> {
        let valid = !name.is_empty()
            && name.len() <= proto::MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(Refusal::new(
                Code::Malformed,
                name.len() as u32,
                proto::MAX_NAME as u32,
            ));
        }
        let referenced = std::cell::OnceCell::new();
        let domid = {
            let mut st = lock(&self.state);
            if st.stopping {
                return Err(Code::Internal.into());
            }
            if st.doms.len() >= proto::MAX_DOMAINS {
                return Err(Refusal::new(
                    Code::NoSpace,
                    st.doms.len() as u32,
                    proto::MAX_DOMAINS as u32,
                ));
            }
            // From the id after the last one given, wrapping around once:
            // an id is free when no domain has it and no backend still
            // serves a device of it.
            let start = st.next_domid.clamp(1, DOMID_FIRST_RESERVED - 1);
            let wrapped = st.wrapped;
            let domid = (start..DOMID_FIRST_RESERVED)
                .chain(1..start)
                .find(|&d| {
                    let given_before = wrapped || d < start;
                    let taken = st.doms.contains_key(&d) || st.dying.contains(&d);
                    // An id given before may still have devices.
                    let left_behind = given_before && self.has_backends(d, &referenced);
                    !(taken || left_behind)
                })
                .ok_or(Code::NoSpace)?;
            st.wrapped |= domid < start;
            st.next_domid = domid.saturating_add(1);
            st.doms.insert(domid, Dom::new(name.to_owned()));
            domid
        };
        match self.setup_domain(domid, name) {
            Ok(acceptors) => {
                tracing::info!(domid, name, "domain created");
                let mut st = lock(&self.state);
                match st.doms.get_mut(&domid) {
                    Some(d) => d.acceptors = acceptors,
                    None => {
                        drop(st);
                        drop(acceptors);
                    }
                }
                Ok(domid)
            }
            Err(e) => {
                let _ = self.destroy(domid, false);
                Err(e)
            }
        }
    }

    /// Whether `domid` is a frontend some backend directory names
    /// (`/local/domain/*/backend/*/<domid>`): the devices of a destroyed
    /// domain that no toolstack has detached yet. Looked up once per
    /// creation, and only for an id given before (after the ids wrapped
    /// around), so with the host's lock held only on that rare path; the
    /// Xenstore server never waits for the host.
    fn has_backends(
        &self,
        domid: DomId,
        referenced: &std::cell::OnceCell<std::collections::BTreeSet<DomId>>,
    ) -> bool {
        let Some(xs) = &self.xs else { return false };
        referenced
            .get_or_init(|| frontends_with_backends(xs))
            .contains(&domid)
    }

    pub(super) fn setup_domain(
        self: &Arc<Self>,
        domid: DomId,
        name: &str,
    ) -> Result<Vec<Acceptor>, Refusal> {
        let dir = self.domain_dir(domid);
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let mut acceptors = Vec::new();
        let me = Arc::clone(self);
        acceptors.push(
            Acceptor::spawn(dir.join("control"), move |stream| {
                Shared::accept_control(&me, stream, domid)
            })
            .map_err(|_| Refusal::from(Code::Internal))?,
        );
        if let Some(store) = &self.store {
            acceptors.push(
                store_acceptor(dir.join("socket"), Arc::clone(store), domid)
                    .map_err(|_| Refusal::from(Code::Internal))?,
            );
            store.introduce(domid);
            self.write_tree(domid, name).map_err(internal)?;
        }
        Ok(acceptors)
    }

    /// The tree libxl writes for a new domain: the domain directory owned
    /// by dom0 and readable by the domain, and the nodes the domain writes
    /// (`device`, `data`, `control/shutdown`, ...) owned by the domain.
    ///
    /// Written in one transaction, as libxl does, so a watcher never sees
    /// half a domain.
    pub(super) fn write_tree(&self, domid: DomId, name: &str) -> io::Result<()> {
        let Some(xs) = &self.xs else { return Ok(()) };
        let id = u32::from(domid);
        let base = format!("/local/domain/{domid}");
        let ro = Perms::from_entries(vec![
            Perm {
                id: 0,
                access: Mode::None,
            },
            Perm {
                id,
                access: Mode::Read,
            },
        ])
        .ok_or_else(|| io::Error::other("empty permission list"))?;
        let rw = Perms::new(id, Mode::None);
        xenstore::transaction(xs, |tx| {
            xs.mkdir(tx, &base)?;
            xs.set_perms(tx, &base, &ro)?;
            xs.write(tx, &format!("{base}/name"), name.as_bytes())?;
            xs.write(tx, &format!("{base}/domid"), domid.to_string().as_bytes())?;
            xs.mkdir(tx, &format!("{base}/control"))?;
            xs.set_perms(tx, &format!("{base}/control"), &ro)?;
            for node in [
                "device",
                "data",
                "drivers",
                "feature",
                "attr",
                "error",
                "control/shutdown",
            ] {
                let path = format!("{base}/{node}");
                xs.mkdir(tx, &path)?;
                xs.set_perms(tx, &path, &rw)?;
            }
            Ok(())
        })
        .map_err(io::Error::other)
    }

    pub(super) fn destroy(&self, domid: DomId, kill_process: bool) -> Result<(), Refusal> {
        if domid == 0 {
            return Err(Code::Denied.into());
        }
        let (acceptors, streams, pids) = {
            let mut st = lock(&self.state);
            let Some(dom) = st.doms.remove(&domid) else {
                return Err(Refusal::new(Code::NoDomain, domid.into(), 0));
            };
            st.dying.insert(domid);
            let Dom {
                grants,
                ports,
                acceptors,
                ..
            } = dom;
            // Revoke its grants: dropping the entries makes new maps fail;
            // existing mappings keep their memory (the memfd is refcounted).
            drop(grants);
            // Its ports: the peers see "closed".
            for (port, p) in &ports {
                Shared::closed(&mut st.doms, *port, p);
            }
            // Unbound ports other domains reserved for it can never be bound.
            for d in st.doms.values_mut() {
                for p in d.ports.values_mut() {
                    if p.remote == domid && !p.closed {
                        p.closed = true;
                        set_status(&p.status, proto::PORT_CLOSED);
                        kick(&p.evfd);
                    }
                }
            }
            let mut streams = Vec::new();
            let mut pids = Vec::new();
            for c in st.conns.values().filter(|c| c.domid == domid) {
                if let Ok(s) = c.stream.try_clone() {
                    streams.push(s);
                }
                pids.extend(c.pid);
            }
            (acceptors, streams, pids)
        };
        tracing::info!(
            domid,
            processes = pids.len(),
            "domain destroyed: grants revoked, ports closed, xenstore tree released"
        );
        if kill_process {
            for pid in pids.into_iter().filter(|&p| p != own_pid()) {
                let _ = kill9(pid);
            }
        }
        for s in streams {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        drop(acceptors);
        let _ = std::fs::remove_dir_all(self.domain_dir(domid));
        if let Some(store) = &self.store {
            if let Some(xs) = &self.xs {
                let _ = xs.rm(Tx::NONE, &format!("/local/domain/{domid}"));
            }
            store.release(domid);
        }
        lock(&self.state).dying.remove(&domid);
        self.changed.notify_all();
        Ok(())
    }

    /// A crash: every process of the domain dies by SIGKILL (a connection
    /// from this process is cut instead), and the domain with them.
    pub(super) fn kill(&self, domid: DomId) -> Result<(), Refusal> {
        if domid == 0 {
            return Err(Code::Denied.into());
        }
        let targets: Vec<(Option<u32>, Option<UnixStream>)> = {
            let st = lock(&self.state);
            if !st.doms.contains_key(&domid) {
                return Err(Refusal::new(Code::NoDomain, domid.into(), 0));
            }
            st.conns
                .values()
                .filter(|c| c.domid == domid)
                .map(|c| (c.pid, c.stream.try_clone().ok()))
                .collect()
        };
        tracing::info!(domid, processes = targets.len(), "domain killed");
        for (pid, stream) in targets {
            match pid {
                Some(p) if p != own_pid() => {
                    // Already gone is fine: the domain dies all the same.
                    let _ = kill9(p);
                }
                _ => {
                    if let Some(s) = stream {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        }
        self.destroy(domid, false)
    }

    pub(super) fn list(&self) -> Vec<DomainInfo> {
        let st = lock(&self.state);
        st.doms
            .iter()
            .map(|(&domid, d)| {
                let mut conns = st.conns.values().filter(|c| c.domid == domid);
                let first = conns.next();
                let processes = u32::from(first.is_some()) + conns.count() as u32;
                DomainInfo {
                    domid,
                    name: d.name.clone(),
                    pid: first.and_then(|c| c.pid),
                    attached: first.is_some(),
                    processes,
                    grants: d.grants.len() as u32,
                    maps: d.grants.values().map(|e| e.maps).sum(),
                    ports: d.ports.len() as u32,
                }
            })
            .collect()
    }
}

/// The frontend domains named under any domain's `backend/<type>/`.
fn frontends_with_backends(xs: &crate::xenstore::Connection) -> std::collections::BTreeSet<DomId> {
    let mut out = std::collections::BTreeSet::new();
    let list = |p: &str| xs.directory(Tx::NONE, p).unwrap_or_default();
    for be in list("/local/domain") {
        for ty in list(&format!("/local/domain/{be}/backend")) {
            for fe in list(&format!("/local/domain/{be}/backend/{ty}")) {
                if let Ok(id) = fe.parse::<DomId>() {
                    out.insert(id);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use xenmq::grant::DOMID_FIRST_RESERVED;

    use crate::sim::host::lock;
    use crate::sim::Host;
    use crate::toolstack::{self, Device};
    use crate::xenstore::Connection;

    /// Ids go up; after they wrap around, an id that a backend directory
    /// still names is skipped, and one that none names is given again.
    #[test]
    fn ids_wrap_around_past_devices_left_behind() {
        let dir = tempfile::Builder::new()
            .prefix("xenmq-domids-")
            .tempdir()
            .unwrap();
        let host = Host::with_xenstored(dir.path()).unwrap();
        let xs = Connection::connect(&dir.path().join("socket")).unwrap();
        let (a, b) = (
            host.create_domain("a").unwrap(),
            host.create_domain("b").unwrap(),
        );
        assert_eq!((a, b), (1, 2));
        // `a` leaves a device behind; `b` leaves nothing.
        let dev = Device {
            device_type: "vkv".into(),
            id: 0,
            frontend: a,
            backend: 0,
        };
        toolstack::attach(&xs, &dev, &[]).unwrap();
        for id in [a, b] {
            host.destroy_domain(id).unwrap();
            assert!(host.wait_gone(id, Duration::from_secs(5)));
        }
        assert_eq!(host.create_domain("c").unwrap(), 3);
        lock(&host.shared.state).next_domid = DOMID_FIRST_RESERVED - 1;
        assert_eq!(
            host.create_domain("last").unwrap(),
            DOMID_FIRST_RESERVED - 1
        );
        // Wrapped: 1 still has a backend directory, 3 is alive, 2 is free.
        assert_eq!(host.create_domain("again").unwrap(), b);
        // Detached, 1 is free too.
        toolstack::detach(&xs, &dev, Duration::ZERO, true).unwrap();
        assert_eq!(host.create_domain("more").unwrap(), 4);
        lock(&host.shared.state).next_domid = 1;
        assert_eq!(host.create_domain("first").unwrap(), a);
    }
}
