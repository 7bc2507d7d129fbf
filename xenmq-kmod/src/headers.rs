//! A kernel's build tree (headers, `.config`, `Module.symvers`, kbuild
//! scripts): given, or Debian's fetched with `apt-get download` and
//! unpacked with `dpkg-deb -x` into a cache directory (no root needed
//! beyond what `apt-get download` itself needs, nothing installed).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run, Error, Result};

/// A kernel to build against.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The release (`uname -r`), e.g. `6.1.0-57-amd64`.
    pub release: String,
    /// The build tree (`make -C` goes here).
    pub kdir: PathBuf,
}

/// The kernel release Debian's `linux-headers-amd64` points at.
pub fn debian_release() -> Result<String> {
    let parse = |out: &str| {
        out.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: linux-headers-"))
            .find(|r| r.ends_with("-amd64"))
            .map(str::to_owned)
    };
    let out = run(
        Command::new("apt-cache").args(["depends", "linux-headers-amd64"]),
        "apt-cache depends",
    )?;
    if let Some(r) = parse(&out) {
        return Ok(r);
    }
    run(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update",
    )?;
    let out = run(
        Command::new("apt-cache").args(["depends", "linux-headers-amd64"]),
        "apt-cache depends",
    )?;
    parse(&out).ok_or_else(|| Error::Headers("apt-cache names no linux-headers-*-amd64".into()))
}

/// Debian's build tree for `release` (`6.1.0-N-amd64`) under `cache`,
/// fetched and unpacked if absent.
pub fn debian(cache: &Path, release: &str) -> Result<Kernel> {
    let abi = release
        .strip_suffix("-amd64")
        .ok_or_else(|| Error::Headers(format!("{release}: not a Debian amd64 kernel release")))?;
    // 6.1.0-57 -> linux-kbuild-6.1
    let series = abi.split('.').take(2).collect::<Vec<_>>().join(".");
    let root = cache.join(format!("headers-{release}"));
    let kdir = root.join(format!("usr/src/linux-headers-{release}"));
    let kernel = Kernel {
        release: release.to_owned(),
        kdir: kdir.clone(),
    };
    if root.join(".done").exists() {
        return Ok(kernel);
    }
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).map_err(crate::io(&debs))?;
    let pkgs = [
        format!("linux-headers-{release}"),
        format!("linux-headers-{abi}-common"),
        format!("linux-kbuild-{series}"),
    ];
    let missing: Vec<&String> = pkgs.iter().filter(|p| deb(&debs, p).is_none()).collect();
    if !missing.is_empty() {
        eprintln!("[kmod] apt-get download {}", pkgs.join(" "));
        let mut cmd = Command::new("apt-get");
        cmd.arg("download").args(&missing).current_dir(&debs);
        if run(&mut cmd, "apt-get download").is_err() {
            run(
                Command::new("apt-get").args(["update", "-qq"]),
                "apt-get update",
            )?;
            run(&mut cmd, "apt-get download")?;
        }
    }
    // Unpack privately, then rename: a concurrent build never sees half a tree.
    let tmp = cache.join(format!("headers-{release}.tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(crate::io(&tmp))?;
    for p in &pkgs {
        let d = deb(&debs, p)
            .ok_or_else(|| Error::Headers(format!("{p}: not downloaded by apt-get")))?;
        run(
            Command::new("dpkg-deb").arg("-x").arg(&d).arg(&tmp),
            "dpkg-deb -x",
        )?;
    }
    // The arch tree's Makefile includes the common tree by its installed
    // path (/usr/src/...): point it into the cache instead.
    let mk = tmp.join(format!("usr/src/linux-headers-{release}/Makefile"));
    let text = fs::read_to_string(&mk).map_err(crate::io(&mk))?;
    let fixed = text.replace(
        "include /usr/src/",
        &format!("include {}/usr/src/", root.display()),
    );
    fs::write(&mk, fixed).map_err(crate::io(&mk))?;
    fs::write(tmp.join(".done"), b"").map_err(crate::io(&tmp))?;
    if fs::rename(&tmp, &root).is_err() {
        let _ = fs::remove_dir_all(&tmp);
        if !root.join(".done").exists() {
            return Err(Error::Headers(format!(
                "cannot move headers to {}",
                root.display()
            )));
        }
    }
    Ok(kernel)
}

/// The downloaded `.deb` of `pkg` in `dir`.
pub fn deb(dir: &Path, pkg: &str) -> Option<PathBuf> {
    let prefix = format!("{pkg}_");
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
}

/// A build tree given by the user: it must hold a `.config` and a
/// `Module.symvers`.
pub fn given(kdir: &Path) -> Result<Kernel> {
    for f in [".config", "Module.symvers", "Makefile"] {
        if !kdir.join(f).exists() {
            return Err(Error::Headers(format!(
                "{}: no {f} (not a kernel build tree)",
                kdir.display()
            )));
        }
    }
    let rel = kdir.join("include/config/kernel.release");
    let release = fs::read_to_string(&rel)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Ok(Kernel {
        release,
        kdir: kdir.to_owned(),
    })
}
