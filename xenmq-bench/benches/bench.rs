//! `cargo bench -p xenmq-bench`: the quick benchmark (pass `-- --reps 7
//! --budget-ms 250` or other `xenmq bench` options for a full run).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // `cargo bench` runs the quick setting unless options say otherwise.
    let quick = args.iter().all(|a| a == "--bench");
    let extra = quick.then(|| std::ffi::OsString::from("--quick"));
    xenmq_bench::main(args.into_iter().chain(extra))
}
