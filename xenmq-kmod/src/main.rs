//! `xenmq-kmod build`: a driver crate and a role into a kernel module.

use std::path::PathBuf;
use std::process::ExitCode;

use xenmq_kmod::{build, headers, Build, Role, DEFAULT_CACHE};

const USAGE: &str =
    "usage: xenmq-kmod build --crate DIR (--backend TYPE | --frontend TYPE [--on-connect FN]) --devtype NAME [--name MOD] \
[--kdir DIR | --release 6.1.0-N-amd64] [--cache DIR] [--out DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xenmq-kmod: {e}");
            let mut src = std::error::Error::source(&*e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let (cmd, rest) = args.split_first().ok_or(USAGE)?;
    if cmd != "build" {
        return Err(USAGE.into());
    }
    let (mut krate, mut driver, mut devtype, mut name) = (None, None, None, None);
    let (mut role, mut on_connect) = (Role::Backend, None);
    let (mut kdir, mut release, mut cache, mut out) = (None, None, None, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--crate" => krate = Some(PathBuf::from(val()?)),
            "--backend" => driver = Some(val()?),
            "--frontend" => {
                driver = Some(val()?);
                role = Role::Frontend;
            }
            "--on-connect" => on_connect = Some(val()?),
            "--devtype" => devtype = Some(val()?),
            "--name" => name = Some(val()?),
            "--kdir" => kdir = Some(PathBuf::from(val()?)),
            "--release" => release = Some(val()?),
            "--cache" => cache = Some(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            other => return Err(format!("unknown option {other}\n{USAGE}").into()),
        }
    }
    let krate = krate.ok_or(USAGE)?;
    let driver = driver.ok_or(USAGE)?;
    let devtype = devtype.ok_or(USAGE)?;
    let end = if role == Role::Backend {
        "back"
    } else {
        "front"
    };
    let name = name.unwrap_or_else(|| format!("xenmq_{}_{end}", devtype.replace('-', "_")));
    let cache = cache.unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE));
    let kernel = match kdir {
        Some(k) => headers::given(&k)?,
        None => {
            let rel = match release {
                Some(r) => r,
                None => headers::debian_release()?,
            };
            headers::debian(&cache, &rel)?
        }
    };
    let out = out.unwrap_or_else(|| cache.join("build").join(&name));
    let m = build(&Build {
        krate,
        driver,
        role,
        on_connect,
        devtype,
        name,
        kernel,
        out,
    })?;
    println!("module: {}", m.ko.display());
    println!(
        "panic sites in the Rust object: {} (relocations referring to core::panicking::* and the other panic entry points)",
        m.panics.total()
    );
    for (sym, n) in &m.panics.by_symbol {
        println!("  {n:4}  {sym}");
    }
    Ok(())
}
