//! The platform chosen at run time, so one driver binary runs on the
//! simulator and on real Xen without recompiling.
//!
//! [`detect`] picks from the environment: `XENMQ_PLATFORM=sim|xen` when
//! set; else the simulator when [`sim::ENV_DIR`] is set (a simulator domain
//! process); else real Xen when `/dev/xen/evtchn` exists. [`run`] then
//! hands a [`Body`] the chosen [`Platform`], which makes a device end's
//! [`Env`] (a Xenstore connection, the grant table, the event channels) as
//! often as asked:
//!
//! ```no_run
//! use xenmq_runtime::platform::{self, Body, Platform};
//!
//! struct Hello;
//!
//! impl Body for Hello {
//!     type Output = Result<(), xenmq_runtime::device::Error>;
//!     fn run<P: Platform>(self, platform: &P) -> Self::Output {
//!         let env = platform.env()?;
//!         // Front::new(env, 0, driver)? ... the same code on both platforms.
//!         println!("dom{} on {}", platform.domid(), P::NAME);
//!         drop(env);
//!         Ok(())
//!     }
//! }
//!
//! let _ = platform::run(Hello);
//! ```

use std::os::fd::AsFd;
use std::path::Path;

use xenmq::driver::{Backend, Protocol};
use xenmq::evtchn::Events;
use xenmq::grant::{DomId, Grants};
#[cfg(feature = "linux")]
use xenmq::xenstore::{Store, Tx};

use crate::device::{self, Backends, Env};
#[cfg(feature = "sim")]
use crate::sim::{self, Domain};
#[cfg(any(feature = "sim", feature = "linux"))]
use crate::xenstore::Connection;
use crate::xenstore::Pollable;

/// The variable that forces a platform: `sim` or `xen`.
pub const ENV_PLATFORM: &str = "XENMQ_PLATFORM";

/// The variable a simulator domain process finds its host by
/// (`xenmq_runtime::sim::ENV_DIR` when the `sim` feature is on).
const SIM_DIR: &str = "XENMQ_SIM_DIR";

/// The device whose presence means "this is a Xen domain".
pub const XEN_PROBE: &str = "/dev/xen/evtchn";

/// The platforms a hosted driver runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The simulator ([`crate::sim`]).
    Sim,
    /// Linux userspace on real Xen ([`crate::linux`]).
    Xen,
}

impl Choice {
    /// The name `XENMQ_PLATFORM` takes for it.
    pub const fn name(self) -> &'static str {
        match self {
            Choice::Sim => "sim",
            Choice::Xen => "xen",
        }
    }
}

/// Why no platform could be chosen or joined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `XENMQ_PLATFORM` names no platform.
    #[error("{ENV_PLATFORM}={0:?} is neither `sim` nor `xen`")]
    Unknown(String),
    /// Neither the simulator's variables nor `/dev/xen/evtchn` are there.
    #[error("no platform: {SIM_DIR} is unset and {XEN_PROBE} is missing")]
    None,
    /// The platform chosen was left out of this build.
    #[error("this build of xenmq-runtime has no `{0}` platform (its Cargo feature is off)")]
    NotBuilt(&'static str),
    /// The simulated host is not reachable as this domain.
    #[cfg(feature = "sim")]
    #[error("cannot join the simulator")]
    Sim(#[source] sim::Error),
    /// A `/dev/xen` device could not be opened.
    #[cfg(feature = "linux")]
    #[error("cannot open the xen devices")]
    Xen(#[source] crate::linux::Error),
    /// This domain's id could not be learned from Xenstore.
    #[error("cannot read this domain's id from xenstore")]
    Domid(#[source] xenmq::xenstore::Error),
    /// Xenstore's `domid` key is not a domain id.
    #[error("xenstore's domid key is not a domain id: {0:?}")]
    BadDomid(String),
}

/// The platform the environment names (see the module's documentation).
pub fn detect() -> Result<Choice, Error> {
    detect_from(
        std::env::var(ENV_PLATFORM).ok().as_deref(),
        std::env::var_os(SIM_DIR).is_some(),
        Path::new(XEN_PROBE).exists(),
    )
}

fn detect_from(forced: Option<&str>, sim_dir: bool, xen_dev: bool) -> Result<Choice, Error> {
    match forced {
        Some("sim") => Ok(Choice::Sim),
        Some("xen") => Ok(Choice::Xen),
        Some("") | None if sim_dir => Ok(Choice::Sim),
        Some("") | None if xen_dev => Ok(Choice::Xen),
        Some("") | None => Err(Error::None),
        Some(other) => Err(Error::Unknown(other.to_owned())),
    }
}

/// What a device end runs on, chosen at run time. A platform value is
/// cheap to clone and may move to other threads (one per device end).
pub trait Platform: Clone + Send + 'static {
    /// The platform's name (`sim`, `xen`).
    const NAME: &'static str;
    /// Its Xenstore connection, with a descriptor to poll.
    type Store: Pollable;
    /// Its grant table (clones share it).
    type Grants: Grants + Clone;
    /// Its event channels (clones share them), each with a descriptor to
    /// poll.
    type Events: Events<Channel: AsFd> + Clone;

    /// This domain's id.
    fn domid(&self) -> DomId;

    /// A new Xenstore connection.
    fn store(&self) -> Result<Self::Store, device::Error>;

    /// A fresh environment for one device end (each end carries its own
    /// Xenstore connection, for its watch).
    fn env(&self) -> Result<EnvOf<Self>, device::Error>;

    /// Every device of protocol `P` this domain backs, served from one
    /// thread ([`device::Backends`]); `make(frontend, devid)` makes each
    /// device's driver. Each device gets its own Xenstore connection; the
    /// grant table and event channels are shared.
    #[allow(clippy::type_complexity)]
    fn backends<P, B>(
        &self,
        make: impl FnMut(DomId, u32) -> B + 'static,
    ) -> Result<Backends<P, B, Self::Store, Self::Grants, Self::Events>, device::Error>
    where
        P: Protocol,
        B: Backend<Protocol = P>,
    {
        let this = self.clone();
        Backends::new(self.env()?, move || this.store(), make)
    }
}

/// The environment of a device end on platform `P`.
pub type EnvOf<P> = Env<<P as Platform>::Store, <P as Platform>::Grants, <P as Platform>::Events>;

/// The simulator, joined as the domain the environment names.
#[cfg(feature = "sim")]
#[derive(Debug, Clone)]
pub struct Sim {
    dom: Domain,
}

#[cfg(feature = "sim")]
impl Sim {
    /// Joins the host in [`sim::ENV_DIR`] as [`sim::ENV_DOMID`].
    pub fn from_env() -> Result<Sim, Error> {
        Domain::from_env()
            .map(|dom| Sim { dom })
            .map_err(Error::Sim)
    }

    /// The simulator domain (keep a clone while the process should count
    /// as running).
    pub fn domain(&self) -> &Domain {
        &self.dom
    }
}

#[cfg(feature = "sim")]
impl Platform for Sim {
    const NAME: &'static str = "sim";
    type Store = Connection;
    type Grants = Domain;
    type Events = Domain;

    fn domid(&self) -> DomId {
        self.dom.id()
    }

    fn store(&self) -> Result<Connection, device::Error> {
        Ok(Connection::connect(&self.dom.store_path())?)
    }

    fn env(&self) -> Result<Env<Connection, Domain, Domain>, device::Error> {
        Ok(Env::new(self.store()?, self.dom.clone(), self.dom.clone()))
    }
}

/// Real Xen, through `/dev/xen` (Xenstore through `/dev/xen/xenbus`).
#[cfg(feature = "linux")]
#[derive(Debug, Clone)]
pub struct Xen {
    domid: DomId,
}

#[cfg(feature = "linux")]
impl Xen {
    /// Opens Xenstore and reads this domain's id (its `domid` key).
    pub fn open() -> Result<Xen, Error> {
        let xs = xenbus()?;
        let raw = xs.read_string(Tx::NONE, "domid").map_err(Error::Domid)?;
        let domid = raw.trim().parse().map_err(|_| Error::BadDomid(raw))?;
        Ok(Xen { domid })
    }

    /// As this domain, with its id known.
    pub fn with_domid(domid: DomId) -> Xen {
        Xen { domid }
    }
}

#[cfg(feature = "linux")]
fn xenbus() -> Result<Connection, Error> {
    crate::linux::Xenbus::open()
        .and_then(crate::linux::Xenbus::client)
        .map_err(Error::Xen)
}

#[cfg(feature = "linux")]
impl Platform for Xen {
    const NAME: &'static str = "xen";
    type Store = Connection;
    type Grants = crate::linux::Grants;
    type Events = crate::linux::Events;

    fn domid(&self) -> DomId {
        self.domid
    }

    /// A new `/dev/xen/xenbus` connection.
    fn store(&self) -> Result<Connection, device::Error> {
        crate::linux::Xenbus::open()
            .and_then(crate::linux::Xenbus::client)
            .map_err(|e| device::Error::Setup {
                path: format!("{}: {e}", crate::linux::Xenbus::PATH),
                what: "cannot open xenstore",
            })
    }

    /// A new `/dev/xen/xenbus` connection per end.
    fn env(&self) -> Result<EnvOf<Self>, device::Error> {
        let store = self.store()?;
        let grants = crate::linux::Grants::open(self.domid).map_err(|e| device::Error::Setup {
            path: format!("/dev/xen/gntalloc, /dev/xen/gntdev: {e}"),
            what: "cannot open the grant devices",
        })?;
        Ok(Env::new(store, grants, crate::linux::Events::new()))
    }
}

/// Code generic over the platform, run by [`run`] on the one chosen.
pub trait Body {
    /// What it returns.
    type Output;
    /// Runs on `platform`.
    fn run<P: Platform>(self, platform: &P) -> Self::Output;
}

/// Runs `body` on the platform [`detect`] picks.
#[cfg_attr(not(all(feature = "sim", feature = "linux")), allow(unused_variables))]
pub fn run<B: Body>(body: B) -> Result<B::Output, Error> {
    match detect()? {
        #[cfg(feature = "sim")]
        Choice::Sim => Ok(body.run(&Sim::from_env()?)),
        #[cfg(feature = "linux")]
        Choice::Xen => Ok(body.run(&Xen::open()?)),
        #[allow(unreachable_patterns)]
        other => Err(Error::NotBuilt(other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sim")]
    #[test]
    fn sim_dir_is_the_simulators_variable() {
        assert_eq!(SIM_DIR, crate::sim::ENV_DIR);
    }

    #[test]
    fn forced_platform_wins() {
        assert_eq!(
            detect_from(Some("sim"), false, true).ok(),
            Some(Choice::Sim)
        );
        assert_eq!(
            detect_from(Some("xen"), true, false).ok(),
            Some(Choice::Xen)
        );
        assert!(
            matches!(detect_from(Some("kvm"), true, true), Err(Error::Unknown(s)) if s == "kvm")
        );
    }

    #[test]
    fn simulator_before_xen_devices() {
        assert_eq!(detect_from(None, true, true).ok(), Some(Choice::Sim));
        assert_eq!(detect_from(Some(""), false, true).ok(), Some(Choice::Xen));
        assert!(matches!(detect_from(None, false, false), Err(Error::None)));
    }
}
