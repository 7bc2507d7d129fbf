//! `xenmq attach`, `xenmq detach` and `xenmq status`: the toolstack's side
//! of custom devices, against any Xenstore (the simulator's or dom0's).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use xenmq_runtime::toolstack::{self, status_header, Detached, Device};
use xenmq_runtime::xenstore::Connection;

pub const ATTACH_USAGE: &str =
    "usage: xenmq attach --frontend-domain N --device TYPE [--id K] [--backend-domain M]
                    [--key NAME=VALUE]... [XENSTORE]";
pub const DETACH_USAGE: &str =
    "usage: xenmq detach --frontend-domain N --device TYPE [--id K] [--backend-domain M]
                    [--timeout SECONDS] [--force] [XENSTORE]";
pub const STATUS_USAGE: &str = "usage: xenmq status [XENSTORE]";
pub const XENSTORE_USAGE: &str =
    "XENSTORE: --run-dir DIR (a `xenmq sim` host) or --xenstore PATH (a socket or
  /dev/xen/xenbus); without either, as libxenstore: $XENSTORED_PATH, else
  $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket, else /dev/xen/xenbus";

/// Why a command failed.
enum Fail {
    /// Bad arguments: the message, then the usage text; exit code 2.
    Usage(String),
    /// The command ran and failed; exit code 1.
    Run(String),
}

impl From<String> for Fail {
    fn from(msg: String) -> Fail {
        Fail::Run(msg)
    }
}

fn usage_err(msg: impl Into<String>) -> Fail {
    Fail::Usage(msg.into())
}

/// Where the Xenstore is, from the flags or the environment.
#[derive(Default)]
struct Target {
    path: Option<PathBuf>,
}

impl Target {
    /// Consumes `--run-dir DIR` / `--xenstore PATH`; false if `flag` is neither.
    fn take(&mut self, flag: &str, value: Option<&String>) -> Result<bool, Fail> {
        let path = match flag {
            "--run-dir" => Path::new(need(flag, value)?).join("socket"),
            "--xenstore" => PathBuf::from(need(flag, value)?),
            _ => return Ok(false),
        };
        self.path = Some(path);
        Ok(true)
    }

    fn resolve(&self) -> PathBuf {
        if let Some(p) = &self.path {
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

    fn connect(&self) -> Result<Connection, String> {
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
        client.map_err(|e| format!("cannot reach a Xenstore at {}: {e}", path.display()))
    }
}

fn need<'a>(flag: &str, value: Option<&'a String>) -> Result<&'a String, Fail> {
    value.ok_or_else(|| usage_err(format!("{flag} needs a value")))
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T, Fail> {
    let v = need(flag, value)?;
    v.parse()
        .map_err(|_| usage_err(format!("{flag}: `{v}` is not a valid number")))
}

struct DeviceArgs {
    device: Device,
    target: Target,
    keys: Vec<(String, String)>,
    timeout: Duration,
    force: bool,
}

fn parse_device(args: &[String], attach: bool) -> Result<DeviceArgs, Fail> {
    let (mut frontend, mut device_type) = (None, None);
    let (mut backend, mut id) = (0u16, 0u32);
    let mut target = Target::default();
    let mut keys = Vec::new();
    let mut timeout = Duration::from_secs(10);
    let mut force = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--force" if !attach => force = true,
            "--frontend-domain" => frontend = Some(number::<u16>(flag, it.next())?),
            "--backend-domain" => backend = number(flag, it.next())?,
            "--device" => device_type = Some(need(flag, it.next())?.clone()),
            "--id" => id = number(flag, it.next())?,
            "--timeout" if !attach => timeout = Duration::from_secs(number(flag, it.next())?),
            "--key" if attach => {
                let kv = need(flag, it.next())?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| usage_err(format!("--key `{kv}` is not NAME=VALUE")))?;
                let valid = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !valid {
                    return Err(usage_err(format!("--key: bad key name `{k}`")));
                }
                keys.push((k.to_owned(), v.to_owned()));
            }
            other => {
                if !target.take(other, it.clone().next())? {
                    return Err(usage_err(format!("unknown argument `{other}`")));
                }
                it.next();
            }
        }
    }
    let frontend = frontend.ok_or_else(|| usage_err("--frontend-domain is required"))?;
    let device_type = device_type.ok_or_else(|| usage_err("--device is required"))?;
    Ok(DeviceArgs {
        device: Device {
            device_type,
            id,
            frontend,
            backend,
        },
        target,
        keys,
        timeout,
        force,
    })
}

fn finish(result: Result<(), Fail>, usage: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Usage(msg)) => {
            eprintln!("xenmq: {msg}\n\n{usage}\n{XENSTORE_USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Run(msg)) => {
            eprintln!("xenmq: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Chains an error's sources into one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// `xenmq attach`.
pub fn attach(args: &[String]) -> ExitCode {
    let run = || -> Result<(), Fail> {
        let a = parse_device(args, true)?;
        let xs = a.target.connect()?;
        toolstack::attach(&xs, &a.device, &a.keys).map_err(|e| chain(&e))?;
        println!(
            "attached {}/{}: frontend {} (domain {}), backend {} (domain {})",
            a.device.device_type,
            a.device.id,
            a.device.frontend_path(),
            a.device.frontend,
            a.device.backend_path(),
            a.device.backend
        );
        Ok(())
    };
    finish(run(), ATTACH_USAGE)
}

/// `xenmq detach`.
pub fn detach(args: &[String]) -> ExitCode {
    let run = || -> Result<(), Fail> {
        let a = parse_device(args, false)?;
        let xs = a.target.connect()?;
        let how = toolstack::detach(&xs, &a.device, a.timeout, a.force).map_err(|e| chain(&e))?;
        let how = match how {
            Detached::Closed => "the backend closed",
            Detached::Removed => "removed without waiting",
        };
        println!(
            "detached {}/{} of domain {}: {how}",
            a.device.device_type, a.device.id, a.device.frontend
        );
        Ok(())
    };
    finish(run(), DETACH_USAGE)
}

/// `xenmq status`.
pub fn status(args: &[String]) -> ExitCode {
    let run = || -> Result<(), Fail> {
        let mut target = Target::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !target.take(flag, it.next())? {
                return Err(usage_err(format!("unknown argument `{flag}`")));
            }
        }
        let xs = target.connect()?;
        let devices = toolstack::devices(&xs).map_err(|e| chain(&e))?;
        if devices.is_empty() {
            println!("no devices");
            return Ok(());
        }
        println!("{}", status_header());
        for d in devices {
            println!("{d}");
        }
        Ok(())
    };
    finish(run(), STATUS_USAGE)
}
