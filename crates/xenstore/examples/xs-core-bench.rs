//! xs-core-bench: the server core's own CPU per request, without sockets or a
//! kernel: requests go straight into `process::Server::handle` and replies are
//! taken with `pop_output`. What the daemon's user-space code costs per
//! operation of xs-bench's workloads, free of the machine's load.
//!
//! ```text
//! cargo run --release -p xenstore --example xs-core-bench [-- --iters 200000]
//! ```

use std::time::Instant;

use clap::Parser;
use xenstore::process::{Config, ConnKind, Server};
use xenstore::wire::{Message, MsgType};

#[derive(Debug, Parser)]
#[command(about = "CPU per request of rxenstored's core, without sockets")]
struct Args {
    /// Operations per workload (directory 2000 and transactions run a tenth).
    #[arg(long, default_value_t = 200_000)]
    iters: u64,
    /// Repetitions per workload; the fastest is reported.
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

/// CPU time of the calling thread, in nanoseconds (its schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

struct Core {
    server: Server,
    conn: xenstore::process::ConnId,
    req_id: u32,
}

impl Core {
    /// Sends one request and returns its reply's type and payload.
    fn call(&mut self, kind: MsgType, tx: u32, payload: Vec<u8>) -> (u32, Vec<u8>) {
        self.req_id = self.req_id.wrapping_add(1);
        self.server
            .handle(self.conn, Message::new(kind, self.req_id, tx, payload));
        let mut reply = None;
        while let Some(m) = self.server.pop_output(self.conn) {
            if m.header.msg_type != MsgType::WatchEvent as u32 {
                reply = Some((m.header.msg_type, m.payload));
            }
        }
        let _ = self.server.take_woken();
        reply.expect("a reply")
    }
}

fn arg(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p);
        v.push(0);
    }
    v
}

fn main() {
    let args = Args::parse();
    let mut server = Server::new(Config::default());
    let conn = server.connect(ConnKind::Socket);
    let mut c = Core {
        server,
        conn,
        req_id: 0,
    };
    let mut setup = |p: &str, v: &[u8]| {
        let mut payload = p.as_bytes().to_vec();
        payload.push(0);
        payload.extend_from_slice(v);
        c.call(MsgType::Write, 0, payload);
    };
    setup("/bench/v1", b"x");
    setup("/bench/v2000", &[b'y'; 2000]);
    for i in 0..10 {
        setup(&format!("/bench/d10/c{i}"), b"");
    }
    for i in 0..2000 {
        setup(&format!("/bench/d2000/child{i:04}"), b"");
    }
    for k in 0..4 {
        setup(&format!("/bench/ctr{k}"), b"0");
    }
    type Op = fn(&mut Core, u64);
    let works: [(&str, Op, u64); 7] = [
        (
            "read 1 B",
            |c, _| drop(c.call(MsgType::Read, 0, arg(&[b"/bench/v1"]))),
            1,
        ),
        (
            "read 2000 B",
            |c, _| drop(c.call(MsgType::Read, 0, arg(&[b"/bench/v2000"]))),
            1,
        ),
        (
            "write 1 B",
            |c, _| drop(c.call(MsgType::Write, 0, b"/bench/w/0\0z".to_vec())),
            1,
        ),
        (
            "write 2000 B",
            |c, _| {
                let mut p = b"/bench/w/0\0".to_vec();
                p.extend_from_slice(&[b'z'; 2000]);
                drop(c.call(MsgType::Write, 0, p));
            },
            1,
        ),
        (
            "directory 10",
            |c, _| drop(c.call(MsgType::Directory, 0, arg(&[b"/bench/d10"]))),
            1,
        ),
        (
            "directory 2000",
            |c, _| {
                // As the client does it: DIRECTORY (E2BIG), then the parts.
                let (t, _) = c.call(MsgType::Directory, 0, arg(&[b"/bench/d2000"]));
                assert_eq!(t, MsgType::Error as u32);
                let mut off = 0usize;
                loop {
                    let o = off.to_string();
                    let (t, p) = c.call(
                        MsgType::DirectoryPart,
                        0,
                        arg(&[b"/bench/d2000", o.as_bytes()]),
                    );
                    assert_eq!(t, MsgType::DirectoryPart as u32);
                    let start = p.iter().position(|b| *b == 0).expect("generation") + 1;
                    let body = &p[start..];
                    if body.ends_with(b"\0\0") || body == b"\0" {
                        break;
                    }
                    off += body.len();
                }
            },
            10,
        ),
        (
            "txn rmw, 4 keys",
            |c, i| {
                let key = format!("/bench/ctr{}", i % 4);
                let (_, id) = c.call(MsgType::TransactionStart, 0, b"\0".to_vec());
                let tx: u32 = std::str::from_utf8(&id[..id.len() - 1])
                    .expect("id")
                    .parse()
                    .expect("id");
                let (_, v) = c.call(MsgType::Read, tx, arg(&[key.as_bytes()]));
                let n: u64 = std::str::from_utf8(&v).unwrap_or("0").parse().unwrap_or(0);
                let mut p = key.into_bytes();
                p.push(0);
                p.extend_from_slice((n + 1).to_string().as_bytes());
                c.call(MsgType::Write, tx, p);
                c.call(MsgType::TransactionEnd, tx, b"T\0".to_vec());
            },
            10,
        ),
    ];
    println!("| workload | core CPU ns/op | requests/op |");
    println!("|---|---|---|");
    for (name, op, div) in works {
        let iters = (args.iters / div).max(1);
        let mut best = f64::INFINITY;
        let mut reqs = 0.0;
        for _ in 0..args.reps.max(1) {
            let r0 = c.req_id;
            let cpu0 = thread_cpu_ns();
            let t0 = Instant::now();
            for i in 0..iters {
                op(&mut c, i);
            }
            let _wall = t0.elapsed();
            let ns = (thread_cpu_ns() - cpu0) as f64 / iters as f64;
            best = best.min(ns);
            reqs = f64::from(c.req_id.wrapping_sub(r0)) / iters as f64;
        }
        println!("| {name} | {best:.0} | {reqs:.1} |");
    }
}
