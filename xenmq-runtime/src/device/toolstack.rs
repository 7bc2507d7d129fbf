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

/// Creates device `devid` of type `kind` between `frontend` and `backend`.
/// Needs a privileged (dom0) connection.
///
/// The frontend directory is written first and the backend's last, each in
/// one transaction: a backend that notices its directory finds the
/// frontend's complete. Each transaction leaves a directory alone that an
/// earlier attempt already completed (a backend may be acting on it).
pub fn create<S: Store>(
    store: &S,
    kind: &str,
    frontend: DomId,
    backend: DomId,
    devid: u32,
) -> Result<(), Error> {
    let fe = frontend_dir(kind, frontend, devid);
    let be = backend_dir(kind, backend, frontend, devid);
    let (fe_id, be_id) = (frontend.to_string(), backend.to_string());
    let fe_keys = [
        ("backend", be.as_str()),
        ("backend-id", &be_id),
        ("state", "1"),
    ];
    let be_keys = [
        ("frontend", fe.as_str()),
        ("frontend-id", &fe_id),
        ("state", "1"),
    ];
    publish(store, &fe, perms(frontend, backend), &fe_keys)?;
    publish(store, &be, perms(backend, frontend), &be_keys)?;
    Ok(())
}

/// Writes `dir` afresh with `keys`, unless its first key already holds
/// its value (an earlier attempt's commit went through).
fn publish<S: Store>(
    store: &S,
    dir: &str,
    perms: Perms,
    keys: &[(&str, &str)],
) -> Result<(), Error> {
    transaction(store, |tx| {
        if let Some((k, v)) = keys.first() {
            if store
                .read_string(tx, &format!("{dir}/{k}"))
                .is_ok_and(|x| x == *v)
            {
                return Ok(());
            }
        }
        store.rm(tx, dir).or_else(ignore_enoent)?;
        store.mkdir(tx, dir)?;
        store.set_perms(tx, dir, &perms)?;
        // The nodes written inherit the directory's permissions.
        for (k, v) in keys {
            store.write(tx, &format!("{dir}/{k}"), v.as_bytes())?;
        }
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
