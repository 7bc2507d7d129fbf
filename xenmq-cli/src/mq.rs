//! `xenmq mq create | ls | stat | rm`: named message queues in a Xenstore
//! (the simulator's or dom0's). Domains are named as `xl` takes them.

use std::process::ExitCode;

use serde::Serialize;
use xenmq::grant::DomId;
use xenmq_runtime::mq::{self, Mode, Role, Spec, Stat};
use xenmq_runtime::toolstack::{self, DomainRef};
use xenmq_runtime::xenstore::Connection;

use crate::device::{print_json, Xenstore};
use crate::fail::Failure;

/// The queue verbs.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, clap::Subcommand)]
enum Verb {
    /// Create a queue: its message type, capacity, mode and access list
    Create(CreateArgs),
    /// List the queues
    Ls(LsArgs),
    /// Show a queue: its spec, members, depth and counts per member
    Stat(StatArgs),
    /// Remove a queue (its members see it gone)
    Rm(RmArgs),
}

fn queue_name(s: &str) -> Result<String, String> {
    if xenmq::mq::valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(xenmq::mq::Error::BadName { name: s.to_owned() }.to_string())
    }
}

fn fingerprint(s: &str) -> Result<u64, String> {
    s.strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("`{s}` is not 0x and hex digits"))
}

fn mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("`{s}` is neither fan-out nor compete"))
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The message type is its `#[xenmq::message]` fingerprint and size \
(`<M as xenmq::wire::Message>::FINGERPRINT`, `SIZE`); members opening the queue with \
another type are refused."
)]
struct CreateArgs {
    /// The queue's name (a-z, 0-9, `-`, `_`)
    #[arg(value_parser = queue_name)]
    name: String,
    /// The message type's fingerprint (0x and 16 hex digits)
    #[arg(long, value_parser = fingerprint)]
    fingerprint: u64,
    /// The message type's size in bytes
    #[arg(long, value_name = "BYTES")]
    message_size: u32,
    /// The most messages in flight to one receiver, from all senders
    #[arg(long, value_name = "N")]
    capacity: u32,
    /// The most messages in flight from one sender to one receiver
    /// (default: the capacity shared evenly among the senders)
    #[arg(long, value_name = "N")]
    quota: Option<u32>,
    /// fan-out: every receiver gets every message; compete: each message
    /// goes to one receiver
    #[arg(long, value_parser = mode, default_value = "fan-out")]
    mode: Mode,
    /// The domains that may send (ids or names, comma-separated)
    #[arg(long, value_delimiter = ',', required = true, value_name = "DOMAIN")]
    senders: Vec<DomainRef>,
    /// The domains that may receive (ids or names, comma-separated)
    #[arg(long, value_delimiter = ',', required = true, value_name = "DOMAIN")]
    receivers: Vec<DomainRef>,
    #[command(flatten)]
    xenstore: Xenstore,
}

#[derive(Debug, clap::Args)]
struct LsArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    xenstore: Xenstore,
}

#[derive(Debug, clap::Args)]
struct StatArgs {
    /// The queue
    #[arg(value_parser = queue_name)]
    name: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    xenstore: Xenstore,
}

#[derive(Debug, clap::Args)]
struct RmArgs {
    /// The queue
    #[arg(value_parser = queue_name)]
    name: String,
    #[command(flatten)]
    xenstore: Xenstore,
}

impl Args {
    /// Whether the verb prints JSON.
    pub fn json(&self) -> bool {
        match &self.verb {
            Verb::Ls(a) => a.json,
            Verb::Stat(a) => a.json,
            _ => false,
        }
    }
}

/// Runs a queue verb.
pub fn main(a: Args) -> Result<ExitCode, Failure> {
    match a.verb {
        Verb::Create(a) => create(a),
        Verb::Ls(a) => ls(a),
        Verb::Stat(a) => stat(a),
        Verb::Rm(a) => rm(a),
    }
}

/// A queue error: a usage error when the arguments make no queue, else a
/// run-time one.
fn failure(verb: &'static str, e: mq::Error) -> Failure {
    match e {
        mq::Error::Queue(q @ xenmq::mq::Error::BadSpec { .. }) => {
            Failure::usage(&["mq", verb], q.to_string())
        }
        other => Failure::run(other),
    }
}

fn domains(xs: &Connection, list: &[DomainRef]) -> Result<Vec<DomId>, Failure> {
    list.iter()
        .map(|d| {
            toolstack::domain_id(xs, d).map_err(|e| match e {
                toolstack::Error::NoDomain(_) | toolstack::Error::AmbiguousName(..) => {
                    Failure::usage(&["mq", "create"], e.to_string())
                }
                e => Failure::run(e),
            })
        })
        .collect()
}

fn create(a: CreateArgs) -> Result<ExitCode, Failure> {
    let xs = a.xenstore.connect()?;
    let senders = domains(&xs, &a.senders)?;
    let receivers = domains(&xs, &a.receivers)?;
    let n = u32::try_from(senders.len()).unwrap_or(u32::MAX).max(1);
    let spec = Spec {
        name: a.name,
        fingerprint: a.fingerprint,
        message_size: a.message_size,
        capacity: a.capacity,
        quota: a.quota.unwrap_or(a.capacity / n),
        mode: a.mode,
        senders,
        receivers,
    };
    mq::create(&xs, &spec).map_err(|e| failure("create", e))?;
    println!(
        "created queue {}: {} senders, {} receivers, {}, capacity {}, quota {}",
        spec.name,
        spec.senders.len(),
        spec.receivers.len(),
        spec.mode,
        spec.capacity,
        spec.quota
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct LsJson {
    queues: Vec<QueueJson>,
}

#[derive(Debug, Serialize)]
struct QueueJson {
    name: String,
    /// Why the queue could not be read, if it could not.
    error: Option<String>,
    fingerprint: Option<String>,
    message_size: Option<u32>,
    capacity: Option<u32>,
    quota: Option<u32>,
    mode: Option<&'static str>,
    depth: Option<u64>,
    members: Vec<MemberJson>,
}

#[derive(Debug, Serialize)]
struct MemberJson {
    domain: DomId,
    role: &'static str,
    open: bool,
    count: u64,
    links: Vec<DomId>,
}

fn queue_json(name: &str, st: Result<Stat, mq::Error>) -> QueueJson {
    match st {
        Ok(st) => QueueJson {
            name: name.to_owned(),
            error: None,
            fingerprint: Some(format!("{:#018x}", st.spec.fingerprint)),
            message_size: Some(st.spec.message_size),
            capacity: Some(st.spec.capacity),
            quota: Some(st.spec.quota),
            mode: Some(st.spec.mode.name()),
            depth: Some(st.depth()),
            members: st
                .members
                .iter()
                .map(|m| MemberJson {
                    domain: m.domid,
                    role: m.role.dir(),
                    open: m.open,
                    count: m.count,
                    links: m.links.clone(),
                })
                .collect(),
        },
        Err(e) => QueueJson {
            name: name.to_owned(),
            error: Some(xenmq::error::Chain(&e).to_string()),
            fingerprint: None,
            message_size: None,
            capacity: None,
            quota: None,
            mode: None,
            depth: None,
            members: Vec::new(),
        },
    }
}

fn ls(a: LsArgs) -> Result<ExitCode, Failure> {
    let xs = a.xenstore.connect()?;
    let names = mq::list(&xs).map_err(Failure::run)?;
    let queues: Vec<QueueJson> = names
        .iter()
        .map(|n| queue_json(n, mq::stat(&xs, n)))
        .collect();
    if a.json {
        print_json(&LsJson { queues })?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<8} {:>8} {:>6} {:>7} {:>9} {:>8}",
        "QUEUE", "MODE", "CAPACITY", "QUOTA", "SENDERS", "RECEIVERS", "DEPTH"
    );
    for q in &queues {
        if let Some(e) = &q.error {
            println!("{:<24} error: {e}", q.name);
            continue;
        }
        let count = |role: &str| q.members.iter().filter(|m| m.role == role).count();
        println!(
            "{:<24} {:<8} {:>8} {:>6} {:>7} {:>9} {:>8}",
            q.name,
            q.mode.unwrap_or("-"),
            q.capacity.unwrap_or(0),
            q.quota.unwrap_or(0),
            count("sender"),
            count("receiver"),
            q.depth.unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn stat(a: StatArgs) -> Result<ExitCode, Failure> {
    let xs = a.xenstore.connect()?;
    let st = mq::stat(&xs, &a.name).map_err(Failure::run)?;
    if a.json {
        print_json(&queue_json(&a.name, Ok(st)))?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &st.spec;
    println!("queue {}", s.name);
    println!(
        "  message     {} bytes, fingerprint {:#018x}",
        s.message_size, s.fingerprint
    );
    println!(
        "  mode        {}, capacity {}, quota {} per sender",
        s.mode, s.capacity, s.quota
    );
    println!("  depth       {}", st.depth());
    println!(
        "  {:<8} {:>6} {:<6} {:>12}  CHANNELS",
        "ROLE", "DOMAIN", "OPEN", "COUNT"
    );
    for m in &st.members {
        let links: Vec<String> = m.links.iter().map(|d| d.to_string()).collect();
        println!(
            "  {:<8} {:>6} {:<6} {:>12}  {}",
            m.role.dir(),
            m.domid,
            if m.open { "yes" } else { "no" },
            m.count,
            match m.role {
                Role::Sender => links.join(","),
                Role::Receiver => String::new(),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(a: RmArgs) -> Result<ExitCode, Failure> {
    let xs = a.xenstore.connect()?;
    mq::remove(&xs, &a.name).map_err(Failure::run)?;
    println!("removed queue {}", a.name);
    Ok(ExitCode::SUCCESS)
}
