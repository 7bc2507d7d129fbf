//! `xenmq-port HEADER.h [-o OUT.rs]`: the port on its own (the `xenmq`
//! CLI runs the same [`xenmq_port::run`]).
#![forbid(unsafe_code)]

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "xenmq-port",
    about = "Turn a C Xen ring protocol header into a Rust module"
)]
struct Cli {
    #[command(flatten)]
    args: xenmq_port::Args,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match xenmq_port::run(&cli.args) {
        Ok(out) => {
            for note in &out.notes {
                eprintln!("note: {note}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            // One line: the error and its causes, as every xenmq binary prints them.
            eprintln!("error: {}", xenmq::error::Chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
