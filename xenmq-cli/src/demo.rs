//! `xenmq demo [COUNT]`: the echo example on an in-process simulated host.
//! The launcher re-runs this program as `xenmq demo backend` (in dom0) and
//! `xenmq demo frontend` (in the guest): those roles are hidden verbs.

use std::process::ExitCode;

/// `xenmq demo`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    long_about = "Starts a simulated Xen host, creates a guest and the echo device between it \
and dom0, runs the echo backend as a dom0 process and the frontend as the guest's, and \
relays what they print: COUNT pings 32 in flight, then a tenth of them one at a time. \
Checks at the end that the guest holds no grant and no event channel."
)]
pub struct Args {
    /// Pings to send 32 in flight (a tenth as many are then timed one by one)
    #[arg(value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..))]
    count: Option<u32>,
    #[command(subcommand)]
    role: Option<Role>,
}

/// The two processes the launcher starts.
#[derive(Debug, clap::Subcommand)]
enum Role {
    /// The echo backend, as a dom0 process
    #[command(hide = true)]
    Backend {
        /// The frontend's domain id
        frontend: u16,
    },
    /// The echo frontend, as the guest's process
    #[command(hide = true)]
    Frontend {
        /// Pings to send
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        count: Option<u32>,
    },
}

/// `xenmq demo`.
pub fn main(a: Args) -> ExitCode {
    let args: Vec<String> = match a.role {
        Some(Role::Backend { frontend }) => vec!["backend".into(), frontend.to_string()],
        Some(Role::Frontend { count }) => std::iter::once("frontend".to_owned())
            .chain(count.map(|c| c.to_string()))
            .collect(),
        None => a.count.map(|c| c.to_string()).into_iter().collect(),
    };
    xenmq_examples::demo::demo(&["demo"], &args)
}
