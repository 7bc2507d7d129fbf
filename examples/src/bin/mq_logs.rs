//! Guests publish log lines to dom0 through one named queue:
//! `cargo run -p xenmq-examples --bin mq_logs [LINES]`.
//!
//! The launcher creates three guests and the queue `logs` (the guests may
//! send, dom0 may receive), then runs `collect` in dom0 and `publish` in
//! each guest. Each guest has its own ring and event channel to dom0; dom0
//! learns who sent a line from the channel it came on, not from the line.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::process::ExitCode;

use xenmq_examples::launch::Result;
use xenmq_examples::members::{self, READY};
use xenmq_runtime::mq::{self, Delivery, Mode, Receiver, Sender, Spec};
use xenmq_runtime::platform::{self, Body, Platform};

/// One log line: a level and up to 112 bytes of text.
#[xenmq::message]
#[derive(Clone, Copy)]
pub struct Line {
    pub seq: u64,
    pub level: u8,
    pub len: u8,
    pub _pad: [u8; 6],
    pub text: [u8; 112],
}

impl Line {
    fn new(seq: u64, level: u8, s: &str) -> Line {
        let mut text = [0u8; 112];
        let n = s.len().min(text.len());
        text[..n].copy_from_slice(&s.as_bytes()[..n]);
        Line { seq, level, len: n as u8, _pad: [0; 6], text }
    }
    fn text(&self) -> String {
        let n = usize::from(self.len).min(self.text.len());
        String::from_utf8_lossy(&self.text[..n]).into_owned()
    }
}

const LEVELS: [&str; 3] = ["info", "warn", "error"];

/// dom0: takes lines until every guest's channel has closed.
struct Collect(usize);

impl Body for Collect {
    type Output = Result;
    fn run<P: Platform>(self, p: &P) -> Result {
        let mut rx = Receiver::<Line, _, _, _>::open(p.env()?, "logs")?;
        println!("{READY}");
        let (mut closed, mut per) = (0, BTreeMap::new());
        while closed < self.0 {
            match rx.recv_event()? {
                Delivery::Message { from, msg } => {
                    *per.entry(from).or_insert(0u64) += 1;
                    let level = LEVELS.get(usize::from(msg.level)).unwrap_or(&"?");
                    println!("[dom{from} #{} {level}] {}", msg.seq, msg.text());
                }
                Delivery::Closed { from, fault } => {
                    closed += 1;
                    println!(
                        "dom{from} closed its channel{}",
                        fault.map(|f| format!(": {f}")).unwrap_or_default()
                    );
                }
            }
        }
        println!("lines per guest: {per:?}");
        Ok(())
    }
}

/// A guest: publishes `n` lines, then waits until dom0 took them all.
struct Publish(u64);

impl Body for Publish {
    type Output = Result;
    fn run<P: Platform>(self, p: &P) -> Result {
        let mut tx = Sender::<Line, _, _, _>::open(p.env()?, "logs")?;
        for seq in 0..self.0 {
            let level = (seq % 7 == 6) as u8 + (seq % 13 == 12) as u8;
            let ms = (seq * 37 + u64::from(p.domid()) * 11) % 250;
            tx.send(&Line::new(seq, level, &format!("GET /item/{seq} served in {ms} ms")))?;
        }
        tx.sync(Some(std::time::Duration::from_secs(30)))?;
        Ok(())
    }
}

fn role(args: &[String]) -> Result {
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("collect") => platform::run(Collect(num(1, 3) as usize))?,
        Some("publish") => platform::run(Publish(num(1, 5)))?,
        _ => {
            let lines = num(0, 5).to_string();
            members::launch(
                "mq-logs",
                3,
                |xs, guests| {
                    Ok(mq::create(
                        xs,
                        &Spec::new::<Line>("logs", 3 * 16, Mode::FanOut, guests.to_vec(), vec![0])?,
                    )?)
                },
                &["collect".into(), "3".into()],
                &["publish".into(), lines],
            )
        }
    }
}

fn main() -> ExitCode {
    if let Err(code) = xenmq_examples::launch::init_log() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match role(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: mq_logs: {}", xenmq::error::Chain(&*e));
            ExitCode::FAILURE
        }
    }
}
