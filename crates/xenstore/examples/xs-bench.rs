//! xs-bench: rxenstored side by side with Debian's C xenstored and oxenstored (Xen
//! 4.17, run without Xen by tests/peer/run-peer.sh), all driven by the same client
//! (`xenstore::client`). Prints Markdown tables for docs/PERFORMANCE.md.
//!
//! ```text
//! cargo build --release -p xenstore --bins --examples
//! target/release/examples/xs-bench [--secs 0.2] [--reps 11] [--daemons rx,c,ocaml] [--rxenstored PATH]
//! ```
//!
//! All daemons run for the whole benchmark and take turns: each measurement is
//! `--reps` repetitions in which every daemon runs once (in alternating order),
//! and the median of the repetitions is reported, so that the load of a shared
//! machine hits every daemon alike. Besides operations per second: the daemon's
//! CPU, context switches and the clients' CPU per operation, and operations per
//! CPU-second of daemon and clients (the rate on a saturated machine). Each
//! measurement is classed in one of the two scheduling regimes of 16-client runs
//! (see [`Regime`]), with the per-CPU idle time and idle entries behind it, and a
//! table gives each daemon's throughput per regime (docs/PERFORMANCE.md, "Session 5").
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
    /// Seconds per measurement (one repetition of one daemon). Short and many:
    /// the daemons take turns, so a burst of other load hits both alike.
    #[arg(long, default_value_t = 0.2)]
    secs: f64,
    /// Daemons to compare, in order: rx, c, ocaml, rx:PATH (another
    /// rxenstored binary, e.g. an earlier build, for before/after figures) or
    /// rx+OPTION (this rxenstored with `--OPTION`, e.g. `rx+batch-replies`).
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
    /// Repetitions per measurement. The daemons take turns within each
    /// repetition (in alternating order) and the median of the repetitions is
    /// reported, for each daemon alike.
    #[arg(long, default_value_t = 11)]
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
    /// The same for the measurements with more than one client, default `free`:
    /// left to the kernel, a 16-client run lands in one of two regimes (see the
    /// regime table it prints); `split` forces the "saturated" one (daemon alone
    /// on CPU 1, all clients on CPU 0), for diagnosis, not for the verdict.
    #[arg(long, value_enum, default_value_t = Placement::Free)]
    many_clients: Placement,
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
    name: String,
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

fn start(index: usize, kind: &str, args: &Args) -> Result<Daemon> {
    let dir = std::env::temp_dir().join(format!("xs-bench-{}-{index}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("socket");
    let log = std::fs::File::create(dir.join("log"))?;
    // `rx:PATH` is another rxenstored binary (an earlier build, for a
    // before/after comparison under the same load).
    let other_rx = kind.strip_prefix("rx:").map(PathBuf::from);
    // `rx+OPTION` is this build's rxenstored with `--OPTION` (an experimental
    // switch against the default, under the same load).
    let rx_option = kind.strip_prefix("rx+").map(|o| format!("--{o}"));
    let (name, mut child) = match kind {
        _ if kind == "rx" || other_rx.is_some() || rx_option.is_some() => {
            let bin = match (&other_rx, &args.rxenstored) {
                (Some(p), _) | (None, Some(p)) => p.clone(),
                (None, None) => std::env::current_exe()?
                    .parent()
                    .and_then(Path::parent)
                    .context("locating rxenstored")?
                    .join("rxenstored"),
            };
            let child = Command::new(&bin)
                .args(["--no-fork", "--socket"])
                .arg(&socket)
                .args(&rx_option)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let name = match (&other_rx, &rx_option) {
                (Some(p), _) => format!("rxenstored {}", p.display()),
                (None, Some(o)) => format!("rxenstored {o}"),
                (None, None) => "rxenstored".to_string(),
            };
            (name, child)
        }
        "c" | "ocaml" => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/run-peer.sh");
            let child = Command::new(script)
                .arg(kind)
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?;
            let name = if kind == "c" {
                "C xenstored"
            } else {
                "oxenstored"
            };
            (name.to_string(), child)
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

/// Checks that a NUL-separated directory listing has `n` names.
fn check_children(list: &[u8], n: usize) -> Result<()> {
    let got = list.iter().filter(|b| **b == 0).count();
    if got != n {
        bail!("directory returned {got} children instead of {n}");
    }
    Ok(())
}

/// One operation; `false` when it did not complete (a starved transaction).
fn one_op(c: &mut Client, w: Work, me: usize, i: u64) -> Result<bool> {
    match w {
        Work::Read1 => drop(c.read("/bench/v1")?),
        Work::Read2000 => drop(c.read("/bench/v2000")?),
        Work::Write1 => c.write(&format!("/bench/w/{me}"), b"z")?,
        Work::Write2000 => c.write(&format!("/bench/w/{me}"), &[b'z'; 2000])?,
        // The list as it comes (names counted, not made into 2000 `String`s,
        // which cost the client ~100 us a listing, more than the listing).
        Work::Dir10 => check_children(&c.directory_raw("/bench/d10")?, 10)?,
        Work::Dir2000 => check_children(&c.directory_raw("/bench/d2000")?, 2000)?,
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

/// CPU time (user + system) the process's threads have run, in seconds, from
/// the scheduler's nanosecond accounting (`/proc/<pid>/task/*/schedstat`, first
/// field), not the 10 ms ticks of `/proc/<pid>/stat`: a 0.5 s measurement of a
/// daemon busy for 0.2 s would otherwise be +-5 %.
fn cpu_secs(pid: u32) -> Result<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread that ended since read_dir took its time with it; ignore it.
        let Ok(s) = std::fs::read_to_string(&path) else {
            continue;
        };
        ns += s
            .split_whitespace()
            .next()
            .context("schedstat format")?
            .parse::<u64>()?;
    }
    Ok(ns as f64 / 1e9)
}

/// CPU time the calling thread has run, in seconds (its schedstat).
fn thread_cpu_secs() -> Result<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns: u64 = s
        .split_whitespace()
        .next()
        .context("schedstat format")?
        .parse()?;
    Ok(ns as f64 / 1e9)
}

/// Context switches (voluntary + involuntary) of the process's threads.
fn ctx_switches(pid: u32) -> Result<u64> {
    let mut n = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(s) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        for l in s.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                n += v.trim().parse::<u64>()?;
            }
        }
    }
    Ok(n)
}

/// The 1-minute load average (from /proc/loadavg), as `uptime` prints it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The current UTC time, as `date -u` prints it (for the report's header).
fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// One measurement of one daemon.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Completed operations per second (wall clock).
    rate: f64,
    /// Daemon CPU microseconds per operation.
    cpu_us: f64,
    /// Daemon context switches per operation.
    switches: f64,
    /// CPU microseconds per operation of the client threads (the same client
    /// for every daemon: what differs is the daemon's way of replying).
    client_us: f64,
    /// Operations per CPU-second of the daemon and its clients together: what
    /// the wall-clock rate tends to when the machine's CPUs are saturated (by
    /// this benchmark or by others), whatever share of them it gets.
    per_cpu_s: f64,
    /// The daemon's CPU time over the wall-clock time (1.0: one CPU, flat out).
    daemon_share: f64,
    /// Idle fraction of the CPU the daemon was on at the end (from /proc/stat).
    idle_daemon_cpu: f64,
    /// Idle fraction of the other CPUs together (where the clients ran, if the
    /// daemon kept its CPU).
    idle_other_cpus: f64,
    /// Transaction attempts per commit (0 for the other workloads).
    attempts: f64,
    /// Idle entries per operation of the CPU the daemon was on, and of the
    /// others together (each entry a halt the next wake-up must end).
    halts_daemon_cpu: f64,
    halts_other_cpus: f64,
    /// 1.0 if the measurement was in the saturated regime (see [`Regime`]).
    saturated: f64,
}

/// How the kernel placed daemon and clients during a 16-client measurement (the
/// two regimes of docs/PERFORMANCE.md, "Session 4"): `Saturated` when the daemon
/// kept a CPU to itself and ran flat out, hardly ever switched out (every reply
/// then wakes a client on another CPU); `Preempted` when woken clients ran on the
/// daemon's CPU and preempted it (a switch every few requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Regime {
    Saturated,
    Preempted,
}

/// Daemon context switches per request under which it counts as never preempted.
const SATURATED_MAX_SWITCHES: f64 = 0.05;
/// Daemon CPU share (of one CPU) over which it counts as running flat out.
const SATURATED_MIN_SHARE: f64 = 0.85;

impl Regime {
    fn of(switches_per_op: f64, daemon_share: f64) -> Regime {
        if switches_per_op < SATURATED_MAX_SWITCHES && daemon_share > SATURATED_MIN_SHARE {
            Regime::Saturated
        } else {
            Regime::Preempted
        }
    }
}

/// Per-CPU (busy, idle) jiffies from /proc/stat, CPU by CPU ("cpuN" lines; idle
/// includes iowait, busy everything else including steal).
fn cpu_times() -> Result<Vec<(u64, u64)>> {
    let s = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let mut v = Vec::new();
    for l in s.lines() {
        let mut f = l.split_whitespace();
        let Some(name) = f.next() else { continue };
        if name == "cpu" || !name.starts_with("cpu") {
            continue;
        }
        let n: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
        // user nice system idle iowait irq softirq steal (guest time is in user).
        let idle = n.get(3).copied().unwrap_or(0) + n.get(4).copied().unwrap_or(0);
        let busy: u64 = n.iter().take(8).sum::<u64>() - idle;
        v.push((busy, idle));
    }
    Ok(v)
}

/// Idle fractions per CPU between two [`cpu_times`] readings.
fn idle_fractions(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let busy = y.0.saturating_sub(x.0) as f64;
            let idle = y.1.saturating_sub(x.1) as f64;
            if busy + idle > 0.0 {
                idle / (busy + idle)
            } else {
                f64::NAN
            }
        })
        .collect()
}

/// Idle entries (halts and polls) of each CPU so far, from cpuidle's per-state
/// `usage` counters (empty where cpuidle is not available).
fn idle_entries() -> Vec<u64> {
    let mut v = Vec::new();
    for cpu in 0.. {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpuidle");
        let Ok(states) = std::fs::read_dir(&dir) else {
            break;
        };
        let mut n = 0u64;
        for st in states.flatten() {
            if let Ok(s) = std::fs::read_to_string(st.path().join("usage")) {
                n += s.trim().parse::<u64>().unwrap_or(0);
            }
        }
        v.push(n);
    }
    v
}

/// The CPU a process's main thread last ran on (/proc/<pid>/stat field 39).
fn last_cpu(pid: u32) -> Option<usize> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(36)?.parse().ok()
}

/// Operations per second with `clients` threads for `secs`, and the daemon's CPU
/// microseconds and context switches per operation (robust against other load on
/// the machine). With `cpus` (daemon, client), both are pinned for the measurement.
fn throughput(
    socket: &Path,
    pid: u32,
    w: Work,
    clients: usize,
    secs: f64,
    cpus: Option<(&'static str, &'static str)>,
) -> Result<Sample> {
    if let Some((daemon, _)) = cpus {
        pin(pid, daemon)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let client_ns = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut handles = Vec::new();
    for me in 0..clients {
        let (stop, done, barrier) = (stop.clone(), done.clone(), barrier.clone());
        let client_ns = client_ns.clone();
        let socket = socket.to_path_buf();
        handles.push(std::thread::spawn(move || -> Result<()> {
            if let Some((_, client)) = cpus {
                pin(nix::unistd::gettid().as_raw().unsigned_abs(), client)?;
            }
            let mut c = Client::connect_socket(&socket)?;
            barrier.wait();
            let cpu0 = thread_cpu_secs()?;
            let (mut i, mut ok) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                if one_op(&mut c, w, me, i)? {
                    ok += 1;
                }
                i += 1;
            }
            let cpu = thread_cpu_secs()? - cpu0;
            client_ns.fetch_add((cpu * 1e9) as u64, Ordering::Relaxed);
            done.fetch_add(ok, Ordering::Relaxed);
            Ok(())
        }));
    }
    barrier.wait();
    let attempts0 = TXN_ATTEMPTS.load(Ordering::Relaxed);
    let cpu0 = cpu_secs(pid)?;
    let sw0 = ctx_switches(pid)?;
    let stat0 = cpu_times()?;
    let halts0 = idle_entries();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let idle = idle_fractions(&stat0, &cpu_times()?);
    let halts: Vec<f64> = halts0
        .iter()
        .zip(idle_entries())
        .map(|(a, b)| b.saturating_sub(*a) as f64)
        .collect();
    let cpu = cpu_secs(pid)? - cpu0;
    let switches = ctx_switches(pid)?.saturating_sub(sw0) as f64;
    let dcpu = last_cpu(pid).filter(|c| *c < idle.len()).unwrap_or(0);
    let idle_daemon_cpu = idle.get(dcpu).copied().unwrap_or(f64::NAN);
    let others: Vec<f64> = idle
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != dcpu)
        .map(|(_, x)| *x)
        .collect();
    let idle_other_cpus = if others.is_empty() {
        f64::NAN
    } else {
        others.iter().sum::<f64>() / others.len() as f64
    };
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
    let per_op = |x: f64| if ops > 0.0 { x / ops } else { f64::INFINITY };
    let halts_daemon_cpu = per_op(halts.get(dcpu).copied().unwrap_or(f64::NAN));
    let halts_other_cpus = per_op(
        halts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != dcpu)
            .map(|(_, x)| *x)
            .sum(),
    );
    let daemon_share = cpu / elapsed;
    let regime = Regime::of(per_op(switches), daemon_share);
    Ok(Sample {
        halts_daemon_cpu,
        halts_other_cpus,
        daemon_share,
        idle_daemon_cpu,
        idle_other_cpus,
        attempts: if ops > 0.0 {
            attempts as f64 / ops
        } else {
            0.0
        },
        saturated: if regime == Regime::Saturated {
            1.0
        } else {
            0.0
        },
        rate: ops / elapsed,
        cpu_us: per_op(cpu * 1e6),
        switches: per_op(switches),
        client_us: per_op(client_ns.load(Ordering::Relaxed) as f64 / 1e3),
        per_cpu_s: if ops > 0.0 {
            ops / (cpu + client_ns.load(Ordering::Relaxed) as f64 / 1e9)
        } else {
            0.0
        },
    })
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The order in which the daemons run in repetition `rep`: forwards in even
/// repetitions, backwards in odd ones, so that neither daemon always runs
/// first (right after a previous daemon's burst, or a change of load).
fn rep_order(n: usize, rep: usize) -> Vec<usize> {
    if rep % 2 == 0 {
        (0..n).collect()
    } else {
        (0..n).rev().collect()
    }
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
    let reps = args.reps.max(1);
    let idles: Vec<usize> = if args.memory_only {
        Vec::new()
    } else {
        args.idle.clone()
    };
    let load_start = load_average();
    let time_start = utc_now();
    // All daemons run for the whole benchmark and take turns, repetition by
    // repetition, so that a change in the machine's load hits them alike.
    let mut daemons = Vec::new();
    for (index, kind) in args.daemons.iter().enumerate() {
        let d = start(index, kind, &args).with_context(|| format!("starting {kind}"))?;
        setup(&d.socket).with_context(|| format!("setting up {}", d.name))?;
        daemons.push(d);
    }
    let names: Vec<&str> = daemons.iter().map(|d| d.name.as_str()).collect();
    let n = daemons.len();
    // rows[i] = (label, the median sample of each daemon)
    let mut rows: Vec<(String, Vec<Sample>)> = Vec::new();
    let mut fan: Vec<(usize, Vec<f64>)> = Vec::new();
    // regimes[i] = (label, each daemon's median rate in saturated and in preempted repetitions)
    let mut regimes: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for &idle in &idles {
        let mut idle_conns = Vec::new();
        for d in &daemons {
            for _ in 0..idle {
                let mut c = Client::connect_socket(&d.socket)?;
                // One request each: the daemon has accepted them all before measuring.
                c.get_domain_path(0)?;
                idle_conns.push(c);
            }
        }
        for w in Work::ALL {
            if !args.work.is_empty() && !args.work.iter().any(|f| w.name().contains(f.as_str())) {
                continue;
            }
            for &clients in &args.clients {
                let cpus = if clients == 1 {
                    args.one_client.cpus()
                } else {
                    args.many_clients.cpus()
                };
                let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
                for rep in 0..reps {
                    for di in rep_order(n, rep) {
                        let d = &daemons[di];
                        let s = throughput(&d.socket, d.child.id(), w, clients, args.secs, cpus)
                            .with_context(|| format!("{} {} x{clients}", d.name, w.name()))?;
                        eprintln!(
                            "{:12} {:18} clients {clients:2} idle {idle:4} rep {rep}: {:10.0} ops/s {:8.2} us CPU/op {:6.3} switches/op, clients {:6.2} us CPU/op; {} (daemon {:.2} CPU, idle {:.0} % of its CPU, {:.0} % of the others; halts/op {:.2} / {:.2}) (load {})",
                            d.name,
                            w.name(),
                            s.rate,
                            s.cpu_us,
                            s.switches,
                            s.client_us,
                            if s.saturated > 0.5 { "saturated" } else { "preempted" },
                            s.daemon_share,
                            100.0 * s.idle_daemon_cpu,
                            100.0 * s.idle_other_cpus,
                            s.halts_daemon_cpu,
                            s.halts_other_cpus,
                            load_average()
                        );
                        samples[di].push(s);
                    }
                }
                let med = |v: &[Sample], f: fn(&Sample) -> f64| {
                    median(&v.iter().map(f).collect::<Vec<_>>())
                };
                let medians = samples
                    .iter()
                    .map(|v| Sample {
                        rate: med(v, |s| s.rate),
                        cpu_us: med(v, |s| s.cpu_us),
                        switches: med(v, |s| s.switches),
                        client_us: med(v, |s| s.client_us),
                        per_cpu_s: med(v, |s| s.per_cpu_s),
                        daemon_share: med(v, |s| s.daemon_share),
                        idle_daemon_cpu: med(v, |s| s.idle_daemon_cpu),
                        idle_other_cpus: med(v, |s| s.idle_other_cpus),
                        attempts: med(v, |s| s.attempts),
                        halts_daemon_cpu: med(v, |s| s.halts_daemon_cpu),
                        halts_other_cpus: med(v, |s| s.halts_other_cpus),
                        // The fraction of the repetitions that were saturated.
                        saturated: v.iter().map(|s| s.saturated).sum::<f64>()
                            / v.len().max(1) as f64,
                    })
                    .collect();
                // Throughput of each daemon in each regime's repetitions alone.
                let by_regime = samples
                    .iter()
                    .map(|v| {
                        let rates = |sat: bool| {
                            v.iter()
                                .filter(|s| (s.saturated > 0.5) == sat)
                                .map(|s| s.rate)
                                .collect::<Vec<_>>()
                        };
                        (median(&rates(true)), median(&rates(false)))
                    })
                    .collect();
                let label = format!("{} | {clients} | {idle}", w.name());
                regimes.push((label.clone(), by_regime));
                rows.push((label, medians));
            }
        }
        if !args.no_fanout {
            let mut f: Vec<Vec<f64>> = vec![Vec::new(); n];
            for rep in 0..reps {
                for di in rep_order(n, rep) {
                    let d = &daemons[di];
                    let rate = fanout(&d.socket, 100, 200)
                        .with_context(|| format!("{} fan-out", d.name))?;
                    eprintln!(
                        "{:12} fan-out 1x100, idle {idle} rep {rep}: {rate:.0} events/s",
                        d.name
                    );
                    f[di].push(rate);
                }
            }
            fan.push((idle, f.iter().map(|v| median(v)).collect()));
        }
        drop(idle_conns);
    }
    let mut mem = Vec::new();
    if !args.no_memory {
        for d in &daemons {
            let (b, a) = memory(d)?;
            eprintln!("{:12} RSS {b} KiB -> {a} KiB", d.name);
            mem.push((b, a));
        }
    }
    let method = if args.memory_only {
        String::new()
    } else {
        format!(
            "; median of {reps} interleaved repetitions of {} s",
            args.secs
        )
    };
    println!(
        "{time_start} to {}, load average {load_start} at the start, {} at the end{method}",
        utc_now(),
        load_average(),
    );
    if !args.memory_only {
        print_rate_table(
            &format!("{} | {}", names.join(" ops/s | "), ratio_header(&names)),
            &rows,
            |s| s.rate,
        );
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
        println!("{}", table_rule(n));
        for (label, s) in &rows {
            let inv: Vec<f64> = s.iter().map(|s| 1.0 / s.cpu_us).collect();
            println!(
                "| {label} | {} | {} |",
                s.iter()
                    .map(|s| format!("{:.2}", s.cpu_us))
                    .collect::<Vec<_>>()
                    .join(" | "),
                ratios(&inv)
            );
        }
        println!();
        println!(
            "| workload | clients | idle conns | {} daemon context switches/op | {} client CPU us/op |",
            names.join(" | "),
            names.join(" | "),
        );
        println!("|---|---|---|{}", "---|".repeat(2 * n));
        for (label, s) in &rows {
            println!(
                "| {label} | {} | {} |",
                s.iter()
                    .map(|s| format!("{:.3}", s.switches))
                    .collect::<Vec<_>>()
                    .join(" | "),
                s.iter()
                    .map(|s| format!("{:.2}", s.client_us))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }
    if !args.memory_only {
        print_rate_table(
            &format!(
                "{} ops per CPU-second (daemon + clients) | {}",
                names.join(" | "),
                ratio_header(&names)
            ),
            &rows,
            |s| s.per_cpu_s,
        );
    }
    if !args.memory_only {
        print_regimes(&names, &rows, &regimes);
    }
    if !args.memory_only && !args.no_fanout {
        println!();
        println!(
            "| watch fan-out (1 writer, 100 watchers) | idle conns | {} events/s | {} |",
            names.join(" | "),
            ratio_header(&names)
        );
        println!(
            "|---|---|{}{}",
            "---|".repeat(n),
            "---|".repeat(n.saturating_sub(1))
        );
        for (idle, vals) in &fan {
            println!(
                "| 200 distinct writes | {idle} | {} | {} |",
                fmt_vals(vals),
                ratios(vals)
            );
        }
    }
    if !mem.is_empty() {
        println!();
        println!("| resident memory (KiB) | {} |", names.join(" | "));
        println!("|---|{}", "---|".repeat(n));
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

/// The scheduling regime of every row (see [`Regime`]): per daemon the share of
/// repetitions that were saturated, the daemon's CPU share, the idle time of its
/// CPU and of the others (the clients' when it kept its CPU), the transaction
/// attempts per commit; then each daemon's throughput in the repetitions of each
/// regime alone, and rx's ratio to the others within a regime ("-" when a daemon
/// had no repetition in that regime).
fn print_regimes(
    names: &[&str],
    rows: &[(String, Vec<Sample>)],
    regimes: &[(String, Vec<(f64, f64)>)],
) {
    let n = names.len();
    println!();
    println!(
        "| workload | clients | idle conns | {} |",
        names
            .iter()
            .map(|d| format!("{d}: saturated reps, daemon CPUs, idle % own CPU / others, halts per op own CPU / others, txn attempts per commit"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|---|{}", "---|".repeat(n));
    for (label, s) in rows {
        println!(
            "| {label} | {} |",
            s.iter()
                .map(|s| format!(
                    "{:.0} %, {:.2}, {:.0} / {:.0}, {:.2} / {:.2}, {}",
                    100.0 * s.saturated,
                    s.daemon_share,
                    100.0 * s.idle_daemon_cpu,
                    100.0 * s.idle_other_cpus,
                    s.halts_daemon_cpu,
                    s.halts_other_cpus,
                    if s.attempts > 0.0 {
                        format!("{:.2}", s.attempts)
                    } else {
                        "-".into()
                    }
                ))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    println!();
    println!(
        "| workload | clients | idle conns | {} ops/s in saturated reps | {} ops/s in preempted reps | rx / others saturated | rx / others preempted |",
        names.join(" | "),
        names.join(" | "),
    );
    println!("|---|---|---|{}---|---|", "---|".repeat(2 * n));
    let ratio = |v: &[f64]| {
        v.iter()
            .skip(1)
            .map(|x| {
                if x.is_finite() && *x > 0.0 && v[0].is_finite() {
                    format!("{:.2}", v[0] / x)
                } else {
                    "-".into()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| {
                if x.is_finite() {
                    format!("{x:.0}")
                } else {
                    "-".into()
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    for (label, r) in regimes {
        let sat: Vec<f64> = r.iter().map(|x| x.0).collect();
        let pre: Vec<f64> = r.iter().map(|x| x.1).collect();
        println!(
            "| {label} | {} | {} | {} | {} |",
            show(&sat),
            show(&pre),
            ratio(&sat),
            ratio(&pre)
        );
    }
}

/// The separator line under a header with the three key columns, `n` daemons' values
/// and `n - 1` ratios.
fn table_rule(n: usize) -> String {
    format!(
        "|---|---|---|{}{}",
        "---|".repeat(n),
        "---|".repeat(n.saturating_sub(1))
    )
}

/// A table of one figure per daemon where more is better (`value` of each row's
/// medians), with the first daemon's ratio to each other one.
fn print_rate_table(columns: &str, rows: &[(String, Vec<Sample>)], value: fn(&Sample) -> f64) {
    let n = rows.first().map_or(0, |(_, s)| s.len());
    println!();
    println!("| workload | clients | idle conns | {columns} |");
    println!("{}", table_rule(n));
    for (label, s) in rows {
        let vals: Vec<f64> = s.iter().map(value).collect();
        println!("| {label} | {} | {} |", fmt_vals(&vals), ratios(&vals));
    }
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
