//! A queue member for the simulator's multi-process queue tests, run as the
//! domain named by `XENMQ_SIM_DIR`/`XENMQ_SIM_DOMID`.
//!
//! - `mq-domain recv QUEUE SENDERS`: receives until `SENDERS` senders'
//!   channels have closed, printing `closed <domid> <fault>` as each does,
//!   then one line per sender:
//!   `from <domid> count <n> ordered <0|1> forged <n> last <seq>`, then `done`.
//! - `mq-domain send QUEUE COUNT [CLAIM]`: sends `COUNT` messages numbered
//!   from 0, each claiming to come from `CLAIM` (by default this domain),
//!   waits until they were all taken, prints `sent <n>`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use xenmq::grant::DomId;
use xenmq_runtime::mq::{Delivery, Receiver, Sender};
use xenmq_runtime::platform::{Platform, Sim};
use xenmq_tests::mq::Seq;

type Fail = Box<dyn std::error::Error>;

#[derive(Default)]
struct Tally {
    count: u64,
    next: u64,
    ordered: bool,
    forged: u64,
    last: Option<u64>,
}

fn recv(sim: &Sim, queue: &str, senders: usize) -> Result<(), Fail> {
    let mut rx = Receiver::<Seq, _, _, _>::open(sim.env()?, queue)?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut tallies: BTreeMap<DomId, Tally> = BTreeMap::new();
    let mut closed = 0;
    while closed < senders {
        match rx.recv_event()? {
            Delivery::Message { from, msg } => {
                let t = tallies.entry(from).or_insert_with(|| Tally {
                    ordered: true,
                    ..Tally::default()
                });
                if msg.seq != t.next {
                    t.ordered = false;
                }
                t.next = msg.seq.wrapping_add(1);
                t.count += 1;
                t.last = Some(msg.seq);
                if msg.claimed != u64::from(from) {
                    t.forged += 1;
                }
            }
            Delivery::Closed { from, fault } => {
                closed += 1;
                println!("closed {from} {}", u8::from(fault.is_some()));
                std::io::stdout().flush()?;
            }
        }
    }
    for (from, t) in &tallies {
        println!(
            "from {from} count {} ordered {} forged {} last {}",
            t.count,
            u8::from(t.ordered),
            t.forged,
            t.last.map_or(-1, |l| l as i64)
        );
    }
    println!("done");
    Ok(())
}

fn send(sim: &Sim, queue: &str, count: u64, claim: u64) -> Result<(), Fail> {
    let mut tx = Sender::<Seq, _, _, _>::open(sim.env()?, queue)?;
    for seq in 0..count {
        tx.send(&Seq {
            seq,
            claimed: claim,
        })?;
    }
    tx.sync(Some(Duration::from_secs(60)))?;
    println!("sent {}", tx.sent());
    Ok(())
}

fn run(args: &[String]) -> Result<(), Fail> {
    let sim = Sim::from_env()?;
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or("missing argument");
    match arg(0)? {
        "recv" => recv(&sim, arg(1)?, arg(2)?.parse()?),
        "send" => {
            let claim = match args.get(3) {
                Some(c) => c.parse()?,
                None => u64::from(sim.domid()),
            };
            send(&sim, arg(1)?, arg(2)?.parse()?, claim)
        }
        other => Err(format!("unknown role {other:?}").into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", xenmq::error::Chain(&*e));
            ExitCode::FAILURE
        }
    }
}
