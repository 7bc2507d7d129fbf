//! `echo` on the simulator: `cargo run -p xenmq-examples --bin echo [COUNT]`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    if let Err(code) = xenmq_examples::launch::init_log() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    xenmq_examples::demo::demo(&[], &args)
}
