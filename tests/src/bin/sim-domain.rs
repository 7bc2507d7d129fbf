//! A domain process for the simulator's multi-process tests.
//!
//! It connects as the domain named by `XENMQ_SIM_DIR`/`XENMQ_SIM_DOMID`,
//! then runs one command per line of stdin and answers with one line on
//! stdout, so a test can drive several domains step by step. It holds at
//! most one shared-pages value (S), one mapping (M) and one channel (C).
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::time::Duration;

use xenmq::evtchn::{Channel as _, Events};
use xenmq::grant::{Access, Grants, Shared as _};
use xenmq_runtime::sim::{Channel, Domain, MappedPages, SharedPages};

struct State {
    dom: Domain,
    s: Option<SharedPages>,
    m: Option<MappedPages>,
    c: Option<Channel>,
}

fn access(s: Option<&str>) -> Access {
    if s == Some("ro") {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    }
}

fn num<T: std::str::FromStr>(s: Option<&str>) -> Result<T, String> {
    s.and_then(|s| s.parse().ok())
        .ok_or_else(|| "bad number".to_owned())
}

fn read_u32(st: &State, mapped: bool, off: usize) -> Result<u32, String> {
    let mut b = [0u8; 4];
    match (mapped, &st.m, &st.s) {
        (true, Some(m), _) => m.read(off, &mut b).map_err(|e| e.to_string())?,
        (false, _, Some(s)) => s.read(off, &mut b).map_err(|e| e.to_string())?,
        _ => return Err("no pages".into()),
    }
    Ok(u32::from_le_bytes(b))
}

fn write_bytes(st: &State, mapped: bool, off: usize, data: &[u8]) -> Result<(), String> {
    match (mapped, &st.m, &st.s) {
        (true, Some(m), _) => m.write(off, data).map_err(|e| e.to_string()),
        (false, _, Some(s)) => s.write(off, data).map_err(|e| e.to_string()),
        _ => Err("no pages".into()),
    }
}

fn run(st: &mut State, line: &str) -> Result<String, String> {
    let mut w = line.split_whitespace();
    let cmd = w.next().unwrap_or("");
    let e = |x: &dyn std::fmt::Debug| format!("{x:?}");
    match cmd {
        "id" => Ok(st.dom.id().to_string()),
        "share" => {
            let peer = num(w.next())?;
            let n = num(w.next())?;
            let s = st.dom.share(peer, n, access(w.next())).map_err(|x| e(&x))?;
            let refs: Vec<String> = s.refs().iter().map(|r| r.to_string()).collect();
            st.s = Some(s);
            Ok(refs.join(","))
        }
        "map" => {
            let peer = num(w.next())?;
            let refs: Vec<u32> = w
                .next()
                .unwrap_or("")
                .split(',')
                .map(|r| r.parse().map_err(|_| "bad ref".to_owned()))
                .collect::<Result<_, _>>()?;
            let m = st
                .dom
                .map(peer, &refs, access(w.next()))
                .map_err(|x| e(&x))?;
            st.m = Some(m);
            Ok("ok".into())
        }
        "sread" | "mread" => {
            let off: usize = num(w.next())?;
            let len: usize = num(w.next())?;
            let mut buf = vec![0u8; len];
            match (cmd, &st.m, &st.s) {
                ("mread", Some(m), _) => m.read(off, &mut buf).map_err(|x| x.to_string())?,
                ("sread", _, Some(s)) => s.read(off, &mut buf).map_err(|x| x.to_string())?,
                _ => return Err("no pages".into()),
            }
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        "swrite" | "mwrite" => {
            let off: usize = num(w.next())?;
            let text = w.next().unwrap_or("");
            write_bytes(st, cmd == "mwrite", off, text.as_bytes())?;
            Ok("ok".into())
        }
        "unmap" => {
            st.m = None;
            Ok("ok".into())
        }
        "end" => {
            let s = st.s.take().ok_or("no pages")?;
            match s.end_access() {
                Ok(()) => Ok("ended".into()),
                Err((s, x)) => {
                    st.s = Some(s);
                    Err(e(&x))
                }
            }
        }
        "sdrop" => {
            st.s = None;
            Ok(format!("deferred {}", st.dom.deferred()))
        }
        "reclaim" => {
            let n = st.dom.reclaim();
            Ok(format!("reclaimed {n} deferred {}", st.dom.deferred()))
        }
        "unbound" => {
            let c = st.dom.alloc_unbound(num(w.next())?).map_err(|x| e(&x))?;
            let p = c.port();
            st.c = Some(c);
            Ok(p.to_string())
        }
        "bind" => {
            let peer = num(w.next())?;
            let port = num(w.next())?;
            let c = st.dom.bind_interdomain(peer, port).map_err(|x| e(&x))?;
            let p = c.port();
            st.c = Some(c);
            Ok(p.to_string())
        }
        "notify" => {
            st.c.as_ref()
                .ok_or("no channel")?
                .notify()
                .map_err(|x| e(&x))?;
            Ok("ok".into())
        }
        "wait" => {
            let ms = num(w.next())?;
            let got =
                st.c.as_ref()
                    .ok_or("no channel")?
                    .wait(Some(Duration::from_millis(ms)));
            Ok(if got.map_err(|x| e(&x))? {
                "event"
            } else {
                "timeout"
            }
            .into())
        }
        "status" => Ok(format!(
            "{:?}",
            st.c.as_ref()
                .ok_or("no channel")?
                .status()
                .map_err(|x| e(&x))?
        )),
        "echo" => {
            // Answer N pings: the value at offset 0 of S plus one, at 4.
            let n: u32 = num(w.next())?;
            let mut done = 0;
            while done < n {
                let c = st.c.as_ref().ok_or("no channel")?;
                if !c.wait(Some(Duration::from_secs(10))).map_err(|x| e(&x))? {
                    return Err("echo timed out".into());
                }
                let v = read_u32(st, false, 0)?;
                if v == done {
                    write_bytes(st, false, 4, &(v + 1).to_le_bytes())?;
                    done += 1;
                }
                st.c.as_ref()
                    .ok_or("no channel")?
                    .notify()
                    .map_err(|x| e(&x))?;
            }
            Ok(format!("echoed {n}"))
        }
        "ping" => {
            // N round trips through M: write i at 0, wait for i+1 at 4.
            let n: u32 = num(w.next())?;
            for i in 0..n {
                write_bytes(st, true, 0, &i.to_le_bytes())?;
                st.c.as_ref()
                    .ok_or("no channel")?
                    .notify()
                    .map_err(|x| e(&x))?;
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while read_u32(st, true, 4)? != i + 1 {
                    if std::time::Instant::now() > deadline {
                        return Err(format!("ping {i} timed out"));
                    }
                    st.c.as_ref()
                        .ok_or("no channel")?
                        .wait(Some(Duration::from_millis(100)))
                        .map_err(|x| e(&x))?;
                }
            }
            Ok(format!("pinged {n}"))
        }
        "exit" => std::process::exit(0),
        other => Err(format!("unknown command {other}")),
    }
}

fn main() {
    let dom = match Domain::from_env() {
        Ok(d) => d,
        Err(e) => {
            println!("err {e}");
            std::process::exit(3);
        }
    };
    let mut st = State {
        dom,
        s: None,
        m: None,
        c: None,
    };
    let stdout = std::io::stdout();
    println!("ready {}", st.dom.id());
    let _ = stdout.lock().flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match run(&mut st, &line) {
            Ok(s) => s,
            Err(e) => format!("err {e}"),
        };
        println!("{reply}");
        let _ = stdout.lock().flush();
    }
}
