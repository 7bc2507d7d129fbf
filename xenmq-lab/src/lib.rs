//! `xenmq lab`: real Xen under qemu, for testing the Linux platform.
//!
//! [`run`] boots Debian bookworm's Xen 4.17 with Linux 6.1 as a PV dom0
//! under `qemu-system-x86_64` (TCG: no KVM here), creates one PV domU from
//! the same kernel, runs one program in each and reports both outputs and
//! exit codes. Both domains have the real `/dev/xen/{gntalloc,gntdev,evtchn,
//! xenbus}` and dom0 runs the real xenstored.
//!
//! The programs are any x86_64 executables (dynamic ones get the libraries
//! `ldd` names copied in). They run as root in `/lab/dom0` or `/lab/domu`
//! with `XENMQ_LAB_ROLE` (`dom0`/`domu`), `XENMQ_LAB_DOMID` and
//! `XENMQ_LAB_PEER_DOMID`. The domU is created paused, the dom0 program
//! starts, then the domU is unpaused: the two meet through Xenstore (the
//! domU may write under `/local/domain/<domU>/data`).
//!
//! qemu never outlives a run: it is killed when the run ends, times out,
//! fails or is dropped by a panic, and it gets SIGKILL if this process dies.
#![deny(unsafe_code)]

pub mod cli;
pub mod cpio;
pub mod images;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where packages, images and run logs are kept unless told otherwise.
pub const DEFAULT_CACHE: &str = "/var/tmp/xenmq-lab";

/// Errors of the lab. Each failure mode has its own variant, so the CLI can
/// exit with a distinct code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Preparing the host or the images failed.
    #[error("lab set-up failed: {0}")]
    Setup(String),
    /// A host tool could not be run.
    #[error("cannot run {what}")]
    Tool {
        /// The tool.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("i/o error on {what}")]
    Io {
        /// The file or step.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Xen or dom0 did not get as far as creating the domU in time.
    #[error("boot did not reach `{stage}` within {secs} s; last console lines:\n{tail}")]
    BootTimeout {
        /// The stage it was waiting for.
        stage: &'static str,
        /// The limit.
        secs: u64,
        /// The end of the console.
        tail: String,
    },
    /// The run as a whole overran its hard limit (the in-guest timeout did
    /// not fire either).
    #[error("no result within {secs} s; qemu killed; last console lines:\n{tail}")]
    Timeout {
        /// The limit.
        secs: u64,
        /// The end of the console.
        tail: String,
    },
    /// The hypervisor or dom0 crashed (panic, or qemu exited early).
    #[error("the machine crashed ({why}); last console lines:\n{tail}")]
    Crashed {
        /// What was seen.
        why: String,
        /// The end of the console.
        tail: String,
    },
    /// dom0's script gave up (a Xen tool failed).
    #[error("dom0 set-up failed in the guest: {why}; last console lines:\n{tail}")]
    Guest {
        /// What the script said.
        why: String,
        /// The end of the console.
        tail: String,
    },
}

/// Result alias of the lab.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The dom0 program.
    pub dom0: PathBuf,
    /// The domU program.
    pub domu: PathBuf,
    /// Arguments of the dom0 program.
    pub dom0_args: Vec<String>,
    /// Arguments of the domU program.
    pub domu_args: Vec<String>,
    /// A directory copied into both programs' working directories.
    pub files: Option<PathBuf>,
    /// How long both programs together may run, in the guest.
    pub timeout: Duration,
    /// How long until the domU exists (Xen, dom0, xenstored, `xl create`).
    pub boot_timeout: Duration,
    /// Packages, images and run logs.
    pub cache: PathBuf,
    /// Echo the whole console to stderr as it comes.
    pub verbose: bool,
    /// Kernel messages in the guests (default: quiet).
    pub kernel_log: bool,
}

impl Config {
    /// A configuration with the defaults: 120 s for the programs, 150 s to
    /// boot, the cache in [`DEFAULT_CACHE`].
    pub fn new(dom0: impl Into<PathBuf>, domu: impl Into<PathBuf>) -> Self {
        Config {
            dom0: dom0.into(),
            domu: domu.into(),
            dom0_args: Vec::new(),
            domu_args: Vec::new(),
            files: None,
            timeout: Duration::from_secs(120),
            boot_timeout: Duration::from_secs(150),
            cache: std::env::var_os("XENMQ_LAB_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE)),
            verbose: false,
            kernel_log: false,
        }
    }
}

/// How one program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was still running when the in-guest timeout fired.
    TimedOut,
    /// Its domain died without reporting (domU panic or crash).
    Crashed,
}

impl Exit {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::TimedOut => f.write_str("timed out"),
            Exit::Crashed => f.write_str("domain crashed"),
        }
    }
}

/// One side's result.
#[derive(Debug, Clone)]
pub struct Side {
    /// Its stdout and stderr, interleaved, as lines.
    pub output: String,
    /// How it ended.
    pub exit: Exit,
}

/// The result of a run that got as far as running both programs.
#[derive(Debug, Clone)]
pub struct Report {
    /// The dom0 program.
    pub dom0: Side,
    /// The domU program.
    pub domu: Side,
    /// The domU's domid.
    pub domu_id: u32,
    /// Boot stages and when they were reached, from qemu's start.
    pub stages: Vec<(String, Duration)>,
    /// From qemu's start to the result.
    pub total: Duration,
    /// Console log and images of this run.
    pub run_dir: PathBuf,
    /// The domU console's end, when the domU did not report.
    pub domu_console: String,
}

impl Report {
    /// Both programs exited 0.
    pub fn success(&self) -> bool {
        self.dom0.exit.success() && self.domu.exit.success()
    }
}

/// Quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A qemu child killed on drop.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The per-role overlay archive: the program, its libraries, the settings
/// and the extra files (and for dom0, the domU's whole ramdisk).
fn overlay(
    cfg: &Config,
    role: &str,
    prog: &Path,
    settings: &str,
    extra: &[(&str, &[u8])],
) -> Result<Vec<u8>> {
    let mut w = cpio::Writer::new(Vec::new());
    let e = || io_err("cpio");
    let mut made = vec!["lab".to_owned()];
    w.dir("lab", 0o755).map_err(e())?;
    w.dir(&format!("lab/{role}"), 0o755).map_err(e())?;
    if let Some(dir) = &cfg.files {
        w.tree(dir, &format!("lab/{role}/"))
            .map_err(io_err(dir.display().to_string()))?;
    }
    let data = guest_copy(prog)?;
    w.file(&format!("lab/{role}/prog"), 0o755, &data)
        .map_err(e())?;
    w.file("lab/settings", 0o644, settings.as_bytes())
        .map_err(e())?;
    for (name, data) in extra {
        w.file(name, 0o644, data).map_err(e())?;
    }
    // Static programs and scripts have none (ldd says so and lists nothing).
    let libs = images::libraries(&[prog.to_path_buf()], None)?;
    images::add_libs(&mut w, &libs, &mut made)?;
    w.finish().map_err(e())
}

/// The bytes of `prog` as the guest gets them: without debug information
/// (`strip --strip-debug`), which is most of a debug build and would not fit
/// the guests' memory twice over (dom0 carries the domU's ramdisk too). A
/// program `strip` cannot read (a script) goes in as it is; a missing
/// `strip` is a set-up error, since binutils is a documented host need.
fn guest_copy(prog: &Path) -> Result<Vec<u8>> {
    let original = fs::read(prog).map_err(io_err(prog.display().to_string()))?;
    if !original.starts_with(b"\x7fELF") {
        return Ok(original);
    }
    let out = std::env::temp_dir().join(format!(
        "xenmq-lab-strip-{}-{}",
        std::process::id(),
        unique()
    ));
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(prog)
        .status()
        .map_err(|e| Error::Setup(format!("cannot run strip (binutils): {e}")))?;
    let stripped = if status.success() {
        fs::read(&out).map_err(io_err(out.display().to_string()))
    } else {
        Err(Error::Setup(format!(
            "strip --strip-debug {} failed ({status})",
            prog.display()
        )))
    };
    let _ = fs::remove_file(&out);
    stripped
}

/// Boots, runs both programs, and reports. An `Err` means the run did not
/// produce both results (set-up failure, boot timeout, crash); a program
/// failing or timing out is an `Ok` report that is not [`Report::success`].
pub fn run(cfg: &Config) -> Result<Report> {
    for p in [&cfg.dom0, &cfg.domu] {
        if !p.is_file() {
            return Err(Error::Setup(format!("no such program: {}", p.display())));
        }
    }
    images::ensure_qemu()?;
    let img = images::ensure(&cfg.cache)?;
    let runs = cfg.cache.join("runs");
    fs::create_dir_all(&runs).map_err(io_err(runs.display().to_string()))?;
    prune_runs(&runs, 20);
    let run_dir = runs.join(format!("run-{}-{}", std::process::id(), unique()));
    fs::create_dir_all(&run_dir).map_err(io_err(run_dir.display().to_string()))?;
    eprintln!("[lab] run directory {}", run_dir.display());

    let quote_args = |a: &[String]| a.iter().map(|s| sh_quote(s)).collect::<Vec<_>>().join(" ");
    let settings = format!(
        "ARGS0={}\nARGSU={}\nTIMEOUT={}\nDOMU_MEM=256\nDOMU_CMDLINE={}\n",
        sh_quote(&quote_args(&cfg.dom0_args)),
        sh_quote(&quote_args(&cfg.domu_args)),
        cfg.timeout.as_secs().max(1),
        sh_quote(if cfg.kernel_log {
            "loglevel=7"
        } else {
            "quiet loglevel=1"
        }),
    );
    let base = fs::read(&img.base).map_err(io_err(img.base.display().to_string()))?;
    let mut domu_rd = base.clone();
    domu_rd.extend(overlay(cfg, "domu", &cfg.domu, &settings, &[])?);
    let dom0_rd_path = run_dir.join("dom0.cpio");
    {
        let mut f =
            fs::File::create(&dom0_rd_path).map_err(io_err(dom0_rd_path.display().to_string()))?;
        let kernel = fs::read(&img.kernel_cpio).map_err(io_err("kernel.cpio"))?;
        let ov = overlay(
            cfg,
            "dom0",
            &cfg.dom0,
            &settings,
            &[("lab/domu.cpio", &domu_rd)],
        )?;
        for part in [&base[..], &kernel[..], &ov[..]] {
            f.write_all(part)
                .map_err(io_err(dom0_rd_path.display().to_string()))?;
        }
    }
    drop(domu_rd);
    let result = boot(cfg, &img, &dom0_rd_path, &run_dir);
    let _ = fs::remove_file(&dom0_rd_path);
    result
}

/// Removes all but the `keep` newest run directories (console logs).
fn prune_runs(runs: &Path, keep: usize) {
    let Ok(rd) = fs::read_dir(runs) else { return };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep);
    for (_, d) in dirs.into_iter().take(excess) {
        let _ = fs::remove_dir_all(d);
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The stages the console shows, in order, and what marks them.
const STAGES: &[(&str, &str)] = &[
    ("xen", "Xen version 4."),
    ("dom0-kernel", "Linux version 6."),
    ("dom0-init", "@xenmq-lab stage dom0-init"),
    ("xenstore-up", "@xenmq-lab stage xenstore-up"),
    ("domu-created", "@xenmq-lab stage domu-created"),
    ("domu-running", "@xenmq-lab stage domu-running"),
    ("programs-done", "@xenmq-lab stage programs-done"),
];

/// Console lines that mean the machine is going down for good.
const FATAL: &[&str] = &[
    "Panic on CPU",
    "Kernel panic",
    "FATAL TRAP",
    "Reboot in five seconds",
];

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn boot(cfg: &Config, img: &images::Images, initrd: &Path, run_dir: &Path) -> Result<Report> {
    for p in [&img.xen, &img.vmlinux, &initrd.to_path_buf()] {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(' ') {
            return Err(Error::Setup(format!(
                "qemu cannot take a path with ',' or ' ': {s}"
            )));
        }
    }
    let quiet = if cfg.kernel_log {
        "loglevel=7"
    } else {
        "quiet loglevel=1"
    };
    let xen_cmdline =
        format!(
        "console=com1 com1=115200,8n1 bootscrub=false dom0_mem=512M,max:512M dom0_max_vcpus=1{}",
        if cfg.kernel_log { " loglvl=all guest_loglvl=all" } else { "" }
    );
    let modules = format!(
        "{} console=hvc0 earlyprintk=xen rdinit=/init {quiet},{}",
        img.vmlinux.display(),
        initrd.display()
    );
    let stderr_path = run_dir.join("qemu.stderr");
    let stderr =
        fs::File::create(&stderr_path).map_err(io_err(stderr_path.display().to_string()))?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "qemu64",
        "-m",
        "1024",
        "-smp",
        "2",
    ])
    .args([
        "-nodefaults",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
    ])
    .args([
        "-chardev",
        "stdio,id=con,signal=off",
        "-serial",
        "chardev:con",
    ])
    .arg("-kernel")
    .arg(&img.xen)
    .args(["-append", &xen_cmdline, "-initrd", &modules])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(stderr)
    .process_group(0);
    xenmq_sys::process::die_with_parent_after_spawn(&mut cmd);
    let start = Instant::now();
    let mut qemu = Qemu(cmd.spawn().map_err(|source| Error::Tool {
        what: "qemu-system-x86_64".into(),
        source,
    })?);
    let out = qemu
        .0
        .stdout
        .take()
        .ok_or_else(|| Error::Setup("qemu has no stdout".into()))?;

    let (tx, rx) = mpsc::channel::<String>();
    let log_path = run_dir.join("console.log");
    let mut log = fs::File::create(&log_path).map_err(io_err(log_path.display().to_string()))?;
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = log.write_all(&buf);
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\r', '\n'])
                        .to_owned();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let hard = cfg.boot_timeout + cfg.timeout + Duration::from_secs(30);
    let mut w = Watch::default();
    let outcome = loop {
        let now = start.elapsed();
        if !w.reached("domu-created") && now >= cfg.boot_timeout {
            let stage = STAGES
                .iter()
                .map(|s| s.0)
                .find(|s| !w.reached(s))
                .unwrap_or("domu-created");
            break Err(Error::BootTimeout {
                stage,
                secs: cfg.boot_timeout.as_secs(),
                tail: tail(&w.lines, 40),
            });
        }
        if now >= hard {
            break Err(Error::Timeout {
                secs: hard.as_secs(),
                tail: tail(&w.lines, 40),
            });
        }
        let wait = (if w.reached("domu-created") {
            hard
        } else {
            cfg.boot_timeout
        })
        .saturating_sub(now);
        match rx.recv_timeout(wait.min(Duration::from_millis(500))) {
            Ok(line) => {
                if cfg.verbose {
                    eprintln!("{line}");
                }
                if let Some(done) = w.line(line, start.elapsed(), cfg.verbose) {
                    break done;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let why = match &w.fatal {
                    Some((l, _)) => l.clone(),
                    None => "qemu exited before the run finished".to_owned(),
                };
                break Err(Error::Crashed {
                    why,
                    tail: tail(&w.lines, 40),
                });
            }
        }
        if let Some((l, at)) = &w.fatal {
            // Let the panic message finish, then give up.
            if start.elapsed() > *at + Duration::from_secs(3) {
                break Err(Error::Crashed {
                    why: l.clone(),
                    tail: tail(&w.lines, 40),
                });
            }
        }
    };
    drop(qemu); // kills qemu; the reader then sees EOF
    let _ = reader.join();
    let total = start.elapsed();
    match outcome {
        Ok(()) => w.report(total, run_dir),
        Err(e) => Err(e),
    }
}

/// What the console has shown so far.
#[derive(Debug, Default)]
struct Watch {
    lines: Vec<String>,
    stages: Vec<(String, Duration)>,
    dom0_out: Vec<String>,
    domu_out: Vec<String>,
    domu_cons: Vec<String>,
    dom0_exit: Option<Exit>,
    domu_exit: Option<Exit>,
    domu_id: u32,
    timed_out: bool,
    fatal: Option<(String, Duration)>,
}

fn parse_exit(s: &str) -> Exit {
    match s.trim() {
        "timeout" => Exit::TimedOut,
        "crashed" => Exit::Crashed,
        n => n.parse().map(Exit::Code).unwrap_or(Exit::Crashed),
    }
}

impl Watch {
    fn reached(&self, stage: &str) -> bool {
        self.stages.iter().any(|(s, _)| s == stage)
    }

    /// Takes one console line; `Some` when the run is over.
    fn line(&mut self, line: String, at: Duration, verbose: bool) -> Option<Result<()>> {
        for (name, pat) in STAGES {
            if !self.reached(name) && line.contains(pat) {
                if !verbose {
                    eprintln!("[lab] +{:.1}s {name}", at.as_secs_f64());
                }
                self.stages.push(((*name).to_owned(), at));
                if *name == "domu-created" {
                    self.domu_id = line
                        .rsplit(' ')
                        .next()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0);
                }
            }
        }
        if self.fatal.is_none() && FATAL.iter().any(|f| line.contains(f)) {
            self.fatal = Some((line.clone(), at));
        }
        let mut result = None;
        if let Some(rest) = line.strip_prefix("0| ") {
            self.dom0_out.push(rest.to_owned());
        } else if line == "0|" {
            self.dom0_out.push(String::new());
        } else if let Some(rest) = line.strip_prefix("U| ") {
            self.domu_out.push(rest.to_owned());
        } else if line == "U|" {
            self.domu_out.push(String::new());
        } else if let Some(rest) = line.strip_prefix("Ucons| ") {
            self.domu_cons.push(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("@xenmq-lab ") {
            if let Some(v) = rest.strip_prefix("exit-dom0 ") {
                self.dom0_exit = Some(parse_exit(v));
            } else if let Some(v) = rest.strip_prefix("exit-domu ") {
                self.domu_exit = Some(parse_exit(v));
            } else if rest == "timeout" {
                self.timed_out = true;
            } else if let Some(why) = rest.strip_prefix("fail ") {
                result = Some(Err(Error::Guest {
                    why: why.to_owned(),
                    tail: tail(&self.lines, 40),
                }));
            } else if rest == "end" {
                result = Some(Ok(()));
            }
        }
        self.lines.push(line);
        result
    }

    fn report(self, total: Duration, run_dir: &Path) -> Result<Report> {
        let (Some(e0), Some(eu)) = (self.dom0_exit, self.domu_exit) else {
            return Err(Error::Crashed {
                why: "the guest ended without exit codes".into(),
                tail: tail(&self.lines, 40),
            });
        };
        Ok(Report {
            dom0: Side {
                output: self.dom0_out.join("\n"),
                exit: e0,
            },
            domu: Side {
                output: self.domu_out.join("\n"),
                exit: eu,
            },
            domu_id: self.domu_id,
            stages: self.stages,
            total,
            run_dir: run_dir.to_path_buf(),
            domu_console: self.domu_cons.join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_protocol() {
        let mut w = Watch::default();
        let t = Duration::from_secs(1);
        for l in [
            "(XEN) Xen version 4.17.7 (Debian)",
            "@xenmq-lab stage domu-created 3",
            "0| hello from dom0",
            "0|",
            "@xenmq-lab exit-dom0 0",
            "U| it's the domU",
            "@xenmq-lab exit-domu 3",
        ] {
            assert!(w.line(l.to_owned(), t, true).is_none());
        }
        assert!(matches!(
            w.line("@xenmq-lab end".into(), t, true),
            Some(Ok(()))
        ));
        let r = w.report(t, Path::new("/x")).unwrap();
        assert_eq!(r.domu_id, 3);
        assert_eq!(r.dom0.output, "hello from dom0\n");
        assert_eq!(r.domu.output, "it's the domU");
        assert_eq!(r.dom0.exit, Exit::Code(0));
        assert_eq!(r.domu.exit, Exit::Code(3));
        assert!(!r.success());
    }

    #[test]
    fn guest_failure_and_crash_markers() {
        let mut w = Watch::default();
        let t = Duration::ZERO;
        assert!(matches!(
            w.line("@xenmq-lab fail xl create failed".into(), t, true),
            Some(Err(Error::Guest { .. }))
        ));
        let mut w = Watch::default();
        w.line("@xenmq-lab exit-dom0 timeout".into(), t, true);
        w.line("@xenmq-lab exit-domu crashed".into(), t, true);
        w.line("(XEN) Panic on CPU 0:".into(), t, true);
        assert!(w.fatal.is_some());
        assert_eq!(w.dom0_exit, Some(Exit::TimedOut));
        assert_eq!(w.domu_exit, Some(Exit::Crashed));
    }

    #[test]
    fn quoting_survives_the_shell() {
        let args = ["a b", "it's", "$x"];
        let inner = args
            .iter()
            .map(|s| sh_quote(s))
            .collect::<Vec<_>>()
            .join(" ");
        let script = format!(
            "A={}\neval \"set -- $A\"\nprintf '%s\\n' \"$@\"",
            sh_quote(&inner)
        );
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\nit's\n$x\n");
    }
}
