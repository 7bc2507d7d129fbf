//! `xenmq attach`, `xenmq detach` and `xenmq status`: the toolstack's side
//! of custom devices, against any Xenstore (the simulator's or dom0's).
//! Domains are named as `xl` takes them: by id or by name.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use std::collections::BTreeMap;

use serde::Serialize;
use xenmq::xenstore::{Store, Tx};
use xenmq_runtime::toolstack::{
    self, state_name, status_header, Detached, Device, DeviceStatus, DomainRef, End,
};
use xenmq_runtime::xenstore::Connection;

use crate::fail::Failure;

const XENSTORE_HELP: &str =
    "Without --run-dir or --xenstore, the Xenstore is found as libxenstore finds \
it: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket, else \
/dev/xen/xenbus.";

/// Where the Xenstore is.
#[derive(Debug, clap::Args)]
pub struct Xenstore {
    /// The run directory of a `xenmq sim` host (its Xenstore is DIR/socket)
    #[arg(long, value_name = "DIR", conflicts_with = "xenstore")]
    run_dir: Option<PathBuf>,
    /// A Xenstore: xenstored's socket, or /dev/xen/xenbus in a guest
    #[arg(long, value_name = "PATH")]
    xenstore: Option<PathBuf>,
}

impl Xenstore {
    fn resolve(&self) -> PathBuf {
        if let Some(dir) = &self.run_dir {
            return dir.join("socket");
        }
        if let Some(p) = &self.xenstore {
            return p.clone();
        }
        if let Some(p) = std::env::var_os("XENSTORED_PATH") {
            return PathBuf::from(p);
        }
        if let Some(dir) = std::env::var_os("XENSTORED_RUNDIR") {
            return Path::new(&dir).join("socket");
        }
        let socket = Path::new("/var/run/xenstored/socket");
        if socket.exists() {
            return socket.to_owned();
        }
        PathBuf::from("/dev/xen/xenbus")
    }

    pub(crate) fn connect(&self) -> Result<Connection, Failure> {
        let path = self.resolve();
        let is_socket = {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(&path)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false)
        };
        let client = if is_socket {
            Connection::connect(&path)
        } else {
            // A guest's /dev/xen/xenbus: one file, read and written.
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .and_then(|f| {
                    let w = f.try_clone()?;
                    Connection::new(f, w)
                })
        };
        client.map_err(|e| {
            Failure::run(format!(
                "cannot reach a Xenstore at {}: {e}",
                path.display()
            ))
        })
    }
}

/// A device type that the toolstack accepts.
fn device_type(s: &str) -> Result<String, toolstack::Error> {
    let dev = Device {
        device_type: s.to_owned(),
        id: 0,
        frontend: 0,
        backend: 0,
    };
    dev.validate()?;
    Ok(dev.device_type)
}

/// `NAME=VALUE`, with a NAME the toolstack lets a user set.
fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    toolstack::check_key(k).map_err(|e| e.to_string())?;
    Ok((k.to_owned(), v.to_owned()))
}

/// Which device: the frontend's domain, the type, the id and the backend's
/// domain.
#[derive(Debug, clap::Args)]
pub struct Which {
    /// The frontend's domain: its id, or its name
    #[arg(value_name = "DOMAIN")]
    domain: DomainRef,
    /// The device type: the directory under `device/` and `backend/` (e.g. vkv)
    #[arg(value_name = "TYPE", value_parser = device_type)]
    device_type: String,
    /// The device's id among the frontend's devices of its type
    #[arg(long, value_name = "K", default_value_t = 0)]
    id: u32,
    /// The backend's domain: its id, or its name
    #[arg(long, value_name = "DOMAIN", default_value = "0")]
    backend: DomainRef,
}

impl Which {
    /// The device, its domains looked up in the Xenstore as libxl would:
    /// names are resolved, and with `must_exist` an id must name a domain
    /// too (`detach` takes the id of a domain that is gone, to remove what
    /// it left behind).
    fn resolve(
        &self,
        xs: &Connection,
        verb: &'static str,
        must_exist: bool,
    ) -> Result<Device, Failure> {
        let id = |d: &DomainRef| {
            if let (DomainRef::Id(id), false) = (d, must_exist) {
                return Ok(*id);
            }
            toolstack::domain_id(xs, d).map_err(|e| match e {
                toolstack::Error::NoDomain(_) | toolstack::Error::AmbiguousName(..) => {
                    Failure::usage(&[verb], e.to_string())
                }
                e => Failure::run(e),
            })
        };
        Ok(Device {
            device_type: self.device_type.clone(),
            id: self.id,
            frontend: id(&self.domain)?,
            backend: id(&self.backend)?,
        })
    }
}

/// `xenmq attach`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = XENSTORE_HELP)]
pub struct AttachArgs {
    #[command(flatten)]
    which: Which,
    /// A key for the backend directory, the driver's configuration
    /// (repeatable); keys the toolstack or the handshake writes are refused
    #[arg(long = "key", value_name = "NAME=VALUE", value_parser = key_value)]
    keys: Vec<(String, String)>,
    #[command(flatten)]
    xenstore: Xenstore,
}

/// `xenmq detach`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = XENSTORE_HELP)]
pub struct DetachArgs {
    #[command(flatten)]
    which: Which,
    /// How long to wait for the backend to close, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// Remove the directories without asking the backend to close
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    xenstore: Xenstore,
}

/// `xenmq status`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = XENSTORE_HELP)]
pub struct StatusArgs {
    /// Only the devices with an end in this domain: its id, or its name
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<DomainRef>,
    /// Print one JSON document (errors too: `{"error": "..."}`)
    #[arg(long)]
    pub json: bool,
    /// Exit with 3 when an end of a listed device wrote an `error` node
    #[arg(long)]
    fail_on_error: bool,
    #[command(flatten)]
    xenstore: Xenstore,
}

/// The exit code of `status --fail-on-error` when a device is in error:
/// apart from 1, a failure to list the devices at all.
const IN_ERROR: u8 = 3;

/// `xenmq attach`.
pub fn attach(a: AttachArgs) -> Result<ExitCode, Failure> {
    let xs = a.xenstore.connect()?;
    let dev = a.which.resolve(&xs, "attach", true)?;
    toolstack::attach(&xs, &dev, &a.keys).map_err(Failure::run)?;
    println!(
        "attached {}/{}: frontend {} (domain {}), backend {} (domain {})",
        dev.device_type,
        dev.id,
        dev.frontend_path(),
        dev.frontend,
        dev.backend_path(),
        dev.backend
    );
    Ok(ExitCode::SUCCESS)
}

/// `xenmq detach`.
pub fn detach(a: DetachArgs) -> Result<ExitCode, Failure> {
    let xs = a.xenstore.connect()?;
    let dev = a.which.resolve(&xs, "detach", false)?;
    let timeout = Duration::from_secs(a.timeout);
    let how = toolstack::detach(&xs, &dev, timeout, a.force).map_err(Failure::run)?;
    let how = match how {
        Detached::Closed => "the backend closed",
        Detached::Removed => "removed without waiting",
    };
    println!(
        "detached {}/{} of domain {}: {how}",
        dev.device_type, dev.id, dev.frontend
    );
    Ok(ExitCode::SUCCESS)
}

/// `xenmq status --json`'s document.
#[derive(Debug, Serialize)]
struct StatusJson {
    devices: Vec<DeviceJson>,
}

/// One device in `xenmq status --json`.
#[derive(Debug, Serialize)]
struct DeviceJson {
    #[serde(rename = "type")]
    device_type: String,
    id: u32,
    backend: EndJson,
    frontend: EndJson,
    /// Published by the backend, else by the frontend.
    protocol: Option<ProtocolJson>,
    ring_pages: Option<u32>,
    /// As the frontend wrote it.
    event_channel: Option<String>,
}

#[derive(Debug, Serialize)]
struct ProtocolJson {
    name: String,
    version: String,
    layout: String,
}

/// One end of a device in `xenmq status --json`.
#[derive(Debug, Serialize)]
struct EndJson {
    domain: u16,
    /// The domain's `name`, if it has one.
    domain_name: Option<String>,
    /// The directory the toolstack made for this end.
    path: String,
    /// Whether that directory exists.
    exists: bool,
    /// The XenbusState number; `None` if no `state` key or not a number.
    state: Option<u32>,
    /// Its name (`invalid` for a `state` that is not a XenbusState).
    state_name: Option<&'static str>,
    /// The `state` key as written.
    state_text: Option<String>,
    /// The `error` node's text.
    error: Option<String>,
}

/// Domain names, each read once.
struct Names<'a> {
    xs: &'a Connection,
    seen: BTreeMap<u16, Option<String>>,
}

impl Names<'_> {
    fn get(&mut self, domid: u16) -> Option<String> {
        let xs = self.xs;
        self.seen
            .entry(domid)
            .or_insert_with(|| {
                xs.read(Tx::NONE, &format!("/local/domain/{domid}/name"))
                    .ok()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            })
            .clone()
    }
}

fn end_json(end: &End, domain: u16, path: String, names: &mut Names<'_>) -> EndJson {
    EndJson {
        domain,
        domain_name: names.get(domain),
        path,
        exists: end.path.is_some(),
        state: end.state.as_deref().and_then(|s| s.parse().ok()),
        state_name: end.state.as_deref().map(state_name),
        state_text: end.state.clone(),
        error: end.error.clone(),
    }
}

fn device_json(st: &DeviceStatus, names: &mut Names<'_>) -> DeviceJson {
    let d = &st.device;
    DeviceJson {
        device_type: d.device_type.clone(),
        id: d.id,
        backend: end_json(&st.backend, d.backend, d.backend_path(), names),
        frontend: end_json(&st.frontend, d.frontend, d.frontend_path(), names),
        protocol: st.protocol.as_ref().map(|p| ProtocolJson {
            name: p.name.clone(),
            version: p.version.clone(),
            layout: p.layout.clone(),
        }),
        ring_pages: st.ring_pages,
        event_channel: st.event_channel.clone(),
    }
}

/// Prints a value as JSON on stdout, one document and a newline.
pub fn print_json(v: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(Failure::run)?;
    println!("{text}");
    Ok(())
}

/// `xenmq status`.
pub fn status(a: StatusArgs) -> Result<ExitCode, Failure> {
    let xs = a.xenstore.connect()?;
    let mut devices = toolstack::devices(&xs).map_err(Failure::run)?;
    if let Some(d) = &a.domain {
        // An id need not name a live domain: what a dead one left behind
        // is worth seeing.
        let id = match d {
            DomainRef::Id(id) => *id,
            DomainRef::Name(_) => toolstack::domain_id(&xs, d).map_err(|e| match e {
                toolstack::Error::NoDomain(_) | toolstack::Error::AmbiguousName(..) => {
                    Failure::usage(&["status"], e.to_string())
                }
                e => Failure::run(e),
            })?,
        };
        devices.retain(|s| s.device.frontend == id || s.device.backend == id);
    }
    let in_error = devices
        .iter()
        .filter(|s| s.backend.error.is_some() || s.frontend.error.is_some())
        .count();
    if a.json {
        let mut names = Names {
            xs: &xs,
            seen: BTreeMap::new(),
        };
        let devices = devices.iter().map(|s| device_json(s, &mut names)).collect();
        print_json(&StatusJson { devices })?;
    } else if devices.is_empty() {
        println!("no devices");
    } else {
        println!("{}", status_header());
        for d in devices {
            println!("{d}");
        }
    }
    if a.fail_on_error && in_error > 0 {
        if !a.json {
            eprintln!("xenmq status: {in_error} device(s) in error");
        }
        return Ok(ExitCode::from(IN_ERROR));
    }
    Ok(ExitCode::SUCCESS)
}
