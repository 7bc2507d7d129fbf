//! Building the module: wrapper crate, Rust object, Kbuild, checks.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::check::{self, PanicSites};
use crate::headers::Kernel;
use crate::{io, run, Error, Result};

/// The end of the device a module drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A backend module (serves every device of its type attached to it).
    Backend,
    /// A frontend module (connects every device of its type in its domain).
    Frontend,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Build {
    /// The driver crate's directory (holding its `Cargo.toml`).
    pub krate: PathBuf,
    /// The driver type, as a path inside the crate (`back::Mirror`); it
    /// implements the role's trait and `Default`.
    pub driver: String,
    /// The role.
    pub role: Role,
    /// Frontend only: a function of the crate (`check`, `tests::ping`)
    /// run once per connection with the client
    /// (`fn(&mut Client<P, C>) -> Result<u32, xenmq::driver::Error>`).
    pub on_connect: Option<String>,
    /// The xenbus device type the module registers for.
    pub devtype: String,
    /// The module's name (`NAME.ko`).
    pub name: String,
    /// The kernel to build against.
    pub kernel: Kernel,
    /// Where the build happens and the `.ko` is left.
    pub out: PathBuf,
}

/// A built module.
#[derive(Debug, Clone)]
pub struct Module {
    /// The module file.
    pub ko: PathBuf,
    /// The Rust object linked into it.
    pub object: PathBuf,
    /// The panic sites left in the Rust object.
    pub panics: PanicSites,
}

/// This workspace's `xenmq-kernel` and `xenmq` crates.
fn workspace_crate(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

/// The `[package] name` of a crate's manifest.
fn package_name(krate: &Path) -> Result<String> {
    let manifest = krate.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).map_err(io(&manifest))?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if let Some(v) = line.strip_prefix("name").map(str::trim_start) {
            if in_package {
                if let Some(v) = v.strip_prefix('=') {
                    return Ok(v.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    Err(Error::Crate(format!(
        "{}: no [package] name",
        manifest.display()
    )))
}

fn check_ident(what: &str, s: &str, extra: &[char]) -> Result<()> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
    {
        return Err(Error::Crate(format!(
            "{what} {s:?}: only letters, digits and _ allowed"
        )));
    }
    Ok(())
}

/// The flags every crate of the Rust object is built with (the build-std
/// crates too, which is why they go in RUSTFLAGS and not after `--`).
pub const RUSTFLAGS: &[&str] = &[
    "-Crelocation-model=static",
    "-Ccode-model=kernel",
    "-Crelro-level=off",
    "-Cno-redzone=yes",
    "-Ctarget-feature=+harden-sls-ret,+harden-sls-ijmp",
    "-Zretpoline-external-thunk",
    "-Zfunction-return=thunk-extern",
];

/// Builds the module.
pub fn build(b: &Build) -> Result<Module> {
    check_ident("module name", &b.name, &[])?;
    check_ident("device type", &b.devtype, &['-'])?;
    check_ident("driver type", &b.driver, &[':'])?;
    let pkg = package_name(&b.krate)?;
    let krate = fs::canonicalize(&b.krate).map_err(io(&b.krate))?;
    fs::create_dir_all(&b.out).map_err(io(&b.out))?;
    let out = fs::canonicalize(&b.out).map_err(io(&b.out))?;

    // 1. The wrapper crate.
    let wrap = out.join("rust");
    fs::create_dir_all(&wrap).map_err(io(&wrap))?;
    let dep = pkg.replace('-', "_");
    let macro_args = match (b.role, &b.on_connect) {
        (Role::Backend, None) => format!("backend: {dep}::{}", b.driver),
        (Role::Backend, Some(_)) => {
            return Err(Error::Crate("--on-connect is for frontend modules".into()))
        }
        (Role::Frontend, None) => format!("frontend: {dep}::{}", b.driver),
        (Role::Frontend, Some(f)) => {
            check_ident("on-connect function", f, &[':'])?;
            format!("frontend: {dep}::{}, on_connect: {dep}::{f}", b.driver)
        }
    };
    let manifest = format!(
        "[package]\nname = \"xenmq-kmod-{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\npath = \"lib.rs\"\n\n\
         [dependencies]\n{dep} = {{ package = \"{pkg}\", path = {krate:?}, default-features = false }}\n\
         xenmq = {{ path = {xenmq:?}, default-features = false }}\n\
         xenmq-kernel = {{ path = {kernel:?} }}\n\n\
         [profile.release]\npanic = \"abort\"\nlto = true\ncodegen-units = 1\nopt-level = 2\ndebug = false\n\n\
         [workspace]\n",
        name = b.name,
        krate = krate.display().to_string(),
        xenmq = workspace_crate("xenmq").display().to_string(),
        kernel = workspace_crate("xenmq-kernel").display().to_string(),
    );
    fs::write(wrap.join("Cargo.toml"), manifest).map_err(io(&wrap))?;
    let lib = format!(
        "//! The Rust object of the `{name}` module (generated by xenmq-kmod).\n\
         #![no_std]\n\nxenmq_kernel::module!({macro_args});\n",
        name = b.name,
    );
    fs::write(wrap.join("lib.rs"), lib).map_err(io(&wrap))?;

    // 2. The Rust object.
    toolchain()?;
    let object = out.join(format!("{}_rust.o", b.name));
    rust_object(&wrap, &out.join("target"), &object, &dep)?;
    check::no_got(&object)?;
    let panics = check::panic_sites(&object)?;

    // 3. Kbuild.
    let kb = out.join("kbuild");
    fs::create_dir_all(&kb).map_err(io(&kb))?;
    let shim = workspace_crate("xenmq-kernel").join("shim/xenmq_shim.c");
    fs::copy(&shim, kb.join("xenmq_shim.c")).map_err(io(&shim))?;
    fs::copy(&object, kb.join(format!("{}_rust.bin", b.name))).map_err(io(&object))?;
    let backend = u8::from(b.role == Role::Backend);
    let kbuild = format!(
        "# Generated by xenmq-kmod.\n\
         obj-m := {n}.o\n\
         {n}-y := xenmq_shim.o {n}_rust.o\n\
         ccflags-y := -DXENMQ_DEVTYPE='\"{d}\"' -DXENMQ_BACKEND={backend}\n\n\
         # The Rust object is prebuilt: this rule records its .cmd file (which\n\
         # modpost and if_changed read) and runs objtool on it like on a\n\
         # compiled one.\n\
         targets += {n}_rust.o\n\
         quiet_cmd_xenmq_rust = RUSTOBJ $@\n      \
         cmd_xenmq_rust = cp $< $@ $(cmd_objtool)\n\
         $(obj)/{n}_rust.o: $(src)/{n}_rust.bin FORCE\n\t$(call if_changed,xenmq_rust)\n",
        n = b.name,
        d = b.devtype,
    );
    fs::write(kb.join("Kbuild"), kbuild).map_err(io(&kb))?;
    let log = run(
        Command::new("make")
            .arg("-C")
            .arg(&b.kernel.kdir)
            .arg(format!("M={}", kb.display()))
            .arg("modules")
            .env_remove("MAKEFLAGS"),
        "make modules",
    )?;
    let _ = log;
    let ko = kb.join(format!("{}.ko", b.name));
    if !ko.exists() {
        return Err(Error::Failed {
            what: "make modules".into(),
            output: format!("no {} made", ko.display()),
        });
    }
    // objtool prints warnings without failing the build: run it on a fresh
    // copy of the object (the one in the module was annotated already).
    let probe = out.join("objtool-check.o");
    fs::copy(&object, &probe).map_err(io(&object))?;
    objtool_clean(&b.kernel, &probe)?;
    check::gpl(&ko)?;
    Ok(Module { ko, object, panics })
}

/// Checks that `cargo +nightly` works and has the library sources that
/// `-Zbuild-std` compiles.
pub fn toolchain() -> Result<()> {
    let sysroot = run(
        Command::new("rustc").args(["+nightly", "--print", "sysroot"]),
        "rustc +nightly",
    )
    .map_err(|e| {
        Error::Toolchain(format!(
            "no nightly toolchain ({e}); install it with `rustup toolchain install nightly --profile minimal`"
        ))
    })?;
    let core = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core");
    if !core.exists() {
        return Err(Error::Toolchain(format!(
            "{} is missing; add it with `rustup component add rust-src --toolchain nightly`",
            core.display()
        )));
    }
    Ok(())
}

/// Compiles the wrapper crate into one relocatable object.
fn rust_object(wrap: &Path, target: &Path, object: &Path, dep: &str) -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "+nightly",
        "rustc",
        "--release",
        "--lib",
        "--crate-type",
        "staticlib",
    ])
    .args(["--target", "x86_64-unknown-none"])
    .args([
        "-Zbuild-std=core,alloc,compiler_builtins",
        "-Zbuild-std-features=compiler-builtins-mem",
    ])
    .arg("--target-dir")
    .arg(target)
    .arg("--")
    .arg("--emit")
    .arg(format!("obj={}", object.display()))
    .current_dir(wrap)
    .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\x1f"))
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_TARGET_DIR")
    .env_remove("RUSTC_BOOTSTRAP");
    let out = cmd.output().map_err(|source| Error::Tool {
        what: "cargo +nightly rustc".into(),
        source,
    })?;
    if out.status.success() && object.exists() {
        return Ok(());
    }
    let rustc = String::from_utf8_lossy(&out.stderr).into_owned();
    Err(Error::Rust {
        why: explain(&rustc, dep),
        rustc: rustc.trim().to_owned(),
    })
}

/// One line on why rustc refused the wrapper crate.
pub fn explain(rustc: &str, dep: &str) -> String {
    let lines: Vec<&str> = rustc.lines().collect();
    // The crate that asked for std: the file named after the error.
    let at = |i: usize| {
        lines
            .iter()
            .skip(i)
            .take(6)
            .find_map(|l| l.trim().strip_prefix("--> "))
            .map(str::to_owned)
    };
    // cargo names the crate that failed: "could not compile `NAME` (lib)".
    let failed = lines
        .iter()
        .find_map(|l| l.split_once("could not compile `"))
        .and_then(|(_, r)| r.split('`').next())
        .map(|c| format!("crate `{c}`"));
    for (i, l) in lines.iter().enumerate() {
        if l.contains("can't find crate for `std`") {
            let place = at(i)
                .or_else(|| failed.clone())
                .unwrap_or_else(|| "a dependency".into());
            return format!(
                "`std` is needed at {place}: a kernel module has only `core` and `alloc` \
                 (make the driver crate `#![no_std]` + `alloc`, and depend on `xenmq` \
                 with `default-features = false`)"
            );
        }
        if l.contains("unresolved import `std")
            || l.contains("failed to resolve: use of") && l.contains("`std`")
        {
            let place = at(i).unwrap_or_else(|| dep.into());
            return format!(
                "`std` is used at {place}: a kernel module has only `core` and `alloc`"
            );
        }
    }
    match lines.iter().find(|l| l.starts_with("error")) {
        Some(first) => format!("rustc: {first}"),
        None => "cargo failed (see its output below)".into(),
    }
}

/// Runs objtool's module check on `obj`; any warning is an error.
fn objtool_clean(kernel: &Kernel, obj: &Path) -> Result<()> {
    let objtool = kernel.kdir.join("tools/objtool/objtool");
    if !objtool.exists() {
        return Ok(());
    }
    // The checks Kbuild runs for a module object on a RETPOLINE + RETHUNK
    // + SLS kernel (scripts/Makefile.lib's objtool-args).
    let out = Command::new(&objtool)
        .args([
            "--hacks=jump_label",
            "--hacks=noinstr",
            "--orc",
            "--retpoline",
            "--rethunk",
            "--sls",
            "--static-call",
            "--uaccess",
            "--module",
        ])
        .arg(obj)
        .output()
        .map_err(|source| Error::Tool {
            what: "objtool".into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("warning")).collect();
    if out.status.success() && warnings.is_empty() {
        return Ok(());
    }
    Err(Error::Unfit(format!(
        "objtool: {}",
        if warnings.is_empty() {
            text.trim().to_owned()
        } else {
            warnings.join("; ")
        }
    )))
}
