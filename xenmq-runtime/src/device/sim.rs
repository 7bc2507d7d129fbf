//! Device ends on the simulator: a domain process finds the host through
//! the environment ([`crate::sim::ENV_DIR`], [`crate::sim::ENV_DOMID`],
//! `XENSTORED_PATH`), as [`crate::sim::domain_command`] sets it.

use crate::sim::{self, Domain};

use crate::xenstore::Connection;

use super::{BackDevice, Env, Error, FrontDevice};

/// The environment of a domain on the simulator.
pub type SimEnv = Env<Connection, Domain, Domain>;
/// A frontend on the simulator.
pub type SimFront<P, F> = FrontDevice<P, F, Connection, Domain, Domain>;
/// A backend on the simulator.
pub type SimBack<P, B> = BackDevice<P, B, Connection, Domain, Domain>;

/// Why joining the simulator failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The host is not reachable as this domain.
    #[error("cannot attach to the simulated host")]
    Host(#[from] sim::Error),
    /// Xenstore is not reachable.
    #[error("cannot reach xenstore")]
    Store(#[from] std::io::Error),
}

impl From<JoinError> for Error {
    fn from(e: JoinError) -> Error {
        match e {
            JoinError::Store(s) => Error::Connect(s),
            JoinError::Host(h) => Error::Setup {
                path: h.to_string(),
                what: "cannot attach to the simulated host",
            },
        }
    }
}

/// This process's domain, as the environment names it, with a fresh
/// Xenstore connection.
pub fn env() -> Result<SimEnv, JoinError> {
    let dom = Domain::from_env()?;
    let store = Connection::connect(&dom.store_path())?;
    Ok(Env::new(store, dom.clone(), dom))
}

/// Another Xenstore connection for the same domain (each device end
/// carries its own watch).
pub fn another(env: &SimEnv) -> Result<SimEnv, JoinError> {
    let store = Connection::connect(&env.grants.store_path())?;
    Ok(Env::new(store, env.grants.clone(), env.events.clone()))
}

/// Domain `domid` of the host in `dir`, attached from this process (for
/// tests that run domains as threads).
pub fn attach(dir: &std::path::Path, domid: u16) -> Result<SimEnv, JoinError> {
    let dom = Domain::connect(dir, domid)?;
    let store = Connection::connect(&dom.store_path())?;
    Ok(Env::new(store, dom.clone(), dom))
}
