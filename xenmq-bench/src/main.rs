//! `xenmq-bench`: the benchmark on its own (the same as `xenmq bench`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // Both processes (this one and the re-executed backend) get a
    // subscriber, so that the core's events meet a real one.
    #[cfg(feature = "tracing")]
    {
        let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let filter = match tracing_subscriber::EnvFilter::builder().parse(&spec) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: RUST_LOG=`{spec}` is not a log filter ({e})");
                return std::process::ExitCode::from(2);
            }
        };
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    xenmq_bench::main(std::env::args_os().skip(1))
}
