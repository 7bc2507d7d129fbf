//! The boot images: Debian bookworm's Xen 4.17 hypervisor, its Linux 6.1
//! kernel (booted as dom0 and as the PV domU), and the initramfs holding
//! busybox, the Xen tools and our `/init`.
//!
//! Packages come from the distribution with `apt-get download` (never
//! installed on the host) and are unpacked under the cache directory, which
//! also keeps the built images between runs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cpio;
use crate::{Error, Result};

/// The guest's `/init` (ours, under `lab/` at the repository root).
pub const INIT: &str = include_str!("../../lab/init.sh");

const XEN_VER: &str = "4.17";

/// Packages besides the kernel: the hypervisor, busybox, and the Xen tools
/// with the libraries they link.
const PACKAGES: &[&str] = &[
    "xen-hypervisor-4.17-amd64",
    "busybox-static",
    "xen-utils-4.17",
    "xenstore-utils",
    "libxencall1",
    "libxendevicemodel1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenhypfs1",
    "libxenmisc4.17",
    "libxenstore4",
    "libxentoolcore1",
    "libxentoollog1",
    "libyajl2",
];

/// The Xen driver modules `/init` loads (none is built into Debian's kernel).
const MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xenfs",
];

/// Xen tools copied from `/usr/lib/xen-4.17/bin` (libxl expects that path).
const TOOLS: &[&str] = &["xl", "xenstored", "xenconsoled", "xen-init-dom0"];

/// Names under which `/usr/bin/xenstore` acts as one command.
const XENSTORE_CMDS: &[&str] = &[
    "read", "write", "exists", "ls", "list", "rm", "chmod", "watch",
];

/// The built images.
#[derive(Debug, Clone)]
pub struct Images {
    /// The multiboot hypervisor (plain ELF).
    pub xen: PathBuf,
    /// The kernel as an uncompressed ELF (un-xz-ing under TCG is slow).
    pub vmlinux: PathBuf,
    /// The shared initramfs (uncompressed newc: libxc would try to gunzip
    /// a PV ramdisk, and copying beats inflating under TCG).
    pub base: PathBuf,
    /// A cpio holding `lab/vmlinux`, for dom0 to boot the domU from.
    pub kernel_cpio: PathBuf,
}

fn tool(cmd: &mut Command, what: &str) -> Result<std::process::Output> {
    let out = cmd.output().map_err(|source| Error::Tool {
        what: what.to_owned(),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Installs `qemu-system-x86` with apt-get unless `qemu-system-x86_64` is
/// on PATH.
pub fn ensure_qemu() -> Result<()> {
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok()
    {
        return Ok(());
    }
    eprintln!("[lab] installing qemu-system-x86 with apt-get");
    let install = || {
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "qemu-system-x86",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !install().is_ok_and(|s| s.success()) {
        tool(
            Command::new("apt-get").args(["update", "-qq"]),
            "apt-get update",
        )?;
        if !install().is_ok_and(|s| s.success()) {
            return Err(Error::Setup(
                "apt-get install qemu-system-x86 failed".into(),
            ));
        }
    }
    Ok(())
}

/// The `.deb` in `dir` for `pkg`, if downloaded.
fn deb_of(dir: &Path, pkg: &str) -> Option<PathBuf> {
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

/// The versioned kernel package `linux-image-amd64` points at.
fn kernel_package() -> Result<String> {
    let out = tool(
        Command::new("apt-cache").args(["depends", "linux-image-amd64"]),
        "apt-cache depends",
    )?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-6"))
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::Setup("cannot resolve linux-image-amd64 (run apt-get update?)".into())
        })
}

/// Downloads the missing packages into `debs`; returns the kernel's `.deb`.
fn fetch(debs: &Path) -> Result<PathBuf> {
    fs::create_dir_all(debs).map_err(io_err(debs.display().to_string()))?;
    let have_kernel = fs::read_dir(debs)
        .map_err(io_err(debs.display().to_string()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux-image-6"))
        });
    let mut want: Vec<String> = PACKAGES
        .iter()
        .filter(|p| deb_of(debs, p).is_none())
        .map(|p| (*p).to_owned())
        .collect();
    if have_kernel.is_none() {
        let k = match kernel_package() {
            Ok(k) => k,
            Err(_) => {
                tool(
                    Command::new("apt-get").args(["update", "-qq"]),
                    "apt-get update",
                )?;
                kernel_package()?
            }
        };
        want.push(k);
    }
    if !want.is_empty() {
        eprintln!("[lab] apt-get download {}", want.join(" "));
        let download = || {
            Command::new("apt-get")
                .arg("download")
                .args(&want)
                .current_dir(debs)
                .output()
        };
        let ok = download().is_ok_and(|o| o.status.success());
        if !ok {
            tool(
                Command::new("apt-get").args(["update", "-qq"]),
                "apt-get update",
            )?;
            tool(
                Command::new("apt-get")
                    .arg("download")
                    .args(&want)
                    .current_dir(debs),
                "apt-get download",
            )?;
        }
    }
    if let Some(p) = PACKAGES.iter().find(|p| deb_of(debs, p).is_none()) {
        return Err(Error::Setup(format!(
            "package {p} missing after apt-get download"
        )));
    }
    fs::read_dir(debs)
        .map_err(io_err(debs.display().to_string()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux-image-6"))
        })
        .ok_or_else(|| Error::Setup("kernel package missing after apt-get download".into()))
}

/// Unpacks the packages into `root` (once; a `.done` file marks success).
fn unpack(debs: &Path, kernel: &Path, root: &Path) -> Result<()> {
    if root.join(".done").exists() {
        return Ok(());
    }
    // Unpack privately and rename into place, so that concurrent runs never
    // see a half-unpacked tree.
    let _ = fs::remove_dir_all(root);
    let final_root = root;
    let tmp = root.with_extension(format!("tmp{}", std::process::id()));
    let root = tmp.as_path();
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root).map_err(io_err(root.display().to_string()))?;
    for p in PACKAGES {
        let deb = deb_of(debs, p).ok_or_else(|| Error::Setup(format!("no .deb for {p}")))?;
        tool(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root),
            "dpkg-deb -x",
        )?;
    }
    // Of the kernel package only the image and the Xen modules (the rest is
    // ~400 MB of modules).
    let mut tar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(root)
        .args([
            "--wildcards",
            "./boot/vmlinuz-*",
            "./lib/modules/*/kernel/drivers/xen/*",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Tool {
            what: "tar".into(),
            source,
        })?;
    let stdin = tar
        .stdin
        .take()
        .ok_or_else(|| Error::Setup("tar has no stdin".into()))?;
    let deb = tool(
        Command::new("dpkg-deb")
            .arg("--fsys-tarfile")
            .arg(kernel)
            .stdout(stdin),
        "dpkg-deb --fsys-tarfile",
    );
    let tar_ok = tar.wait().map_err(|source| Error::Tool {
        what: "tar".into(),
        source,
    })?;
    deb?;
    if !tar_ok.success() {
        return Err(Error::Setup(format!(
            "unpacking {} failed",
            kernel.display()
        )));
    }
    fs::write(root.join(".done"), b"").map_err(io_err("unpack stamp"))?;
    if fs::rename(root, final_root).is_err() {
        // Another run got there first: use its tree.
        let _ = fs::remove_dir_all(root);
        if !final_root.join(".done").exists() {
            return Err(Error::Setup(format!(
                "cannot move the unpacked tree to {}",
                final_root.display()
            )));
        }
    }
    Ok(())
}

/// Writes `data` to a private file next to `path`, then renames it over
/// `path`: readers see the old or the new file, never a partial one.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, data).map_err(io_err(tmp.display().to_string()))?;
    fs::rename(&tmp, path).map_err(io_err(path.display().to_string()))
}

/// The one directory entry of `dir` whose name starts with `prefix`.
fn find_prefixed(dir: &Path, prefix: &str) -> Result<PathBuf> {
    fs::read_dir(dir)
        .map_err(io_err(dir.display().to_string()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .ok_or_else(|| Error::Setup(format!("nothing named {prefix}* in {}", dir.display())))
}

/// Extracts the xz-compressed ELF payload of a bzImage.
fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<()> {
    let img = fs::read(bzimage).map_err(io_err(bzimage.display().to_string()))?;
    let magic = b"\xfd7zXZ\x00";
    let at = img
        .windows(magic.len())
        .position(|w| w == magic)
        .ok_or_else(|| Error::Setup("no xz payload in the kernel image".into()))?;
    let mut xz = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Tool {
            what: "xz".into(),
            source,
        })?;
    let mut stdin = xz
        .stdin
        .take()
        .ok_or_else(|| Error::Setup("xz has no stdin".into()))?;
    let payload = img.get(at..).unwrap_or(&[]).to_vec();
    // xz stops reading after its stream; a write error past it is expected.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&payload);
    });
    let res = xz.wait_with_output().map_err(|source| Error::Tool {
        what: "xz".into(),
        source,
    })?;
    let _ = feeder.join();
    if res.stdout.get(..4) != Some(b"\x7fELF") {
        return Err(Error::Setup(
            "kernel payload did not decompress to an ELF file".into(),
        ));
    }
    write_atomic(out, &res.stdout)
}

/// Shared libraries `ldd` names for `bins` (absolute paths), with
/// `extra_lib_dir` searched first.
pub fn libraries(bins: &[PathBuf], extra_lib_dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    let mut cmd = Command::new("ldd");
    cmd.args(bins);
    if let Some(d) = extra_lib_dir {
        cmd.env("LD_LIBRARY_PATH", d);
    }
    let out = cmd.output().map_err(|source| Error::Tool {
        what: "ldd".into(),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.ends_with(':') {
            continue; // "path:" heads each binary's list when ldd gets several
        }
        if line.contains("=> not found") {
            return Err(Error::Setup(format!("a library is missing: {line}")));
        }
        let path = match line.split_once("=> ") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None if line.starts_with('/') => line.split_whitespace().next(),
            None => None,
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let p = PathBuf::from(p);
            if !libs.contains(&p) {
                libs.push(p);
            }
        }
    }
    Ok(libs)
}

/// Adds `libs` to an archive at their absolute paths (dereferenced),
/// creating parent directories (`made` remembers those already written).
pub fn add_libs<W: Write>(
    w: &mut cpio::Writer<W>,
    libs: &[PathBuf],
    made: &mut Vec<String>,
) -> Result<()> {
    for lib in libs {
        let rel = lib.to_string_lossy().trim_start_matches('/').to_owned();
        add_dirs(w, &rel, made)?;
        let data = fs::read(lib).map_err(io_err(lib.display().to_string()))?;
        w.file(&rel, 0o755, &data).map_err(io_err("cpio"))?;
    }
    Ok(())
}

/// A cheap fingerprint (FNV-1a) of what the base image is built from, so a
/// change to `/init` or to this builder rebuilds it.
fn fingerprint(kernel: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in INIT
        .bytes()
        .chain(kernel.bytes())
        .chain(b"layout-2".iter().copied())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Makes sure every image exists in `cache`, fetching and building what is
/// missing or stale.
pub fn ensure(cache: &Path) -> Result<Images> {
    let debs = cache.join("debs");
    let root = cache.join("root");
    let out = cache.join("images");
    fs::create_dir_all(&out).map_err(io_err(out.display().to_string()))?;
    let kernel_deb = fetch(&debs)?;
    unpack(&debs, &kernel_deb, &root)?;

    let modules = root.join("lib/modules");
    let kdir = find_prefixed(&modules, "6.")?;
    let kver = kdir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let images = Images {
        xen: out.join("xen"),
        vmlinux: out.join("vmlinux"),
        base: out.join("base.cpio"),
        kernel_cpio: out.join("kernel.cpio"),
    };
    let stamp = out.join("stamp");
    let fp = fingerprint(&kver);
    if fs::read_to_string(&stamp).is_ok_and(|s| s == fp)
        && [
            &images.xen,
            &images.vmlinux,
            &images.base,
            &images.kernel_cpio,
        ]
        .iter()
        .all(|p| p.exists())
    {
        return Ok(images);
    }
    eprintln!(
        "[lab] building images for kernel {kver} in {}",
        out.display()
    );
    let _ = fs::remove_file(&stamp);

    // Hypervisor: gunzip.
    let xen_gz = root.join(format!("boot/xen-{XEN_VER}-amd64.gz"));
    let xen = tool(Command::new("gzip").arg("-dc").arg(&xen_gz), "gunzip xen")?;
    write_atomic(&images.xen, &xen.stdout)?;

    extract_vmlinux(&root.join(format!("boot/vmlinuz-{kver}")), &images.vmlinux)?;
    let vmlinux = fs::read(&images.vmlinux).map_err(io_err("vmlinux"))?;
    let mut k = cpio::Writer::new(Vec::new());
    k.dir("lab", 0o755).map_err(io_err("cpio"))?;
    k.file("lab/vmlinux", 0o644, &vmlinux)
        .map_err(io_err("cpio"))?;
    write_atomic(&images.kernel_cpio, &k.finish().map_err(io_err("cpio"))?)?;

    write_atomic(&images.base, &base_archive(&root, &kdir)?)?;
    write_atomic(&stamp, fp.as_bytes())?;
    Ok(images)
}

/// The shared initramfs.
fn base_archive(root: &Path, kdir: &Path) -> Result<Vec<u8>> {
    let mut w = cpio::Writer::new(Vec::new());
    let e = io_err("cpio");
    let mut made: Vec<String> = Vec::new();
    for d in [
        "bin",
        "dev",
        "etc",
        "etc/xen",
        "lab",
        "lib",
        "lib/modules",
        "lib64",
        "proc",
        "root",
        "run",
        "sys",
        "tmp",
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib/xen-4.17",
        "usr/lib/xen-4.17/bin",
        "var",
        "var/lib",
        "var/lib/xen",
        "var/lib/xenstored",
        "var/lock",
        "var/log",
        "var/log/xen",
    ] {
        w.dir(d, 0o755).map_err(io_err("cpio"))?;
        made.push(d.to_owned());
    }
    w.symlink("var/run", "../run").map_err(io_err("cpio"))?;
    w.file("init", 0o755, INIT.as_bytes())
        .map_err(io_err("cpio"))?;
    w.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .map_err(io_err("cpio"))?;
    w.file("etc/group", 0o644, b"root:x:0:\n")
        .map_err(io_err("cpio"))?;
    w.file(
        "etc/xen/xl.conf",
        0o644,
        b"autoballoon=\"off\"\nlockfile=\"/var/lock/xl\"\n",
    )
    .map_err(io_err("cpio"))?;

    // busybox and its applets
    let busybox = root.join("bin/busybox");
    w.file(
        "bin/busybox",
        0o755,
        &fs::read(&busybox).map_err(io_err("busybox"))?,
    )
    .map_err(io_err("cpio"))?;
    let list = tool(Command::new(&busybox).arg("--list"), "busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            w.symlink(&format!("bin/{applet}"), "busybox")
                .map_err(io_err("cpio"))?;
        }
    }

    // Xen driver modules
    for m in MODULES {
        let file = format!("{m}.ko");
        let found = find_file(kdir, &file)?
            .ok_or_else(|| Error::Setup(format!("module {file} not in {}", kdir.display())))?;
        let data = fs::read(&found).map_err(io_err(found.display().to_string()))?;
        w.file(&format!("lib/modules/{file}"), 0o644, &data)
            .map_err(io_err("cpio"))?;
    }

    // Xen tools and their libraries
    let mut bins = Vec::new();
    for t in TOOLS {
        let src = root.join(format!("usr/lib/xen-{XEN_VER}/bin/{t}"));
        let data = fs::read(&src).map_err(io_err(src.display().to_string()))?;
        w.file(&format!("usr/lib/xen-{XEN_VER}/bin/{t}"), 0o755, &data)
            .map_err(io_err("cpio"))?;
        bins.push(src);
    }
    let xs = root.join("usr/bin/xenstore");
    w.file(
        "usr/bin/xenstore",
        0o755,
        &fs::read(&xs).map_err(io_err("xenstore"))?,
    )
    .map_err(e)?;
    for c in XENSTORE_CMDS {
        w.symlink(&format!("usr/bin/xenstore-{c}"), "xenstore")
            .map_err(io_err("cpio"))?;
    }
    bins.push(xs);
    let libdir = root.join("usr/lib/x86_64-linux-gnu");
    let mut libs = libraries(&bins, Some(&libdir))?;
    // glibc dlopen()s libgcc_s for pthread_cancel (xl uses it); ldd cannot
    // see that.
    let gcc_s = PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1");
    if !libs.contains(&gcc_s) {
        libs.push(gcc_s);
    }
    // Unpacked Xen libraries go to the guest's /usr/lib; host ones (libc &
    // co.) keep their path.
    let mut mapped = Vec::new();
    for l in libs {
        if let Ok(rest) = l.strip_prefix(root) {
            let rel = rest.to_string_lossy().into_owned();
            let data = fs::read(&l).map_err(io_err(l.display().to_string()))?;
            add_dirs(&mut w, &rel, &mut made)?;
            w.file(&rel, 0o755, &data).map_err(io_err("cpio"))?;
        } else {
            mapped.push(l);
        }
    }
    add_libs(&mut w, &mapped, &mut made)?;
    w.finish().map_err(io_err("cpio"))
}

fn add_dirs<W: Write>(w: &mut cpio::Writer<W>, rel: &str, made: &mut Vec<String>) -> Result<()> {
    let comps: Vec<&str> = rel.split('/').collect();
    let mut parent = String::new();
    for comp in comps.iter().take(comps.len().saturating_sub(1)) {
        parent = if parent.is_empty() {
            (*comp).to_owned()
        } else {
            format!("{parent}/{comp}")
        };
        if !made.contains(&parent) {
            w.dir(&parent, 0o755).map_err(io_err("cpio"))?;
            made.push(parent.clone());
        }
    }
    Ok(())
}

fn find_file(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    for e in fs::read_dir(dir)
        .map_err(io_err(dir.display().to_string()))?
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name)? {
                return Ok(Some(f));
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}
