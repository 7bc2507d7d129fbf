//! How a verb fails: one style for every verb.
//!
//! - A usage error (bad arguments, found by clap or by a verb once it
//!   knows more, such as a target directory that exists) prints clap's
//!   message with the verb's usage and exits 2.
//! - A run-time error prints `error: ` and the error with its causes on one
//!   line ([`xenmq::error::Chain`], shared by every xenmq binary) and exits 1.
//! - Under `--json`, either is instead one JSON object on stdout,
//!   `{"error": "..."}`, with the same exit codes: a script piping into
//!   `jq` always reads valid JSON.

use std::process::ExitCode;

use xenmq::error::Chain;

/// Why a verb failed.
#[derive(Debug)]
pub enum Failure {
    /// An argument was refused: the path of the verb in the tree (`["sim",
    /// "poke"]`), and why.
    Usage {
        verb: Vec<&'static str>,
        msg: String,
    },
    /// The verb ran and failed.
    Run(Box<dyn std::error::Error>),
}

impl Failure {
    /// A usage error of the verb at `verb`.
    pub fn usage(verb: &[&'static str], msg: impl Into<String>) -> Failure {
        Failure::Usage {
            verb: verb.to_vec(),
            msg: msg.into(),
        }
    }

    /// A run-time failure.
    pub fn run(e: impl Into<Box<dyn std::error::Error>>) -> Failure {
        Failure::Run(e.into())
    }

    /// Prints the failure; returns the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            Failure::Usage { verb, msg } => {
                let mut cmd = crate::command();
                for name in verb {
                    match cmd.find_subcommand(name) {
                        Some(sub) => cmd = sub.clone(),
                        None => break,
                    }
                }
                clap_exit(&cmd.error(clap::error::ErrorKind::ValueValidation, msg))
            }
            Failure::Run(e) => {
                eprintln!("error: {}", Chain(&*e));
                ExitCode::FAILURE
            }
        }
    }
}

impl Failure {
    /// Prints the failure as `{"error": "..."}` on stdout (a `--json`
    /// verb's failure); returns the exit code.
    pub fn report_json(self) -> ExitCode {
        match self {
            Failure::Usage { msg, .. } => json_error(&msg, ExitCode::from(2)),
            Failure::Run(e) => json_error(&Chain(&*e).to_string(), ExitCode::FAILURE),
        }
    }
}

/// Prints `{"error": msg}` on stdout; returns `code`.
pub fn json_error(msg: &str, code: ExitCode) -> ExitCode {
    println!("{}", serde_json::json!({ "error": msg }));
    code
}

/// A clap error as `{"error": "..."}` on stdout when the command line asked
/// for `--json` (help and version print as usual); returns its exit code.
pub fn clap_exit_json(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return clap_exit(e);
    }
    // clap's first line, `error: ...`, is the message; the rest is usage.
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    let msg = first.strip_prefix("error: ").unwrap_or(first).trim();
    json_error(
        msg,
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)),
    )
}

/// Adds the usage of the verb `argv` names to a clap error that lacks it
/// (clap leaves it out of errors about one value): every usage error shows
/// the usage of its verb.
pub fn with_usage(mut e: clap::Error, argv: &[std::ffi::OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let quiet = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if quiet || e.get(ContextKind::Usage).is_some() {
        return e;
    }
    // The deepest verb named on the command line (a value that happens to
    // spell a verb can only pick a more general usage, never a wrong one
    // for the words before it).
    let mut cmd = crate::command();
    for word in argv.iter().skip(1) {
        let Some(word) = word.to_str() else { break };
        if let Some(sub) = cmd.find_subcommand(word) {
            cmd = sub.clone();
        }
    }
    e.insert(
        ContextKind::Usage,
        ContextValue::StyledStr(cmd.render_usage()),
    );
    e
}

/// Prints a clap error (or the help or version it carries) and returns its
/// exit code: 0 for help and version, 2 for usage errors.
pub fn clap_exit(e: &clap::Error) -> ExitCode {
    // Printing fails only when stdout or stderr is closed: nothing to tell.
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}
