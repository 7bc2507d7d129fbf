//! Where a program's tracing events go: stderr, filtered by `RUST_LOG`
//! and a verbosity count (`-v`).
//!
//! Every device end records its life in a `device` span (its type, id,
//! own and peer domain, and role): each xenbus transition, refusal with its
//! reason, ring set-up and teardown, and hostile-peer closure with the
//! index and rule it broke. The simulator host records its domains' life
//! and, at `debug`, each grant and event-channel request; its Xenstore
//! server records each request at `trace`, as C xenstored's trace does.
//! Nothing is recorded per message.
//!
//! ```no_run
//! // RUST_LOG=xenmq=debug, or -v (info), -vv (debug), -vvv (trace).
//! xenmq_runtime::log::init(0)?;
//! # Ok::<(), xenmq_runtime::log::Error>(())
//! ```

use tracing_subscriber::EnvFilter;

/// The environment variable holding the filter.
pub const ENV: &str = "RUST_LOG";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `RUST_LOG` is not a filter.
    // The parser's message is a field, not a source: its Display already
    // repeats its own source, which a chain would print twice.
    #[error("RUST_LOG=`{value}` is not a log filter ({reason}); try `xenmq=debug`")]
    Filter {
        /// The value as given.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// `RUST_LOG` is not UTF-8.
    #[error("RUST_LOG is not valid UTF-8")]
    NotUnicode,
}

/// The filter for `verbose` (the count of `-v`) and the value of
/// `RUST_LOG`: warnings only by default, `-v` info, `-vv` debug, `-vvv`
/// trace; `RUST_LOG`'s directives apply on top of a `-v` level, or alone
/// when there is none.
pub fn filter(verbose: u8, rust_log: Option<&str>) -> String {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => level.to_owned(),
        Some(v) if verbose == 0 => v.to_owned(),
        Some(v) => format!("{level},{v}"),
    }
}

/// Installs a subscriber printing to stderr with the filter of
/// [`filter`], for this process; with `-v` given, `RUST_LOG` is set to the
/// same filter, so that the processes it starts (the domains of `xenmq
/// demo`) log alike. A subscriber already installed is kept.
pub fn init(verbose: u8) -> Result<(), Error> {
    let rust_log = match std::env::var(ENV) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => return Err(Error::NotUnicode),
    };
    let spec = filter(verbose, rust_log.as_deref());
    let env_filter = parse(&spec).map_err(|e| Error::Filter {
        value: rust_log.unwrap_or_default(),
        reason: e.to_string(),
    })?;
    if verbose > 0 {
        // Before any thread is started by this program: only `main` runs.
        std::env::set_var(ENV, &spec);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}

/// Parses a filter strictly: a directive that does not parse is an error,
/// not skipped (a bare word is a target, as in `env_logger`, and stays
/// allowed: a `RUST_LOG` meant for other programs does not stop this one).
pub fn parse(spec: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    EnvFilter::builder().parse(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_sets_the_default_and_rust_log_refines_it() {
        assert_eq!(filter(0, None), "warn");
        assert_eq!(filter(1, None), "info");
        assert_eq!(filter(2, None), "debug");
        assert_eq!(filter(7, None), "trace");
        assert_eq!(filter(0, Some("xenmq=debug")), "xenmq=debug");
        assert_eq!(filter(0, Some("  ")), "warn");
        assert_eq!(
            filter(2, Some("xenmq::ring=trace")),
            "debug,xenmq::ring=trace"
        );
        for spec in [
            "warn",
            "debug,xenmq::ring=trace",
            "off",
            "xenmq_runtime=trace",
        ] {
            assert!(parse(spec).is_ok(), "{spec}");
        }
        for spec in ["xenmq=loud", "=debug", "xenmq[", "a=b=c"] {
            assert!(parse(spec).is_err(), "{spec}");
        }
    }
}
