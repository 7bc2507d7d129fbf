//! `xenmq-bench`: the benchmark on its own (the same as `xenmq bench`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    xenmq_bench::main(std::env::args_os().skip(1))
}
