//! Boots real Xen under qemu (`xenmq_lab::run`) and runs `xenmq-lab-smoke`
//! in dom0 and in a PV domU. Phase xenstore: the Xenstore client over
//! `/dev/xen/xenbus` in both domains (transaction, directory, watches across
//! domains). Phase grant: the domU shares a page through
//! `/dev/xen/gntalloc` and offers an event channel, both published in
//! Xenstore through `/dev/xen/xenbus`; dom0 maps the page through
//! `/dev/xen/gntdev`, binds the channel, replies in the page and notifies;
//! the domU acknowledges, and dom0's unmap notification tells it dom0 is
//! gone. Phase platform: the same through the platform traits
//! (`xenmq::grant::Grants`, `xenmq::evtchn::Events`), including Xen's
//! refusals (a read-only grant mapped read-write, a reference never granted)
//! and a peer that goes away. All of it through `xenmq_runtime::linux`.
//!
//! Needs root (apt-get, /var/tmp) and about 30-40 s; the first run also
//! downloads about 75 MB of Debian packages.

use std::time::Duration;

#[test]
fn grant_and_event_channel_between_dom0_and_a_domu() {
    let prog = env!("CARGO_BIN_EXE_xenmq-lab-smoke");
    let mut cfg = xenmq_lab::Config::new(prog, prog);
    cfg.timeout = Duration::from_secs(90);
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
    assert!(report.success(), "a side failed:\n{shown}");
    for (side, needle) in [
        (&report.domu.output, "wrote a, b in a transaction; ready"),
        (&report.domu.output, "dom0 said go ("),
        (&report.dom0.output, "(labu) ready after"),
        (&report.dom0.output, "dom0: go; PASS"),
        (
            &report.dom0.output,
            "dom0: mapped the page (\"xenmq-lab ping\")",
        ),
        (&report.dom0.output, "the domU closed its end; port"),
        (&report.domu.output, "text \"pong from dom0\""),
        (&report.domu.output, "alive byte cleared, event received"),
        (&report.dom0.output, "status Interdomain { remote: "),
        (&report.domu.output, "domU: PASS"),
        (
            &report.dom0.output,
            "read-write map of a read-only grant refused: ReadOnly",
        ),
        (
            &report.dom0.output,
            "map of a reference never granted refused: BadRef",
        ),
        (
            &report.dom0.output,
            "dom0: PeerClosed after the domU left; PASS",
        ),
        (&report.domu.output, "domU: reply seen in the region"),
    ] {
        assert!(side.contains(needle), "missing `{needle}` in:\n{shown}");
    }
    eprintln!(
        "lab: {:.1} s from qemu start to results; stages {:?}",
        report.total.as_secs_f64(),
        report.stages
    );
}
