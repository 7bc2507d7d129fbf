//! `xenmq port`: turns a C ring protocol header (Xen's `xen/io/*.h`) into a
//! Rust module of `#[xenmq::message]` types.
//!
//! The header is read twice. This crate's own lexer and parser read the
//! text, so that its comments become docs and every construct it cannot
//! port is reported with its line; gcc compiles a probe of the header and
//! gives the ground truth of every size, alignment, offset and constant,
//! which the generated code asserts at compile time. Layouts are gcc's for
//! x86_64.
#![forbid(unsafe_code)]

mod ast;
mod cond;
mod emit;
mod expr;
mod lex;
mod parse;
mod probe;
mod types;

use std::path::{Path, PathBuf};

pub use emit::Output;

/// A port that could not be made, and why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A construct of the header the port does not handle.
    #[error("{file}:{line}: {msg}")]
    Header {
        /// The header's file name.
        file: String,
        /// The line, 1-based.
        line: usize,
        /// What and why.
        msg: String,
    },
    /// gcc could not compile the probe of the header.
    #[error("gcc could not compile the layout probe of {file}:\n{stderr}")]
    Probe {
        /// The header's file name.
        file: String,
        /// gcc's messages.
        stderr: String,
    },
    /// Running gcc or handling its files failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// gcc's answer was not what the probe asked for.
    #[error("the layout probe of {file}: {msg}")]
    Answer {
        /// The header's file name.
        file: String,
        /// What was wrong.
        msg: String,
    },
}

impl Error {
    pub(crate) fn at(file: &str, line: usize, msg: impl Into<String>) -> Self {
        Error::Header {
            file: file.to_string(),
            line,
            msg: msg.into(),
        }
    }
}

/// How to port a header.
#[derive(Debug, Clone)]
pub struct Options {
    /// The header's file name, for messages and docs (`blkif.h`).
    pub file_name: String,
    /// Where its `#include "..."`s are found: the header's own directory
    /// for a header read from disk.
    pub include_dirs: Vec<PathBuf>,
    /// The C compiler (`gcc`); it must target x86_64.
    pub cc: String,
    /// Protocol names by ring name (`blkif` -> `vbd`); a ring not listed
    /// is declared under its `DEFINE_RING_TYPES` name.
    pub names: Vec<(String, String)>,
}

impl Options {
    /// Options for the header at `path`: its file name and directory.
    pub fn for_path(path: &Path) -> Self {
        Options {
            file_name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            include_dirs: path.parent().map(Path::to_path_buf).into_iter().collect(),
            cc: "gcc".into(),
            names: Vec::new(),
        }
    }
}

/// Ports the header whose text is `header`: parses it, asks gcc for its
/// layout, and generates the Rust module.
pub fn port(header: &str, options: &Options) -> Result<Output, Error> {
    let file = options.file_name.as_str();
    let toks = lex::lex(file, header)?;
    let (toks, _guard) = cond::apply(file, toks)?;
    let parsed = parse::parse(file, header, toks)?;
    let layout = probe::probe(&parsed, header, options)?;
    emit::emit(&parsed, &layout, options)
}

/// The arguments of `xenmq port` (and of this crate's `xenmq-port` binary).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The C header to port, e.g. /usr/include/xen/io/blkif.h.
    pub header: PathBuf,
    /// Where to write the Rust module (default: standard output).
    #[arg(short, long, value_name = "OUT.rs")]
    pub output: Option<PathBuf>,
    /// The protocol name (device type) of a ring, as RING=NAME
    /// (e.g. blkif=vbd); default: the ring's name in the header.
    #[arg(long = "name", value_name = "RING=NAME", value_parser = parse_name)]
    pub names: Vec<(String, String)>,
    /// The C compiler that gives the layout (it must target x86_64).
    #[arg(long, default_value = "gcc")]
    pub cc: String,
}

fn parse_name(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("`{s}` is not RING=NAME"))
}

/// Runs `xenmq port` with `args`: reads the header, ports it, writes the
/// module. Returns the notes of what was not ported (also in the module's
/// docs) for the caller to print.
pub fn run(args: &Args) -> Result<Output, Error> {
    let text = std::fs::read_to_string(&args.header).map_err(|source| Error::Io {
        what: format!("cannot read {}", args.header.display()),
        source,
    })?;
    let mut options = Options::for_path(&args.header);
    options.cc = args.cc.clone();
    options.names = args.names.clone();
    let out = port(&text, &options)?;
    match &args.output {
        Some(path) => std::fs::write(path, &out.rust).map_err(|source| Error::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })?,
        None => print!("{}", out.rust),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// Parsing never panics, whatever the header: every prefix of the
    /// real headers (cut mid-token, mid-comment, mid-struct) parses or is
    /// an error.
    #[test]
    fn truncated_headers_are_errors_not_panics() {
        for name in ["blkif.h", "netif.h", "pvcalls.h", "usbif.h"] {
            let path = std::path::Path::new("/usr/include/xen/io").join(name);
            let Ok(text) = std::fs::read_to_string(&path) else {
                panic!("{} (install libxen-dev)", path.display());
            };
            let mut cut = 0;
            while cut < text.len() {
                if text.is_char_boundary(cut) {
                    let part = &text[..cut];
                    if let Ok(toks) = crate::lex::lex(name, part) {
                        if let Ok((toks, _)) = crate::cond::apply(name, toks) {
                            let _ = crate::parse::parse(name, part, toks);
                        }
                    }
                }
                cut += 37;
            }
        }
        for src in [
            "#define F(",
            "#define",
            "#",
            "#if",
            "#elif 1\n",
            "#endif\n",
            "#ifdef\n",
            "struct s { int a[; };",
            "struct s { int a[1]",
            "struct { int a; };",
            "enum { A = };",
            "enum e {",
            "DEFINE_RING_TYPES(",
            "DEFINE_RING_TYPES(a, struct",
            "typedef",
            "typedef int;",
            "struct s { struct s x; };",
            "union",
            "\"open",
            "struct s { int a; } __attribute__",
            "f(",
            "static",
            "struct s { int",
            "struct s { int a; #define X }",
            "'",
            "/",
            "/*",
            "struct s { enum e x; };",
        ] {
            if let Ok(toks) = crate::lex::lex("t.h", src) {
                if let Ok((toks, _)) = crate::cond::apply("t.h", toks) {
                    let _ = crate::parse::parse("t.h", src, toks);
                }
            }
        }
    }
}
