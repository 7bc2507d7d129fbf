//! One command, several domains around named queues: the launcher starts
//! a simulated host (with Xenstore), creates guest domains and the queues,
//! then runs this same program as a dom0 process and as one process per
//! guest, relays what they print, and checks that nothing leaked.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use xenmq::grant::DomId;
use xenmq_runtime::sim::{self, Host};
use xenmq_runtime::xenstore::Connection;

use crate::launch::Result;

/// The line the dom0 process prints once its queues are open.
pub const READY: &str = "ready";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Relays a process's lines, each prefixed with `who`; calls `on` for each.
fn relay(child: &mut Child, who: String, on: impl Fn(&str) + Send + 'static) -> Result {
    let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    std::thread::spawn(move || {
        for line in out.lines().map_while(std::result::Result::ok) {
            println!("{who}: {line}");
            on(&line);
        }
    });
    Ok(())
}

/// Runs `dom0` (arguments after the program's own) as a dom0 process, and
/// once it says [`READY`], `guest` in each of `guests` new domains; `setup`
/// makes the queues first. Succeeds when every process does and no domain
/// holds a grant, a mapping or a port afterwards.
pub fn launch(
    kind: &str,
    guests: usize,
    setup: impl FnOnce(&Connection, &[DomId]) -> Result,
    dom0: &[String],
    guest: &[String],
) -> Result {
    let tmp = tempfile::Builder::new().prefix(&format!("xenmq-{kind}-")).tempdir()?;
    let dir = tmp.path();
    let host = Host::with_xenstored(dir)?;
    let ids: Vec<DomId> = (0..guests)
        .map(|i| host.create_domain(&format!("guest{i}")))
        .collect::<std::result::Result<_, _>>()?;
    println!("host: simulated Xen host in {}, guests {ids:?}", dir.display());
    setup(&Connection::connect(&dir.join("socket"))?, &ids)?;
    let exe = std::env::current_exe()?;
    let spawn = |domid: DomId, args: &[String]| {
        sim::domain_command(dir, domid, &exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
    };
    let mut d0 = Kill(spawn(0, dom0)?);
    let (tx, ready) = std::sync::mpsc::channel();
    relay(&mut d0.0, "dom0".into(), move |l| {
        if l == READY {
            let _ = tx.send(());
        }
    })?;
    ready.recv_timeout(Duration::from_secs(30)).map_err(|_| "dom0 never got ready")?;
    let mut procs = Vec::new();
    for &id in &ids {
        let mut p = Kill(spawn(id, guest)?);
        relay(&mut p.0, format!("dom{id}"), |_| {})?;
        procs.push(p);
    }
    let mut failed = Vec::new();
    for (p, id) in
        procs.iter_mut().map(|p| &mut p.0).zip(ids.iter().copied()).chain([(&mut d0.0, 0)])
    {
        if !p.wait()?.success() {
            failed.push(id);
        }
    }
    if !failed.is_empty() {
        return Err(format!("domains {failed:?} failed").into());
    }
    std::thread::sleep(Duration::from_millis(50));
    for d in host.domains() {
        if (d.grants, d.maps, d.ports) != (0, 0, 0) {
            return Err(format!(
                "dom{} holds {} grants, {} mappings, {} ports",
                d.domid, d.grants, d.maps, d.ports
            )
            .into());
        }
    }
    println!("host: every domain is back to no grants, mappings or ports");
    Ok(())
}
