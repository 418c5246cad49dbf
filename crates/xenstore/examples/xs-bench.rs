//! xs-bench: rxenstored side by side with Debian's C xenstored and oxenstored (Xen
//! 4.17, run without Xen by tests/peer/run-peer.sh), all driven by the same client
//! (`xenstore::client`). Prints Markdown tables for docs/PERFORMANCE.md.
//!
//! ```text
//! cargo build --release -p xenstore --bins --examples
//! target/release/examples/xs-bench [--secs 0.5] [--reps 3] [--daemons rx,c,ocaml] [--rxenstored PATH]
//! ```
//!
//! Workloads (each with 1 and 16 client threads, and with 0 and 1000 idle
//! connections open): READ and WRITE of 1 and 2000 bytes, DIRECTORY of 10 and 2000
//! children (the latter needs DIRECTORY_PART), read-modify-write transactions on 4
//! contended keys; then watch fan-out (1 writer, 100 watchers, every event
//! delivered), and resident memory with 1000 domain-like subtrees of 100 nodes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use xenstore::client::{Client, ClientError, XsOps};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Benchmark rxenstored against C xenstored and oxenstored")]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 0.5)]
    secs: f64,
    /// Daemons to compare, in order: rx, c, ocaml.
    #[arg(long, value_delimiter = ',', default_value = "rx,c,ocaml")]
    daemons: Vec<String>,
    /// The rxenstored binary (default: beside this example's directory).
    #[arg(long)]
    rxenstored: Option<PathBuf>,
    /// Idle connection counts to run with.
    #[arg(long, value_delimiter = ',', default_value = "0,1000")]
    idle: Vec<usize>,
    /// Client thread counts.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    clients: Vec<usize>,
    /// Repetitions per measurement; the best is reported (other processes on a
    /// shared machine only ever make a run slower).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Only the workloads whose name contains one of these (e.g. `read 1,txn`);
    /// all by default.
    #[arg(long, value_delimiter = ',')]
    work: Vec<String>,
    /// Where a single client and the daemon run during the 1-client measurements:
    /// `same` (both pinned to CPU 0), `split` (client on CPU 0, daemon on CPU 1)
    /// or `free` (the kernel's choice). With one client every request wakes the
    /// other side, and a wake-up across CPUs (an IPI, and an idle exit, costly in a
    /// VM) costs both daemons 3-5 times what the request itself does; left to the
    /// kernel, each measurement lands in one mode or the other, at random.
    #[arg(long, value_enum, default_value_t = Placement::Same)]
    one_client: Placement,
    /// Skip the watch fan-out measurement.
    #[arg(long)]
    no_fanout: bool,
    /// Skip the memory measurement.
    #[arg(long)]
    no_memory: bool,
    /// Only the memory measurement (no throughput or fan-out runs before it).
    #[arg(long, conflicts_with = "no_memory")]
    memory_only: bool,
}

/// CPU placement of the 1-client measurements (see `Args::one_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Placement {
    Same,
    Split,
    Free,
}

impl Placement {
    /// CPUs of the daemon and of the client, if pinned.
    fn cpus(self) -> Option<(&'static str, &'static str)> {
        match self {
            Placement::Same => Some(("0", "0")),
            Placement::Split => Some(("1", "0")),
            Placement::Free => None,
        }
    }
}

/// Sets the CPU affinity of every thread of process (or thread) `pid`.
fn pin(pid: u32, cpus: &str) -> Result<()> {
    let st = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !st.success() {
        bail!("taskset -a -p -c {cpus} {pid}: {st}");
    }
    Ok(())
}

/// The online CPUs, as taskset takes them ("0-1").
fn online_cpus() -> Result<String> {
    Ok(std::fs::read_to_string("/sys/devices/system/cpu/online")
        .context("reading /sys/devices/system/cpu/online")?
        .trim()
        .to_string())
}

/// A daemon under test.
struct Daemon {
    name: &'static str,
    socket: PathBuf,
    child: Child,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_socket(child: &mut Child, socket: &Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            bail!("daemon exited: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("daemon did not listen on {}", socket.display())
}

fn start(kind: &str, args: &Args) -> Result<Daemon> {
    let dir = std::env::temp_dir().join(format!("xs-bench-{}-{kind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("socket");
    let log = std::fs::File::create(dir.join("log"))?;
    let (name, mut child) = match kind {
        "rx" => {
            let bin = match &args.rxenstored {
                Some(p) => p.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .and_then(Path::parent)
                    .context("locating rxenstored")?
                    .join("rxenstored"),
            };
            let child = Command::new(&bin)
                .args(["--no-fork", "--socket"])
                .arg(&socket)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            ("rxenstored", child)
        }
        "c" | "ocaml" => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/run-peer.sh");
            let child = Command::new(script)
                .arg(kind)
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?;
            (
                if kind == "c" {
                    "C xenstored"
                } else {
                    "oxenstored"
                },
                child,
            )
        }
        other => bail!("unknown daemon {other}"),
    };
    wait_socket(&mut child, &socket)?;
    Ok(Daemon {
        name,
        socket,
        child,
        dir,
    })
}

/// One throughput workload.
#[derive(Debug, Clone, Copy)]
enum Work {
    Read1,
    Read2000,
    Write1,
    Write2000,
    Dir10,
    Dir2000,
    Txn,
}

impl Work {
    const ALL: [Work; 7] = [
        Work::Read1,
        Work::Read2000,
        Work::Write1,
        Work::Write2000,
        Work::Dir10,
        Work::Dir2000,
        Work::Txn,
    ];

    fn name(self) -> &'static str {
        match self {
            Work::Read1 => "read 1 B",
            Work::Read2000 => "read 2000 B",
            Work::Write1 => "write 1 B",
            Work::Write2000 => "write 2000 B",
            Work::Dir10 => "directory 10",
            Work::Dir2000 => "directory 2000",
            Work::Txn => "txn rmw, 4 keys",
        }
    }
}

/// Creates the nodes the workloads read.
fn setup(socket: &Path) -> Result<()> {
    let mut c = Client::connect_socket(socket)?;
    c.write("/bench/v1", b"x")?;
    c.write("/bench/v2000", &[b'y'; 2000])?;
    for i in 0..10 {
        c.mkdir(&format!("/bench/d10/c{i}"))?;
    }
    c.transaction(|tx| {
        for i in 0..2000 {
            tx.mkdir(&format!("/bench/d2000/child{i:04}"))?;
        }
        Ok::<_, ClientError>(())
    })?;
    for k in 0..4 {
        c.write(&format!("/bench/ctr{k}"), b"0")?;
    }
    Ok(())
}

/// Transaction bodies run (first attempts and retries after `EAGAIN`), for the
/// attempts-per-commit figure printed beside the transaction workload.
static TXN_ATTEMPTS: AtomicU64 = AtomicU64::new(0);

/// One operation; `false` when it did not complete (a starved transaction).
fn one_op(c: &mut Client, w: Work, me: usize, i: u64) -> Result<bool> {
    match w {
        Work::Read1 => drop(c.read("/bench/v1")?),
        Work::Read2000 => drop(c.read("/bench/v2000")?),
        Work::Write1 => c.write(&format!("/bench/w/{me}"), b"z")?,
        Work::Write2000 => c.write(&format!("/bench/w/{me}"), &[b'z'; 2000])?,
        Work::Dir10 => drop(c.directory("/bench/d10")?),
        Work::Dir2000 => {
            let n = c.directory("/bench/d2000")?.len();
            if n != 2000 {
                bail!("directory returned {n} children");
            }
        }
        Work::Txn => {
            let key = format!("/bench/ctr{}", (me as u64 + i) % 4);
            let r = c.transaction(|tx| {
                TXN_ATTEMPTS.fetch_add(1, Ordering::Relaxed);
                let n: u64 = tx.read_string(&key)?.parse().unwrap_or(0);
                tx.write(&key, (n + 1).to_string().as_bytes())
            });
            match r {
                Ok(()) => {}
                // Starved under contention: not a commit, not an error.
                Err(ClientError::TooManyRetries(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(true)
}

/// Clock ticks per second of /proc/<pid>/stat times (Linux's USER_HZ, 100 on
/// every architecture's user ABI).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system) the process has used, in seconds.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).context("utime")?.parse()?;
    let stime: f64 = f.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / USER_HZ)
}

/// Operations per second with `clients` threads for `secs`, and the daemon's CPU
/// microseconds per operation (robust against other load on the machine).
/// With `cpus` (daemon, client), both are pinned for the measurement.
fn throughput(
    socket: &Path,
    pid: u32,
    w: Work,
    clients: usize,
    secs: f64,
    cpus: Option<(&'static str, &'static str)>,
) -> Result<(f64, f64)> {
    if let Some((daemon, _)) = cpus {
        pin(pid, daemon)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut handles = Vec::new();
    for me in 0..clients {
        let (stop, done, barrier) = (stop.clone(), done.clone(), barrier.clone());
        let socket = socket.to_path_buf();
        handles.push(std::thread::spawn(move || -> Result<()> {
            if let Some((_, client)) = cpus {
                pin(nix::unistd::gettid().as_raw().unsigned_abs(), client)?;
            }
            let mut c = Client::connect_socket(&socket)?;
            barrier.wait();
            let (mut i, mut ok) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                if one_op(&mut c, w, me, i)? {
                    ok += 1;
                }
                i += 1;
            }
            done.fetch_add(ok, Ordering::Relaxed);
            Ok(())
        }));
    }
    barrier.wait();
    let attempts0 = TXN_ATTEMPTS.load(Ordering::Relaxed);
    let cpu0 = cpu_secs(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid)? - cpu0;
    if cpus.is_some() {
        pin(pid, &online_cpus()?)?;
    }
    let ops = done.load(Ordering::Relaxed) as f64;
    let attempts = TXN_ATTEMPTS.load(Ordering::Relaxed) - attempts0;
    if attempts > 0 && ops > 0.0 {
        eprintln!(
            "    {clients} clients: {:.2} transaction attempts per commit",
            attempts as f64 / ops
        );
    }
    let cpu_per_op = if ops > 0.0 {
        cpu * 1e6 / ops
    } else {
        f64::INFINITY
    };
    Ok((ops / elapsed, cpu_per_op))
}

/// Watch fan-out: one writer, `watchers` watchers, `writes` distinct paths;
/// returns delivered events per second (every watcher must see every write).
fn fanout(socket: &Path, watchers: usize, writes: usize) -> Result<f64> {
    let barrier = Arc::new(Barrier::new(watchers + 1));
    let mut handles = Vec::new();
    for i in 0..watchers {
        let barrier = barrier.clone();
        let socket = socket.to_path_buf();
        handles.push(std::thread::spawn(move || -> Result<()> {
            let mut c = Client::connect_socket(&socket)?;
            c.watch("/fan", &format!("w{i}"))?;
            // The registration event.
            c.next_event()?;
            barrier.wait();
            let mut seen = 0;
            while seen < writes {
                match c.next_event_timeout(Duration::from_secs(30))? {
                    Some(e) if e.path.starts_with("/fan/") => seen += 1,
                    Some(_) => {}
                    None => bail!("watcher {i} saw only {seen} of {writes} events"),
                }
            }
            Ok(())
        }));
    }
    barrier.wait();
    let mut w = Client::connect_socket(socket)?;
    let t0 = Instant::now();
    for k in 0..writes {
        w.write(&format!("/fan/k{k}"), b"v")?;
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("watcher panicked"))??;
    }
    let el = t0.elapsed().as_secs_f64();
    w.rm("/fan")?;
    Ok((watchers * writes) as f64 / el)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

/// Resident memory growth after 1000 subtrees of 100 nodes.
fn memory(d: &Daemon) -> Result<(u64, u64)> {
    let before = rss_kib(d.child.id())?;
    let mut c = Client::connect_socket(&d.socket)?;
    for dom in 1..=1000 {
        c.transaction(|tx| {
            let base = format!("/local/domain/{dom}");
            tx.write(&format!("{base}/name"), format!("guest-{dom}").as_bytes())?;
            for dev in 0..9 {
                let be = format!("/local/domain/0/backend/vbd/{dom}/{dev}");
                let fe = format!("{base}/device/vbd/{dev}");
                for (k, v) in [
                    ("state", "4"),
                    ("backend-id", "0"),
                    ("ring-ref", "8"),
                    ("event-channel", "5"),
                    ("protocol", "arm-abi"),
                ] {
                    tx.write(&format!("{fe}/{k}"), v.as_bytes())?;
                }
                for (k, v) in [
                    ("state", "4"),
                    ("frontend-id", "1"),
                    ("params", "/dev/vg/guest-disk"),
                    ("mode", "w"),
                    ("sectors", "20971520"),
                ] {
                    tx.write(&format!("{be}/{k}"), v.as_bytes())?;
                }
            }
            Ok::<_, ClientError>(())
        })?;
    }
    let after = rss_kib(d.child.id())?;
    Ok((before, after))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut names = Vec::new();
    // results[workload row][daemon] = ops/s
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    // the same rows: daemon CPU microseconds per operation
    let mut cpu_rows: Vec<Vec<f64>> = Vec::new();
    let mut fan = Vec::new();
    let mut mem = Vec::new();
    let idles: Vec<usize> = if args.memory_only {
        Vec::new()
    } else {
        args.idle.clone()
    };
    for (di, kind) in args.daemons.iter().enumerate() {
        let d = start(kind, &args).with_context(|| format!("starting {kind}"))?;
        names.push(d.name);
        setup(&d.socket).with_context(|| format!("setting up {}", d.name))?;
        let mut row = 0;
        for &idle in &idles {
            let mut idle_conns: Vec<_> = (0..idle)
                .map(|_| Client::connect_socket(&d.socket))
                .collect::<Result<_, _>>()?;
            // One request each: the daemon has accepted them all before measuring.
            for c in &mut idle_conns {
                c.get_domain_path(0)?;
            }
            for w in Work::ALL {
                if !args.work.is_empty() && !args.work.iter().any(|f| w.name().contains(f.as_str()))
                {
                    continue;
                }
                for &clients in &args.clients {
                    let (mut r, mut cpu): (f64, f64) = (0.0, f64::INFINITY);
                    for _ in 0..args.reps.max(1) {
                        let cpus = if clients == 1 {
                            args.one_client.cpus()
                        } else {
                            None
                        };
                        let (rate, c) =
                            throughput(&d.socket, d.child.id(), w, clients, args.secs, cpus)
                                .with_context(|| format!("{} {} x{clients}", d.name, w.name()))?;
                        r = r.max(rate);
                        cpu = cpu.min(c);
                    }
                    if di == 0 {
                        rows.push((format!("{} | {clients} | {idle}", w.name()), Vec::new()));
                        cpu_rows.push(Vec::new());
                    }
                    rows[row].1.push(r);
                    cpu_rows[row].push(cpu);
                    row += 1;
                    eprintln!(
                        "{:12} {:18} clients {clients:2} idle {idle:4}: {r:10.0} ops/s {cpu:8.2} us CPU/op",
                        d.name,
                        w.name()
                    );
                }
            }
            if !args.no_fanout {
                let mut f: f64 = 0.0;
                for _ in 0..args.reps.max(1) {
                    f = f.max(fanout(&d.socket, 100, 200)?);
                }
                eprintln!("{:12} fan-out 1x100, idle {idle}: {f:.0} events/s", d.name);
                fan.push((idle, di, f));
            }
            drop(idle_conns);
        }
        if !args.no_memory {
            let (b, a) = memory(&d)?;
            eprintln!("{:12} RSS {b} KiB -> {a} KiB", d.name);
            mem.push((b, a));
        }
    }
    if !args.memory_only {
        println!(
            "| workload | clients | idle conns | {} | {} |",
            names.join(" ops/s | "),
            ratio_header(&names)
        );
        println!(
            "|---|---|---|{}{}",
            "---|".repeat(names.len()),
            "---|".repeat(names.len().saturating_sub(1))
        );
        for (label, vals) in &rows {
            println!("| {label} | {} | {} |", fmt_vals(vals), ratios(vals));
        }
        println!();
        println!(
            "| workload | clients | idle conns | {} | {} |",
            names.join(" CPU us/op | "),
            names
                .iter()
                .skip(1)
                .map(|n| format!("{n} / rx"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!(
            "|---|---|---|{}{}",
            "---|".repeat(names.len()),
            "---|".repeat(names.len().saturating_sub(1))
        );
        for ((label, _), cpu) in rows.iter().zip(&cpu_rows) {
            let inv: Vec<f64> = cpu.iter().map(|c| 1.0 / c).collect();
            println!(
                "| {label} | {} | {} |",
                cpu.iter()
                    .map(|c| format!("{c:.2}"))
                    .collect::<Vec<_>>()
                    .join(" | "),
                ratios(&inv)
            );
        }
    }
    if !args.memory_only && !args.no_fanout {
        println!();
        println!(
            "| watch fan-out (1 writer, 100 watchers) | idle conns | {} events/s | {} |",
            names.join(" | "),
            ratio_header(&names)
        );
        for &idle in &idles {
            let vals: Vec<f64> = fan.iter().filter(|f| f.0 == idle).map(|f| f.2).collect();
            println!(
                "| 200 distinct writes | {idle} | {} | {} |",
                fmt_vals(&vals),
                ratios(&vals)
            );
        }
    }
    if !mem.is_empty() {
        println!();
        println!("| resident memory (KiB) | {} |", names.join(" | "));
        println!(
            "| before | {} |",
            mem.iter()
                .map(|m| m.0.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!(
            "| after 1000 x 91 nodes | {} |",
            mem.iter()
                .map(|m| m.1.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let growth: Vec<f64> = mem.iter().map(|m| m.1 as f64 - m.0 as f64).collect();
        println!(
            "| growth | {} |",
            growth
                .iter()
                .map(|g| format!("{g:.0}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        if growth.len() > 1 {
            let rel: Vec<String> = growth[1..]
                .iter()
                .map(|g| format!("{:.2}", growth[0] / g))
                .collect();
            println!("| rx growth / peer growth | - | {} |", rel.join(" | "));
        }
    }
    Ok(())
}

fn fmt_vals(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn ratio_header(names: &[&str]) -> String {
    names
        .iter()
        .skip(1)
        .map(|n| format!("rx / {n}"))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn ratios(v: &[f64]) -> String {
    v.iter()
        .skip(1)
        .map(|x| {
            if *x > 0.0 {
                format!("{:.2}", v[0] / x)
            } else {
                "-".into()
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
