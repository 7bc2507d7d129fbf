//! `xenmq`: the command-line front of the framework.
#![forbid(unsafe_code)]

use std::process::ExitCode;

mod new;
mod sim;

const USAGE: &str = "usage: xenmq <command> [args]

commands:
  help              this text
  sim               run the simulated Xen host; create and destroy domains
  demo [COUNT]      run the echo driver: backend in dom0, frontend in a guest
  bench [options]   xenmq's rings vs C ring.h vs sockets (`xenmq bench --help`)
  new NAME --device TYPE
                    write a new driver crate (messages, backend, frontend, test)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("sim") => sim::main(&args[1..]),
        Some("new") => new::main(&args[1..]),
        Some("demo") => xenmq_examples::demo::demo(&["demo"], &args[1..]),
        Some("bench") => xenmq_bench::main(std::env::args_os().skip(2)),
        Some(other) => {
            eprintln!("xenmq: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
