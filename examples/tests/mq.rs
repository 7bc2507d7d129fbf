//! The queue examples, as `cargo run -p xenmq-examples --bin NAME` runs
//! them: a launcher, a dom0 process and one process per guest, every
//! domain back to no grants, mappings or ports at the end.

use std::process::Command;

fn run(exe: &str, args: &[&str], says: &[&str]) -> String {
    let out = Command::new(exe).args(args).output().expect("run the example");
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{exe} failed ({}):\n{all}", out.status);
    for line in says.iter().chain(&["host: every domain is back to no grants, mappings or ports"]) {
        assert!(all.contains(line), "no {line:?} from {exe}:\n{all}");
    }
    all
}

#[test]
fn mq_logs_runs() {
    let all = run(
        env!("CARGO_BIN_EXE_mq_logs"),
        &["50"],
        &["lines per guest: {1: 50, 2: 50, 3: 50}", "dom1 closed its channel"],
    );
    // Each guest's lines arrive in the order it sent them.
    for d in 1..=3 {
        let seqs: Vec<u64> = all
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("dom0: [dom{d} #")))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(seqs, (0..50).collect::<Vec<_>>(), "dom{d}");
    }
}

#[test]
fn mq_work_runs() {
    run(env!("CARGO_BIN_EXE_mq_work"), &["2000"], &["2000 jobs answered, per guest: {1: "]);
}
