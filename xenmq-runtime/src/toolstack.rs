//! The toolstack's side of a device: creating and removing its Xenstore
//! directories, and reading back what both ends say about it.
//!
//! `xl` only knows Xen's own device types, so for a custom split driver
//! something must do what libxl does when it adds a device: create the
//! frontend directory `/local/domain/<fe>/device/<type>/<id>` (owned by the
//! frontend domain, readable by the backend domain) and the backend
//! directory `/local/domain/<be>/backend/<type>/<fe>/<id>` (owned by the
//! backend domain, readable by the frontend domain), each pointing at the
//! other, both in state Initialising, in one transaction. Everything here
//! works through the [`Store`] trait, so it runs against the simulator's
//! Xenstore and against the real xenstored in dom0 alike.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use thiserror::Error;
use xenmq::grant::{DomId, DOMID_FIRST_RESERVED};
use xenmq::xenstore::perms::{Mode, Perm, Perms};
use xenmq::xenstore::{self, Errno, Store, Tx};

/// XenbusState values the toolstack writes or waits for.
const STATE_INITIALISING: &str = "1";
const STATE_CLOSING: &str = "5";
const STATE_CLOSED: &str = "6";

/// The longest device type name accepted (Xen's own are at most 8).
const MAX_TYPE_LEN: usize = 64;

/// What the toolstack functions can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// The device type is not a usable Xenstore path element.
    #[error("bad device type {0:?}: use 1 to 64 of a-z, 0-9, `-` and `_`")]
    BadType(String),
    /// A key given for the backend directory is not a usable name.
    #[error("bad key name {0:?}: use a-z, A-Z, 0-9, `-` and `_`")]
    BadKey(String),
    /// A key given for the backend directory is one the toolstack or the
    /// handshake writes: setting it would break the device.
    #[error("key {0:?} is written by the toolstack or the xenbus handshake; it cannot be set")]
    ReservedKey(String),
    /// No domain of that id or name is in the Xenstore.
    #[error("no domain {0} in the Xenstore")]
    NoDomain(DomainRef),
    /// More than one domain has that name.
    #[error("more than one domain is named {0:?} (domains {1:?}): give its id")]
    AmbiguousName(String, Vec<DomId>),
    /// The device already has a directory.
    #[error("{0} already exists: detach the device first")]
    Exists(String),
    /// Neither end of the device has a directory.
    #[error("no device {device_type}/{id} of domain {frontend} with backend domain {backend}")]
    NoDevice {
        /// The device type.
        device_type: String,
        /// The device id.
        id: u32,
        /// The frontend domain.
        frontend: DomId,
        /// The backend domain.
        backend: DomId,
    },
    /// The backend did not reach Closed in time.
    #[error("the backend at {path} is still in state {state} after {waited:?}; use --force to remove it anyway")]
    CloseTimeout {
        /// The backend directory.
        path: String,
        /// The last state it showed.
        state: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The Xenstore refused or failed an operation.
    #[error("xenstore: {op} {path}")]
    Store {
        /// The operation.
        op: &'static str,
        /// The path it was on.
        path: String,
        /// Why.
        #[source]
        source: xenstore::Error,
    },
}

fn at<'a>(op: &'static str, path: &'a str) -> impl FnOnce(xenstore::Error) -> Error + 'a {
    move |source| Error::Store {
        op,
        path: path.to_owned(),
        source,
    }
}

/// A device as the toolstack names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device type, e.g. `vkv`: the directory name under `device/` and
    /// `backend/`.
    pub device_type: String,
    /// The device id within its type and frontend domain.
    pub id: u32,
    /// The domain running the frontend.
    pub frontend: DomId,
    /// The domain running the backend.
    pub backend: DomId,
}

impl Device {
    /// Checks the type name; everything else is a number.
    pub fn validate(&self) -> Result<(), Error> {
        let t = &self.device_type;
        let ok = !t.is_empty()
            && t.len() <= MAX_TYPE_LEN
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(Error::BadType(t.clone()))
        }
    }

    /// `/local/domain/<fe>/device/<type>/<id>`.
    pub fn frontend_path(&self) -> String {
        format!(
            "/local/domain/{}/device/{}/{}",
            self.frontend, self.device_type, self.id
        )
    }

    /// `/local/domain/<be>/backend/<type>/<fe>/<id>`.
    pub fn backend_path(&self) -> String {
        format!(
            "/local/domain/{}/backend/{}/{}/{}",
            self.backend, self.device_type, self.frontend, self.id
        )
    }
}

/// Permissions for a directory owned by `owner` that `reader` may read and
/// nobody else may touch (libxl's choice for both device directories).
fn owned_by(owner: DomId, reader: DomId) -> Perms {
    let mut entries = vec![Perm {
        id: u32::from(owner),
        access: Mode::None,
    }];
    if reader != owner {
        entries.push(Perm {
            id: u32::from(reader),
            access: Mode::Read,
        });
    }
    // Never empty: it has the owner entry.
    Perms::from_entries(entries).unwrap_or_else(|| Perms::new(u32::from(owner), Mode::None))
}

fn exists<S: Store + ?Sized>(store: &S, tx: Tx, path: &str) -> Result<bool, Error> {
    store.exists(tx, path).map_err(at("read", path))
}

fn write_dir<S: Store + ?Sized>(
    store: &S,
    tx: Tx,
    dir: &str,
    perms: &Perms,
    keys: &[(&str, String)],
) -> Result<(), Error> {
    store.mkdir(tx, dir).map_err(at("mkdir", dir))?;
    store
        .set_perms(tx, dir, perms)
        .map_err(at("set-perms", dir))?;
    for (key, value) in keys {
        let path = format!("{dir}/{key}");
        store
            .write(tx, &path, value.as_bytes())
            .map_err(at("write", &path))?;
        // New nodes inherit the directory's permissions, but only where the
        // writer is privileged; set them so the result does not depend on it.
        store
            .set_perms(tx, &path, perms)
            .map_err(at("set-perms", &path))?;
    }
    Ok(())
}

/// Creates both directories of `dev` in one transaction (retried on
/// `EAGAIN`), as libxl does for its own devices. `backend_keys` are extra
/// keys for the backend directory (a driver's configuration, e.g. the file
/// a block backend serves). Fails if either directory exists already.
pub fn attach<S: Store + ?Sized>(
    store: &S,
    dev: &Device,
    backend_keys: &[(String, String)],
) -> Result<(), Error> {
    dev.validate()?;
    for (key, _) in backend_keys {
        check_key(key)?;
    }
    let fe = dev.frontend_path();
    let be = dev.backend_path();
    let mut failure = None;
    let result = xenstore::transaction(store, |tx| {
        match attach_in(store, tx, dev, &fe, &be, backend_keys) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Abort the transaction; the typed error is kept aside.
                failure = Some(e);
                Err(xenstore::Error::Refused(Errno::EINVAL))
            }
        }
    });
    match (result, failure) {
        (_, Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
        (Err(e), None) => Err(Error::Store {
            op: "transaction",
            path: fe,
            source: e,
        }),
    }
}

fn attach_in<S: Store + ?Sized>(
    store: &S,
    tx: Tx,
    dev: &Device,
    fe: &str,
    be: &str,
    backend_keys: &[(String, String)],
) -> Result<(), Error> {
    for dir in [fe, be] {
        if exists(store, tx, dir)? {
            return Err(Error::Exists(dir.to_owned()));
        }
    }
    write_dir(
        store,
        tx,
        fe,
        &owned_by(dev.frontend, dev.backend),
        &[
            ("backend", be.to_owned()),
            ("backend-id", dev.backend.to_string()),
            ("state", STATE_INITIALISING.to_owned()),
        ],
    )?;
    let mut keys = vec![
        ("frontend", fe.to_owned()),
        ("frontend-id", dev.frontend.to_string()),
        ("online", "1".to_owned()),
        ("state", STATE_INITIALISING.to_owned()),
    ];
    keys.extend(backend_keys.iter().map(|(k, v)| (k.as_str(), v.clone())));
    write_dir(store, tx, be, &owned_by(dev.backend, dev.frontend), &keys)
}

/// How a detach ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detached {
    /// The backend closed, then both directories were removed.
    Closed,
    /// The directories were removed without waiting (`force`), or there was
    /// no backend directory to wait for.
    Removed,
}

/// Removes `dev`: asks the backend to close (`online` = 0, state Closing),
/// waits up to `timeout` for it to reach Closed (or vanish), then removes
/// both directories. With `force`, removes them without asking or waiting.
pub fn detach<S: Store + ?Sized>(
    store: &S,
    dev: &Device,
    timeout: Duration,
    force: bool,
) -> Result<Detached, Error> {
    dev.validate()?;
    let fe = dev.frontend_path();
    let be = dev.backend_path();
    let has_fe = exists(store, Tx::NONE, &fe)?;
    let has_be = exists(store, Tx::NONE, &be)?;
    if !has_fe && !has_be {
        return Err(Error::NoDevice {
            device_type: dev.device_type.clone(),
            id: dev.id,
            frontend: dev.frontend,
            backend: dev.backend,
        });
    }
    let mut outcome = Detached::Removed;
    if has_be && !force {
        wait_closed(store, &be, timeout)?;
        outcome = Detached::Closed;
    }
    for dir in [&fe, &be] {
        match store.rm(Tx::NONE, dir) {
            Ok(()) | Err(xenstore::Error::Refused(Errno::ENOENT)) => {}
            Err(e) => return Err(at("rm", dir)(e)),
        }
    }
    // Remove `backend/<type>/<fe>` once its last device is gone, as libxl does.
    let parent = format!(
        "/local/domain/{}/backend/{}/{}",
        dev.backend, dev.device_type, dev.frontend
    );
    if let Ok(children) = store.directory(Tx::NONE, &parent) {
        if children.is_empty() {
            // Best effort: another toolstack may have added a device since.
            let _ = store.rm(Tx::NONE, &parent);
        }
    }
    Ok(outcome)
}

fn wait_closed<S: Store + ?Sized>(store: &S, be: &str, timeout: Duration) -> Result<(), Error> {
    let state_path = format!("{be}/state");
    // A backend already Closed (its driver is gone, or it closed on its
    // own) has nothing left to do: asking it to close again would only
    // wait for a state change that never comes.
    match store.read(Tx::NONE, &state_path) {
        Ok(v) if v == STATE_CLOSED.as_bytes() => return Ok(()),
        Err(xenstore::Error::Refused(Errno::ENOENT)) => return Ok(()),
        Ok(_) => {}
        Err(e) => return Err(at("read", &state_path)(e)),
    }
    let token = format!("xenmq-detach:{be}");
    store
        .watch(&state_path, &token)
        .map_err(at("watch", &state_path))?;
    let result = (|| {
        for (key, value) in [("online", "0"), ("state", STATE_CLOSING)] {
            let path = format!("{be}/{key}");
            store
                .write(Tx::NONE, &path, value.as_bytes())
                .map_err(at("write", &path))?;
        }
        let start = Instant::now();
        loop {
            let state = match store.read(Tx::NONE, &state_path) {
                Ok(v) => String::from_utf8_lossy(&v).into_owned(),
                Err(xenstore::Error::Refused(Errno::ENOENT)) => return Ok(()),
                Err(e) => return Err(at("read", &state_path)(e)),
            };
            if state == STATE_CLOSED {
                return Ok(());
            }
            let waited = start.elapsed();
            let Some(left) = timeout.checked_sub(waited) else {
                return Err(Error::CloseTimeout {
                    path: be.to_owned(),
                    state,
                    waited,
                });
            };
            // Any event (ours or another watch's) is a reason to look again.
            store
                .next_event(Some(left))
                .map_err(at("wait for", &state_path))?;
        }
    })();
    // The watch is ours alone; a failure to remove it changes nothing above.
    let _ = store.unwatch(&state_path, &token);
    result
}

/// Whether `key` belongs to the framework: every key the handshake, the
/// buffer pool or the toolstack writes ([`xenmq::xenbus::key::is_reserved`]:
/// `state`, `ring-ref*`, `event-channel`, `protocol`, `error`, `online`,
/// `frontend`, ...), and the whole `xenmq-` namespace, which later
/// versions may write too.
fn reserved_key(key: &str) -> bool {
    xenmq::xenbus::key::is_reserved(key) || key.starts_with("xenmq-")
}

/// Checks a key a user gives for a backend directory: a plain name
/// (a-z, A-Z, 0-9, `-`, `_`) that neither the toolstack nor the handshake
/// writes.
pub fn check_key(key: &str) -> Result<(), Error> {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        return Err(Error::BadKey(key.to_owned()));
    }
    if reserved_key(key) {
        return Err(Error::ReservedKey(key.to_owned()));
    }
    Ok(())
}

/// A domain as a user names it, as `xl` takes it: a number is a domain id,
/// anything else a domain name (`libxl_domain_qualifier_to_domid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRef {
    /// A domain id.
    Id(DomId),
    /// A domain name, as in `/local/domain/<id>/name`.
    Name(String),
}

/// Why a domain qualifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BadDomain {
    /// A number that is not a guest's domain id.
    #[error("domain id {0} is out of range (0 to 32751)")]
    OutOfRange(String),
    /// Not a name a domain can have.
    #[error("{0:?} is not a domain id or name")]
    BadName(String),
}

/// The longest domain name accepted (libxl's limit is the Xenstore's
/// value size; 256 is ample).
const MAX_NAME_LEN: usize = 256;

impl FromStr for DomainRef {
    type Err = BadDomain;

    fn from_str(s: &str) -> Result<DomainRef, BadDomain> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<DomId>()
                .ok()
                .filter(|&id| id < DOMID_FIRST_RESERVED)
                .map(DomainRef::Id)
                .ok_or_else(|| BadDomain::OutOfRange(s.to_owned()));
        }
        if s.is_empty() || s.len() > MAX_NAME_LEN || s.chars().any(char::is_control) {
            return Err(BadDomain::BadName(s.to_owned()));
        }
        Ok(DomainRef::Name(s.to_owned()))
    }
}

impl fmt::Display for DomainRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainRef::Id(id) => write!(f, "{id}"),
            DomainRef::Name(name) => write!(f, "named {name:?}"),
        }
    }
}

/// The id of domain `d`, checked against the Xenstore as libxl does: an id
/// names a domain whose `/local/domain/<id>` exists; a name is looked up
/// in every `/local/domain/*/name` (`xl domid`).
pub fn domain_id<S: Store + ?Sized>(store: &S, d: &DomainRef) -> Result<DomId, Error> {
    match d {
        DomainRef::Id(id) => {
            if exists(store, Tx::NONE, &format!("/local/domain/{id}"))? {
                Ok(*id)
            } else {
                Err(Error::NoDomain(d.clone()))
            }
        }
        DomainRef::Name(name) => {
            let mut found = Vec::new();
            for id in numeric(list(store, "/local/domain")?) {
                let Ok(id) = DomId::try_from(id) else {
                    continue;
                };
                let dir = format!("/local/domain/{id}");
                if key(store, &dir, "name")?.as_deref() == Some(name.as_str()) {
                    found.push(id);
                }
            }
            match found.as_slice() {
                [] => Err(Error::NoDomain(d.clone())),
                [id] => Ok(*id),
                _ => Err(Error::AmbiguousName(name.clone(), found)),
            }
        }
    }
}

/// What one end of a device shows in its directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct End {
    /// The directory, or `None` if it is missing.
    pub path: Option<String>,
    /// The `state` key as written (a XenbusState number, or whatever the
    /// end wrote).
    pub state: Option<String>,
    /// The `error` key, if the end wrote one.
    pub error: Option<String>,
}

/// A device found in a Xenstore, as both ends describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Which device.
    pub device: Device,
    /// The backend's directory.
    pub backend: End,
    /// The frontend's directory.
    pub frontend: End,
    /// The protocol name, version and ring layout the ends published,
    /// backend's first.
    pub protocol: Option<Protocol>,
    /// Ring pages: from `ring-page-order`, or 1 when a single `ring-ref` is
    /// published.
    pub ring_pages: Option<u32>,
    /// The frontend's `event-channel`.
    pub event_channel: Option<String>,
}

/// The protocol a device's end published: `xenmq-protocol`,
/// `xenmq-version` and `xenmq-ring-layout`. Shown as `vkv v1 ring.h`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// The protocol's name.
    pub name: String,
    /// Its version, as written (empty if the key is missing).
    pub version: String,
    /// The ring layout: `ring.h` when the key is missing (the only layout
    /// before the key).
    pub layout: String,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{} {}", self.name, self.version, self.layout)
    }
}

/// Reads one key; missing (or unreadable to us) is `None`.
fn key<S: Store + ?Sized>(store: &S, dir: &str, key: &str) -> Result<Option<String>, Error> {
    let path = format!("{dir}/{key}");
    match store.read(Tx::NONE, &path) {
        Ok(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
        Err(xenstore::Error::Refused(Errno::ENOENT | Errno::EACCES)) => Ok(None),
        Err(e) => Err(at("read", &path)(e)),
    }
}

/// Lists a directory; missing (or unreadable to us) is empty.
fn list<S: Store + ?Sized>(store: &S, dir: &str) -> Result<Vec<String>, Error> {
    match store.directory(Tx::NONE, dir) {
        Ok(v) => Ok(v),
        Err(xenstore::Error::Refused(Errno::ENOENT | Errno::EACCES)) => Ok(Vec::new()),
        Err(e) => Err(at("directory", dir)(e)),
    }
}

fn read_end<S: Store + ?Sized>(store: &S, dir: &str) -> Result<End, Error> {
    if !exists(store, Tx::NONE, dir)? {
        return Ok(End::default());
    }
    Ok(End {
        path: Some(dir.to_owned()),
        state: key(store, dir, "state")?,
        error: key(store, dir, "error")?,
    })
}

/// Every device of every domain in the store: each backend directory under
/// `/local/domain/*/backend/*/*/*`, plus frontend directories under
/// `/local/domain/*/device/*/*` whose backend directory is missing. Needs
/// a connection that may read the whole tree (dom0's).
pub fn devices<S: Store + ?Sized>(store: &S) -> Result<Vec<DeviceStatus>, Error> {
    let mut found = Vec::new();
    let domains = numeric(list(store, "/local/domain")?);
    for &be in &domains {
        let base = format!("/local/domain/{be}/backend");
        for ty in list(store, &base)? {
            for fe in numeric(list(store, &format!("{base}/{ty}"))?) {
                for id in numeric(list(store, &format!("{base}/{ty}/{fe}"))?) {
                    let (Ok(backend), Ok(frontend), Ok(id)) =
                        (DomId::try_from(be), DomId::try_from(fe), u32::try_from(id))
                    else {
                        continue;
                    };
                    found.push(Device {
                        device_type: ty.clone(),
                        id,
                        frontend,
                        backend,
                    });
                }
            }
        }
    }
    // Frontends whose backend directory is gone (or was never made).
    for &fe in &domains {
        let base = format!("/local/domain/{fe}/device");
        for ty in list(store, &base)? {
            for id in numeric(list(store, &format!("{base}/{ty}"))?) {
                let dir = format!("{base}/{ty}/{id}");
                let backend = key(store, &dir, "backend-id")?
                    .and_then(|s| s.parse::<DomId>().ok())
                    .unwrap_or(0);
                let (Ok(frontend), Ok(id)) = (DomId::try_from(fe), u32::try_from(id)) else {
                    continue;
                };
                let dev = Device {
                    device_type: ty.clone(),
                    id,
                    frontend,
                    backend,
                };
                if !found.contains(&dev) {
                    found.push(dev);
                }
            }
        }
    }
    found
        .into_iter()
        .map(|device| status(store, device))
        .collect()
}

/// Both ends' view of one device.
pub fn status<S: Store + ?Sized>(store: &S, device: Device) -> Result<DeviceStatus, Error> {
    let backend = read_end(store, &device.backend_path())?;
    let frontend = read_end(store, &device.frontend_path())?;
    let mut protocol = None;
    for end in [&backend, &frontend] {
        if let (Some(dir), None) = (&end.path, &protocol) {
            if let Some(name) = key(store, dir, "xenmq-protocol")? {
                let version = key(store, dir, "xenmq-version")?.unwrap_or_default();
                // Missing means ring.h, the only layout before the key.
                let layout =
                    key(store, dir, "xenmq-ring-layout")?.unwrap_or_else(|| "ring.h".to_owned());
                protocol = Some(Protocol {
                    name,
                    version,
                    layout,
                });
            }
        }
    }
    let (mut ring_pages, mut event_channel) = (None, None);
    if let Some(dir) = &frontend.path {
        ring_pages = match key(store, dir, "ring-page-order")? {
            Some(order) => order.parse::<u32>().ok().and_then(|o| 1u32.checked_shl(o)),
            None => key(store, dir, "ring-ref")?.map(|_| 1),
        };
        event_channel = key(store, dir, "event-channel")?;
    }
    Ok(DeviceStatus {
        device,
        backend,
        frontend,
        protocol,
        ring_pages,
        event_channel,
    })
}

/// Keeps the names that are domain or device numbers, sorted numerically.
fn numeric(names: Vec<String>) -> Vec<u64> {
    let mut v: Vec<u64> = names.iter().filter_map(|n| n.parse().ok()).collect();
    v.sort_unstable();
    v
}

/// The name of a XenbusState number, for people.
pub fn state_name(state: &str) -> &'static str {
    match state {
        "0" => "Unknown",
        "1" => "Initialising",
        "2" => "InitWait",
        "3" => "Initialised",
        "4" => "Connected",
        "5" => "Closing",
        "6" => "Closed",
        "7" => "Reconfiguring",
        "8" => "Reconfigured",
        _ => "invalid",
    }
}

/// Text an end wrote, made safe for one line of a table: control
/// characters (newlines, tabs, escape sequences) are shown escaped.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for DeviceStatus {
    /// `xenmq status`'s row of the device, then each end's error on a line
    /// of its own below it (an error's text cannot shift the columns).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.device;
        let state = |e: &End| match (&e.path, &e.state) {
            (None, _) => "-".to_owned(),
            (Some(_), None) => "?".to_owned(),
            (Some(_), Some(s)) => format!("{}:{}", one_line(s), state_name(s)),
        };
        write!(
            f,
            "{:<8} {:>4} {:>4} {:<16} {:>4} {:<16} {:<18} {:>5} {:>6}",
            d.device_type,
            d.id,
            d.backend,
            state(&self.backend),
            d.frontend,
            state(&self.frontend),
            self.protocol
                .as_ref()
                .map_or("-".to_owned(), |p| one_line(&p.to_string())),
            self.ring_pages.map_or("-".to_owned(), |p| p.to_string()),
            self.event_channel
                .as_deref()
                .map_or("-".to_owned(), one_line),
        )?;
        for (who, end) in [("backend", &self.backend), ("frontend", &self.frontend)] {
            if let Some(err) = &end.error {
                write!(f, "\n    {who} error: {}", one_line(err))?;
            }
        }
        Ok(())
    }
}

/// The header line matching [`DeviceStatus`]'s `Display`, column for column.
pub fn status_header() -> String {
    format!(
        "{:<8} {:>4} {:>4} {:<16} {:>4} {:<16} {:<18} {:>5} {:>6}",
        "TYPE", "ID", "BE", "BE-STATE", "FE", "FE-STATE", "PROTOCOL", "PAGES", "EVTCH"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_ids_or_names_as_xl_takes_them() {
        assert_eq!("0".parse(), Ok(DomainRef::Id(0)));
        assert_eq!("32751".parse(), Ok(DomainRef::Id(32751)));
        assert_eq!("guest-1".parse(), Ok(DomainRef::Name("guest-1".into())));
        // Not all digits: a name, as libxl reads it.
        assert_eq!("1a".parse(), Ok(DomainRef::Name("1a".into())));
        for bad in ["32752", "65535", "70000", "99999999999"] {
            assert!(
                matches!(bad.parse::<DomainRef>(), Err(BadDomain::OutOfRange(_))),
                "{bad}"
            );
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "a\nb", "\u{7f}", long.as_str()] {
            assert!(
                matches!(bad.parse::<DomainRef>(), Err(BadDomain::BadName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_the_toolstack_or_handshake_writes_are_reserved() {
        for ok in ["params", "mode", "feature-x", "ring", "my_key-2", "State"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for reserved in [
            "state",
            "online",
            "frontend",
            "frontend-id",
            "ring-ref",
            "ring-ref3",
            "ring-page-order",
            "max-ring-page-order",
            "event-channel",
            "protocol",
            "error",
            "xenmq-protocol",
            "xenmq-anything",
        ] {
            assert!(
                matches!(check_key(reserved), Err(Error::ReservedKey(_))),
                "{reserved}"
            );
        }
        for bad in ["", "a/b", "a=b", "a b", "é"] {
            assert!(matches!(check_key(bad), Err(Error::BadKey(_))), "{bad:?}");
        }
    }
}
