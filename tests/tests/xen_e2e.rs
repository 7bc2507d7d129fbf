//! The example drivers end to end on real Xen: boots Xen under qemu
//! (`xenmq_lab::run`) once and runs `xenmq-xen-e2e` in dom0 (the
//! backends, attached with `toolstack::attach`) and in a PV domU (the
//! frontends). Scenarios, in order: echo round trips with checked payloads;
//! vkv put/get/delete through the granted pool; a block device serving a
//! file in dom0; a frontend SIGKILLed mid-stream and a new one connecting to
//! the same device, every grant released; a frontend writing a garbage
//! request index into its ring: the backend writes its `error` node and a
//! bystander device keeps working. Both sides print `PASS name` / `FAIL name: why`; any
//! FAIL, a missing scenario, or a lab that cannot boot fails the test.
//!
//! Needs root (apt-get, /var/tmp); see `lab/README.md`.

use std::time::{Duration, Instant};

const DOMU: &[&str] = &[
    "echo",
    "vkv",
    "blk",
    "kill",
    "hostile",
    "hostile-handshake",
    "storm",
    "dead-frontend",
    "soak",
    "hostile-backend",
    "done",
];
const DOM0: &[&str] = &[
    "backend-echo",
    "backend-vkv",
    "backend-xmblk",
    "backend-kill",
    "backend-hostile",
    "backend-bystander",
    "backend-hostile-handshake",
    "backend-hostile-backend",
    "grants-released",
];

#[test]
fn example_drivers_between_dom0_and_a_domu() {
    let prog = env!("CARGO_BIN_EXE_xenmq-xen-e2e");
    let mut cfg = xenmq_lab::Config::new(prog, prog);
    cfg.timeout = Duration::from_secs(480);
    let start = Instant::now();
    let report = xenmq_lab::run(&cfg).unwrap_or_else(|e| panic!("the lab did not run: {e}"));
    let shown = format!(
        "dom0 ({}):\n{}\ndomU {} ({}):\n{}\n{}",
        report.dom0.exit,
        report.dom0.output,
        report.domu_id,
        report.domu.exit,
        report.domu.output,
        report.domu_console
    );
    eprintln!("{shown}");
    let (mut passed, mut failed) = (Vec::new(), Vec::new());
    for (out, names) in [(&report.domu.output, DOMU), (&report.dom0.output, DOM0)] {
        for line in out.lines() {
            if let Some(name) = line.trim().strip_prefix("PASS ") {
                passed.push(name.to_owned());
            } else if let Some(rest) = line.trim().strip_prefix("FAIL ") {
                failed.push(rest.to_owned());
            }
        }
        for name in names {
            if !passed.iter().any(|p| p == name) && !failed.iter().any(|f| f.starts_with(name)) {
                failed.push(format!("{name}: no verdict"));
            }
        }
    }
    eprintln!(
        "xen-e2e: {} passed, {} failed ({:.1} s boot+run, {:.1} s in all)",
        passed.len(),
        failed.len(),
        report.total.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "failed: {failed:#?}");
    assert!(report.success(), "a side failed:\n{shown}");
}
