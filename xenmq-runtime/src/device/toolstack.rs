//! The toolstack's part of a device (what `xl` does with a `vif=` or
//! `disk=` line): the two Xenstore directories where the ends meet, each
//! owned by its end and readable by the other.
//!
//! ```text
//! /local/domain/<fe>/device/<type>/<id>            backend, backend-id, state = 1
//! /local/domain/<be>/backend/<type>/<fe>/<id>      frontend, frontend-id, state = 1
//! ```

use xenmq::grant::DomId;
use xenmq::store::{transaction, Store, Tx};
use xenmq::xenstore::perms::{Access, Perm, Perms};

use super::Error;

/// The frontend directory of a device.
pub fn frontend_dir(kind: &str, frontend: DomId, devid: u32) -> String {
    format!("/local/domain/{frontend}/device/{kind}/{devid}")
}

/// The backend directory of a device.
pub fn backend_dir(kind: &str, backend: DomId, frontend: DomId, devid: u32) -> String {
    format!("/local/domain/{backend}/backend/{kind}/{frontend}/{devid}")
}

fn perms(owner: DomId, reader: DomId) -> Perms {
    Perms::from_entries(vec![
        Perm {
            id: owner.into(),
            access: Access::None,
        },
        Perm {
            id: reader.into(),
            access: Access::Read,
        },
    ])
    .unwrap_or_else(|| Perms::new(owner.into(), Access::None))
}

/// Creates device `devid` of type `kind` between `frontend` and `backend`,
/// in one transaction. Needs a privileged (dom0) connection.
pub fn create<S: Store>(
    store: &S,
    kind: &str,
    frontend: DomId,
    backend: DomId,
    devid: u32,
) -> Result<(), Error> {
    let fe = frontend_dir(kind, frontend, devid);
    let be = backend_dir(kind, backend, frontend, devid);
    transaction(store, |tx| {
        for (dir, owner, reader) in [(&fe, frontend, backend), (&be, backend, frontend)] {
            store.rm(tx, dir).or_else(ignore_enoent)?;
            store.mkdir(tx, dir)?;
            store.set_perms(tx, dir, &perms(owner, reader))?;
        }
        let w = |path: String, v: String| store.write(tx, &path, v.as_bytes());
        w(format!("{fe}/backend"), be.clone())?;
        w(format!("{fe}/backend-id"), backend.to_string())?;
        w(format!("{fe}/state"), "1".into())?;
        w(format!("{be}/frontend"), fe.clone())?;
        w(format!("{be}/frontend-id"), frontend.to_string())?;
        w(format!("{be}/state"), "1".into())?;
        // The nodes written inherit the directory's permissions.
        Ok(())
    })?;
    Ok(())
}

/// Removes both directories of a device.
pub fn destroy<S: Store>(
    store: &S,
    kind: &str,
    frontend: DomId,
    backend: DomId,
    devid: u32,
) -> Result<(), Error> {
    let fe = frontend_dir(kind, frontend, devid);
    let be = backend_dir(kind, backend, frontend, devid);
    store.rm(Tx::NONE, &fe).or_else(ignore_enoent)?;
    store.rm(Tx::NONE, &be).or_else(ignore_enoent)?;
    Ok(())
}

fn ignore_enoent(e: xenmq::store::Error) -> Result<(), xenmq::store::Error> {
    match e.errno() {
        Some(xenmq::store::Errno::ENOENT) => Ok(()),
        _ => Err(e),
    }
}
