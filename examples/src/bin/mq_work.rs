//! dom0 fans work out to guests and collects the answers:
//! `cargo run -p xenmq-examples --bin mq_work [JOBS]`.
//!
//! Two queues: `jobs`, where dom0 sends and the guests compete (each job
//! goes to exactly one guest), and `answers`, where the guests send and
//! dom0 receives. A guest stops when dom0's channel closes; dom0 sees which
//! guest answered each job from the channel the answer came on.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use xenmq_examples::launch::Result;
use xenmq_examples::members::{self, READY};
use xenmq_runtime::mq::{self, Delivery, Mode, Receiver, Sender, Spec};
use xenmq_runtime::platform::{self, Body, Platform};

/// A job: how many Collatz steps does `n` take to reach 1?
#[xenmq::message]
pub struct Job {
    pub id: u64,
    pub n: u64,
}

/// Its answer.
#[xenmq::message]
pub struct Answer {
    pub id: u64,
    pub n: u64,
    pub steps: u64,
}

fn collatz(mut n: u64) -> u64 {
    let mut steps = 0;
    while n > 1 {
        n = if n.is_multiple_of(2) { n / 2 } else { n.saturating_mul(3).saturating_add(1) };
        steps += 1;
    }
    steps
}

/// dom0: hands out `jobs` jobs once `workers` guests listen, checks every answer.
struct Dispatch {
    jobs: u64,
    workers: usize,
}

impl Body for Dispatch {
    type Output = Result;
    fn run<P: Platform>(self, p: &P) -> Result {
        let mut answers = Receiver::<Answer, _, _, _>::open(p.env()?, "answers")?;
        let mut jobs = Sender::<Job, _, _, _>::open(p.env()?, "jobs")?;
        println!("{READY}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while jobs.receivers().len() < self.workers {
            if Instant::now() > deadline {
                return Err("the workers did not all open the queue".into());
            }
            std::thread::sleep(Duration::from_millis(10));
            jobs.refresh()?;
        }
        let mut by = BTreeMap::new();
        let (mut sent, mut got) = (0, 0);
        while got < self.jobs {
            // Keep sending while there is room, take answers as they come.
            while sent < self.jobs && jobs.try_send(&Job { id: sent, n: 27 + sent }).is_ok() {
                sent += 1;
            }
            if let Delivery::Message { from, msg } = answers.recv_event()? {
                if msg.steps != collatz(msg.n) || msg.n != 27 + msg.id {
                    return Err(format!("dom{from} answered job {} wrongly", msg.id).into());
                }
                *by.entry(from).or_insert(0u64) += 1;
                got += 1;
            }
        }
        println!("{got} jobs answered, per guest: {by:?}");
        Ok(()) // dropping `jobs` closes the guests' channels: they stop.
    }
}

/// A guest: answers jobs until dom0 closes its channel.
struct Work;

impl Body for Work {
    type Output = Result;
    fn run<P: Platform>(self, p: &P) -> Result {
        let mut answers = Sender::<Answer, _, _, _>::open(p.env()?, "answers")?;
        let mut jobs = Receiver::<Job, _, _, _>::open(p.env()?, "jobs")?;
        let mut done = 0;
        while let Delivery::Message { msg, .. } = jobs.recv_event()? {
            answers.send(&Answer { id: msg.id, n: msg.n, steps: collatz(msg.n) })?;
            done += 1;
        }
        answers.sync(Some(Duration::from_secs(30)))?;
        println!("answered {done} jobs");
        Ok(())
    }
}

fn role(args: &[String]) -> Result {
    let jobs = |i: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(1000u64);
    match args.first().map(String::as_str) {
        Some("dispatch") => platform::run(Dispatch { jobs: jobs(1), workers: 3 })?,
        Some("work") => platform::run(Work)?,
        _ => members::launch(
            "mq-work",
            3,
            |xs, guests| {
                mq::create(
                    xs,
                    &Spec::new::<Job>("jobs", 64, Mode::Compete, vec![0], guests.to_vec())?,
                )?;
                Ok(mq::create(
                    xs,
                    &Spec::new::<Answer>(
                        "answers",
                        3 * 64,
                        Mode::FanOut,
                        guests.to_vec(),
                        vec![0],
                    )?,
                )?)
            },
            &["dispatch".into(), jobs(0).to_string()],
            &["work".into()],
        ),
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
            eprintln!("error: mq_work: {}", xenmq::error::Chain(&*e));
            ExitCode::FAILURE
        }
    }
}
