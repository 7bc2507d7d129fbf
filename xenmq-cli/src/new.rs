//! `xenmq new NAME --device TYPE`: writes the skeleton of a split driver
//! crate — messages, backend, frontend, a launcher running both ends on the
//! simulator, and a test of real round trips — that builds and passes its
//! test as generated.
//!
//! The files come from `templates/`, with placeholders replaced:
//! `__CRATE__` (package name), `__LIB__` (its Rust name), `__TYPE__` (the
//! Xenstore device type), `__PROTO__` (the protocol struct), `__XENMQ__`
//! and `__XENMQ_RUNTIME__` (the dependencies' TOML values).
//!
//! The crate depends on `xenmq` and `xenmq-runtime` by version (this
//! tool's `MAJOR.MINOR`), from crates.io or a registry of the user's; with
//! `--xenmq-path` on the crates of a checkout, by the path the user gave
//! (a relative one made relative to the new crate's directory, as cargo
//! reads it). No path of the checkout this tool was built from is written.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crate::fail::Failure;

/// The files of a new crate: path in the crate, template.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/Cargo.toml.in")),
    (".gitignore", "/target\n"),
    ("README.md", include_str!("../templates/README.md.in")),
    ("src/lib.rs", include_str!("../templates/lib.rs.in")),
    ("src/wire.rs", include_str!("../templates/wire.rs.in")),
    ("src/back.rs", include_str!("../templates/back.rs.in")),
    ("src/front.rs", include_str!("../templates/front.rs.in")),
    ("src/main.rs", include_str!("../templates/main.rs.in")),
    ("tests/pair.rs", include_str!("../templates/pair.rs.in")),
    ("tests/launch.rs", include_str!("../templates/launch.rs.in")),
];

/// Longest crate name accepted.
const MAX_NAME: usize = 64;
/// Longest device type `#[xenmq::protocol]` accepts.
const MAX_TYPE: usize = 64;

/// Rust keywords (strict, reserved and edition-dependent): not crate names.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Crate names cargo or the generated code cannot take: the standard
/// crates, cargo's artifact directories, Windows device names, the crates
/// the skeleton depends on, and the modules it imports by name.
const RESERVED_NAMES: &str =
    "std core alloc proc_macro test build deps examples incremental con prn aux nul com1 \
     com2 com3 com4 com5 com6 com7 com8 com9 lpt1 lpt2 lpt3 lpt4 lpt5 lpt6 lpt7 lpt8 lpt9 \
     xenmq xenmq_runtime xenmq_derive xenmq_cli thiserror tempfile zerocopy libc driver toolstack";

/// Type names the skeleton defines or imports, and the standard prelude's:
/// the protocol struct and its `Back`/`Front` types must differ from all of
/// them. (Enum variants are listed too: harmless, and simpler to check.)
const TAKEN_TYPES: &str =
    "AlreadyExists Arc AsMut AsRef AtomicBool AtomicU32 BackDevice Backend Backends BadLength \
     BadOp Body Box Builder Channel Child Client Clone Closed Command Connection Copy Debug \
     Default Device DirBuilder DirBuilderExt Domain Driver Drop Duration Enum Eq Err Error \
     ErrorKind ExitCode Extend File Fn FnMut FnOnce From FrontDevice Frontend Hash Host Instant \
     Into IntoIterator Io Iterator JoinHandle LabBackend LabFrontend Malformed None Now Ok Op \
     Option Ord Ordering OutOfRange Output Pair PartialEq PartialOrd PathBuf Platform Protocol \
     Read Refused Relaxed Reply Request Response Result Role RunDir Self Send SimBack SimFront \
     Sized Some State Status Stop Store String Sync TempDir ToOwned ToString TooLong TryFrom \
     TryInto Tx Unpin Vec Write Xenstore";

/// `xenmq new`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(
    long_about = "Writes a new split driver crate NAME (in ./NAME, or in DIR) for Xenstore \
device type TYPE: wire messages, backend, frontend, a launcher running both ends on the \
simulator (`cargo run`) and a round-trip test (`cargo test`)."
)]
pub struct Args {
    /// The crate's name: a-z, 0-9, `-`, `_`, starting with a letter
    #[arg(value_name = "NAME", value_parser = check_name)]
    name: String,
    /// The Xenstore device type: a-z, 0-9, `-`, `_`, starting with a
    /// letter, at most 64 (the protocol's Rust name is made from it)
    #[arg(long, value_name = "TYPE", value_parser = check_device)]
    device: String,
    /// The ring layout: `compat` (xen/io/ring.h's: a C driver can be the
    /// other end) or `native` (xenmq's own, faster; both ends must be xenmq
    /// drivers)
    #[arg(long, value_name = "LAYOUT", default_value = "compat",
          value_parser = ["compat", "native"])]
    layout: String,
    /// Where to create the crate: a directory that does not exist, in one
    /// that does
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Depend on the xenmq checkout at PATH (holding xenmq/ and
    /// xenmq-runtime/) instead of the crates' released versions
    #[arg(long, value_name = "PATH")]
    xenmq_path: Option<PathBuf>,
}

/// Why `xenmq new` refused or failed.
#[derive(Debug)]
enum Error {
    /// The arguments are refused: the target exists, its parent does not,
    /// the xenmq checkout is not one (exit code 2).
    Refused(String),
    /// Writing the crate failed (exit code 1).
    Io(PathBuf, io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            Error::Refused(msg) => Failure::usage(&["new"], msg),
            Error::Io(path, e) => Failure::run(format!("cannot write `{}`: {e}", path.display())),
        }
    }
}

/// `xenmq new ...`.
pub fn main(a: Args) -> Result<ExitCode, Failure> {
    let dir = generate(&a)?;
    let shown = dir.display();
    println!(
        "created `{}` for device type `{}` in {shown}",
        a.name, a.device
    );
    println!();
    println!("  cd {shown}");
    println!("  cargo run     # backend and frontend as two processes on the simulator");
    println!("  cargo test    # round trips between the two ends");
    Ok(ExitCode::SUCCESS)
}

/// A crate name that cargo accepts and the generated code can use.
fn check_name(name: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("crate name `{name}` {why}"));
    if name.is_empty() || name.len() > MAX_NAME {
        return bad(&format!("must be 1 to {MAX_NAME} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lowercase letter (a-z)");
    }
    if name.contains('/') {
        return bad("is a path: give the crate's name, and its directory with `--path DIR`");
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        return bad(&format!(
            "has {c:?}: use only a-z, 0-9, `-` and `_` (Rust crate names are snake case)"
        ));
    }
    let ident = name.replace('-', "_");
    if KEYWORDS.contains(&ident.as_str()) {
        return bad("is a Rust keyword");
    }
    if RESERVED_NAMES.split_whitespace().any(|n| n == ident) {
        return bad(
            "is reserved (a standard crate, a cargo directory, a Windows device name, \
             or a crate or module the skeleton uses)",
        );
    }
    Ok(name.to_owned())
}

/// A Xenstore device type that `#[xenmq::protocol]` accepts.
fn check_device(device: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("device type `{device}` {why}"));
    if device.is_empty() || device.len() > MAX_TYPE {
        return bad(&format!("must be 1 to {MAX_TYPE} characters"));
    }
    if !device.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lowercase letter (a-z)");
    }
    if let Some(c) = device
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        return bad(&format!(
            "has {c:?}: a Xenstore device type uses only a-z, 0-9, `-` and `_`"
        ));
    }
    Ok(device.to_owned())
}

/// The protocol struct's name: the device type in CamelCase (`vkv` →
/// `Vkv`, `my-dev` → `MyDev`), or with `Dev` appended where that (or its
/// `Back`/`Front` types) would clash with a name the skeleton uses.
fn protocol_name(device: &str) -> String {
    let mut camel = String::new();
    for part in device.split(['-', '_']).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            camel.push(first.to_ascii_uppercase());
            camel.extend(chars);
        }
    }
    let clashes = |p: &str| {
        [p.to_owned(), format!("{p}Back"), format!("{p}Front")]
            .iter()
            .any(|n| TAKEN_TYPES.split_whitespace().any(|t| t == n))
    };
    if clashes(&camel) {
        camel.push_str("Dev");
    }
    camel
}

/// The contents of a TOML basic string holding `s`.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Where the crate's `xenmq` and `xenmq-runtime` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Deps {
    /// A registry, by this version requirement.
    Version(String),
    /// A checkout's crates, at this path (absolute, or relative to the new
    /// crate's directory).
    Path(PathBuf),
}

/// This tool's `MAJOR.MINOR`: the version requirement of the crates it
/// generates code for.
fn version_req() -> String {
    let mut parts = env!("CARGO_PKG_VERSION").split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The dependencies of a crate to be created in `dir`: `given` is the
/// checkout the user named, if any; it must hold the `xenmq` and
/// `xenmq-runtime` crates.
fn deps(given: Option<&Path>, dir: &Path) -> Result<Deps, Error> {
    let Some(root) = given else {
        return Ok(Deps::Version(version_req()));
    };
    for krate in ["xenmq", "xenmq-runtime"] {
        if !root.join(krate).join("Cargo.toml").is_file() {
            return Err(Error::Refused(format!(
                "`{}` holds no {krate}/Cargo.toml; pass --xenmq-path with the root of a \
                 xenmq checkout",
                root.display()
            )));
        }
    }
    if root.is_absolute() {
        return Ok(Deps::Path(root.to_owned()));
    }
    // Relative to here, as the user gave it: cargo reads it relative to
    // the manifest, so go from the new crate's directory to the checkout.
    let resolve = |p: &Path| {
        p.canonicalize()
            .map_err(|e| Error::Refused(format!("cannot resolve `{}`: {e}", p.display())))
    };
    let root = resolve(root)?;
    let parent = match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => resolve(p)?,
        None => resolve(Path::new("."))?,
    };
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Refused(format!("`{}` names no directory", dir.display())))?;
    Ok(Deps::Path(relative(&root, &parent.join(name))))
}

/// `to`, relative to directory `from` (both absolute, without `.` or `..`).
fn relative(to: &Path, from: &Path) -> PathBuf {
    let (to, from): (Vec<_>, Vec<_>) = (to.components().collect(), from.components().collect());
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in to.iter().skip(common) {
        out.push(c);
    }
    out
}

/// The files of the crate, placeholders replaced.
fn render(name: &str, device: &str, layout: &str, deps: &Deps) -> Vec<(&'static str, String)> {
    let proto = protocol_name(device);
    let lib = name.replace('-', "_");
    let dep = |krate: &str| match deps {
        Deps::Version(v) => format!("\"{}\"", toml_str(v)),
        Deps::Path(root) => format!(
            "{{ path = \"{}\", version = \"{}\" }}",
            toml_str(&root.join(krate).to_string_lossy()),
            toml_str(&version_req())
        ),
    };
    FILES
        .iter()
        .map(|&(path, template)| {
            let text = template
                .replace("__XENMQ_RUNTIME__", &dep("xenmq-runtime"))
                .replace("__XENMQ__", &dep("xenmq"))
                .replace("__CRATE__", name)
                .replace("__LIB__", &lib)
                .replace("__TYPE__", device)
                .replace("__LAYOUT__", layout)
                .replace("__PROTO__", &proto);
            (path, text)
        })
        .collect()
}

fn generate(args: &Args) -> Result<PathBuf, Error> {
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.symlink_metadata().is_ok() {
        return Err(exists(&dir));
    }
    // The crate's directory is created, not its parents: a parent that is
    // missing is more likely a typo than a wish.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Err(e) = parent.symlink_metadata() {
            if e.kind() == io::ErrorKind::NotFound {
                return Err(Error::Refused(format!(
                    "`{}` does not exist: create it first, or choose another --path",
                    parent.display()
                )));
            }
        }
    }
    let deps = deps(args.xenmq_path.as_deref(), &dir)?;
    let files = render(&args.name, &args.device, &args.layout, &deps);
    // `create_dir`, not `create_dir_all`: fails if the directory appeared
    // since the check above, so nothing is ever overwritten.
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => exists(&dir),
        _ => Error::Io(dir.clone(), e),
    })?;
    if let Err(e) = write_files(&dir, &files) {
        // The directory is ours (created above): leave no half crate.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    format_sources(&dir, &files);
    Ok(dir)
}

fn exists(dir: &Path) -> Error {
    Error::Refused(format!(
        "`{}` already exists; not overwriting it (choose another NAME or --path)",
        dir.display()
    ))
}

fn write_files(dir: &Path, files: &[(&str, String)]) -> Result<(), Error> {
    for (path, text) in files {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::Io(parent.to_owned(), e))?;
        }
        std::fs::write(&file, text).map_err(|e| Error::Io(file.clone(), e))?;
    }
    Ok(())
}

/// Runs rustfmt over the Rust files, so that names of any length leave
/// them formatted; without rustfmt they stay as the templates have them.
fn format_sources(dir: &Path, files: &[(&str, String)]) {
    let sources = files
        .iter()
        .filter(|(path, _)| path.ends_with(".rs"))
        .map(|(path, _)| dir.join(path));
    let status = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .args(sources)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Ok(status) = status {
        if !status.success() {
            eprintln!("xenmq new: note: rustfmt failed ({status}); the files are unformatted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `xenmq new LINE...` through clap.
    fn parse(line: &[&str]) -> Result<Args, String> {
        #[derive(Debug, clap::Parser)]
        struct New {
            #[command(flatten)]
            args: Args,
        }
        use clap::Parser;
        let argv = std::iter::once("new").chain(line.iter().copied());
        New::try_parse_from(argv)
            .map(|n| n.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_flags_in_any_order_and_with_equals() {
        let a = parse(&["--device", "vkv", "my-drv", "--path=/tmp/x"]).unwrap();
        assert_eq!(a.name, "my-drv");
        assert_eq!(a.device, "vkv");
        assert_eq!(a.layout, "compat");
        assert_eq!(a.path, Some(PathBuf::from("/tmp/x")));
        let a = parse(&["d", "--device", "v", "--layout=native"]).unwrap();
        assert_eq!(a.layout, "native");
        assert_eq!(a.xenmq_path, None);
    }

    #[test]
    fn refuses_bad_command_lines() {
        for (line, says) in [
            (&["vkv"][..], "--device <TYPE>"),
            (&["--device", "vkv"][..], "<NAME>"),
            (
                &["a", "b", "--device", "vkv"][..],
                "unexpected argument 'b'",
            ),
            (
                &["a", "--device"][..],
                "a value is required for '--device <TYPE>'",
            ),
            (&["a", "--device="][..], "must be 1 to 64 characters"),
            (
                &["a", "--device", "x", "--device", "y"][..],
                "cannot be used multiple times",
            ),
            (
                &["a", "--device", "x", "--layout", "ring.h"][..],
                "invalid value 'ring.h' for '--layout <LAYOUT>'",
            ),
            (
                &["a", "--device", "x", "--force"][..],
                "unexpected argument '--force'",
            ),
        ] {
            match parse(line) {
                Err(msg) => assert!(msg.contains(says), "{line:?}: {msg}"),
                other => panic!("{line:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn crate_names() {
        for ok in ["a", "vkv-driver", "my_drv2", "x-1-y"] {
            assert_eq!(check_name(ok), Ok(ok.to_owned()), "{ok}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        for (bad, says) in [
            ("", "1 to 64"),
            (long.as_str(), "1 to 64"),
            ("1abc", "lowercase letter"),
            ("-abc", "lowercase letter"),
            ("Vkv", "lowercase letter"),
            ("vKv", "'K'"),
            ("a b", "' '"),
            ("a/b", "is a path"),
            ("a.b", "'.'"),
            ("é", "lowercase letter"),
            ("fn", "keyword"),
            ("self", "keyword"),
            ("std", "reserved"),
            ("test", "reserved"),
            ("build", "reserved"),
            ("xenmq", "reserved"),
            ("xenmq-runtime", "reserved"),
            ("nul", "reserved"),
        ] {
            match check_name(bad) {
                Err(msg) => assert!(msg.contains(says), "{bad:?}: {msg}"),
                Ok(_) => panic!("{bad:?} accepted"),
            }
        }
    }

    #[test]
    fn device_types() {
        for ok in ["vif", "vbd", "vkv", "my-dev_2", "x9"] {
            assert_eq!(check_device(ok), Ok(ok.to_owned()), "{ok}");
        }
        let long = "a".repeat(MAX_TYPE + 1);
        for (bad, says) in [
            ("", "1 to 64"),
            (long.as_str(), "1 to 64"),
            ("9pfs", "lowercase letter"),
            ("Vif", "lowercase letter"),
            ("v/f", "'/'"),
            ("v f", "' '"),
            ("vif\n", "'\\n'"),
        ] {
            match check_device(bad) {
                Err(msg) => assert!(msg.contains(says), "{bad:?}: {msg}"),
                Ok(_) => panic!("{bad:?} accepted"),
            }
        }
    }

    #[test]
    fn protocol_names_avoid_clashes() {
        assert_eq!(protocol_name("vkv"), "Vkv");
        assert_eq!(protocol_name("my-dev_2"), "MyDev2");
        assert_eq!(protocol_name("a--b"), "AB");
        // `Status`, and `Sim` whose `SimFront` the launcher imports.
        assert_eq!(protocol_name("status"), "StatusDev");
        assert_eq!(protocol_name("sim"), "SimDev");
        assert_eq!(protocol_name("self"), "SelfDev");
    }

    #[test]
    fn taken_types_cover_the_templates() {
        for (path, template) in FILES.iter().filter(|(p, _)| p.ends_with(".rs")) {
            let code: Vec<&str> = template
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect();
            let code = code.join("\n");
            let words = code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for word in words.filter(|w| !w.contains("__")) {
                let camel = word.starts_with(|c: char| c.is_ascii_uppercase())
                    && word.contains(|c: char| c.is_ascii_lowercase());
                assert!(
                    !camel || TAKEN_TYPES.split_whitespace().any(|t| t == word),
                    "{path}: `{word}` is not in TAKEN_TYPES"
                );
            }
        }
    }

    #[test]
    fn dependencies_by_version_or_path() {
        let manifest = |deps: &Deps| {
            render("d", "vkv", "compat", deps)
                .into_iter()
                .find(|(p, _)| *p == "Cargo.toml")
                .map(|(_, t)| t)
                .unwrap()
        };
        let v = version_req();
        assert_eq!(v.split('.').count(), 2, "{v}");
        let m = manifest(&Deps::Version(v.clone()));
        assert!(m.contains(&format!("\nxenmq = \"{v}\"\n")), "{m}");
        assert!(m.contains(&format!("\nxenmq-runtime = \"{v}\"\n")), "{m}");
        let m = manifest(&Deps::Path("../../co".into()));
        assert!(
            m.contains(&format!(
                "\nxenmq = {{ path = \"../../co/xenmq\", version = \"{v}\" }}\n"
            )),
            "{m}"
        );
        assert_eq!(
            relative(Path::new("/a/co"), Path::new("/a/b/c/drv")),
            Path::new("../../../co")
        );
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/b/drv")),
            Path::new("..")
        );
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str(r#"/a "b"\c"#), r#"/a \"b\"\\c"#);
        assert_eq!(toml_str("a\tb"), "a\\u0009b");
    }

    #[test]
    fn every_placeholder_is_replaced() {
        let deps = [Deps::Version("0.1".into()), Deps::Path("../x".into())];
        for (layout, deps) in [("compat", &deps[0]), ("native", &deps[1])] {
            for (path, text) in render("my-drv", "my-dev", layout, deps) {
                assert!(!text.contains("__"), "{path}: {text}");
                if path == "src/lib.rs" {
                    assert!(text.contains(&format!("layout = {layout}\n")), "{text}");
                }
            }
        }
    }
}
