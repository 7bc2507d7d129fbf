//! `xenmq`: the command-line front of the framework.
#![forbid(unsafe_code)]

use std::process::ExitCode;

mod device;
mod new;
mod sim;

const USAGE: &str = "usage: xenmq <command> [args]

commands:
  help              this text
  lab run ...       run a program in dom0 and one in a domU on real Xen under qemu
  attach            create a custom device's Xenstore directories (as libxl would)
  detach            ask a device's backend to close, then remove its directories
  status            list every device in a Xenstore: both ends' states, protocol, ring
  demo [COUNT]      run the echo driver: backend in dom0, frontend in a guest
  bench [options]   xenmq's rings vs C ring.h vs sockets (`xenmq bench --help`)
  sim               run the simulated Xen host; create and destroy domains
  new NAME --device TYPE
                    write a new driver crate (messages, backend, frontend, test)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("lab") => xenmq_lab::cli::main(&args[1..]),
        Some("bench") => xenmq_bench::main(std::env::args_os().skip(2)),
        Some("attach") => device::attach(&args[1..]),
        Some("detach") => device::detach(&args[1..]),
        Some("status") => device::status(&args[1..]),
        Some("demo") => xenmq_examples::demo::demo(&["demo"], &args[1..]),
        Some("sim") => sim::main(&args[1..]),
        Some("new") => new::main(&args[1..]),
        Some(other) => {
            eprintln!("xenmq: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
