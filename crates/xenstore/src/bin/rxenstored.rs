//! `rxenstored`: the xenstore daemon, a drop-in for Xen's C xenstored on the unix
//! socket. Options follow C xenstored 4.17 (`tools/xenstore/xenstored_core.c`)
//! where they make sense, plus `--socket`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

use xenstore::client::{DEFAULT_RUNDIR, ENV_XENSTORED_PATH, ENV_XENSTORED_RUNDIR, SOCKET_NAME};
use xenstore::daemon::{signal_fd, Daemon, DaemonConfig, Exit, Listener};
use xenstore::process::Config;
use xenstore::store::Quotas;
use xenstore::wire::XENSTORE_REL_PATH_MAX;

/// Descriptors wanted for 10,000 connections and then some; the soft limit is
/// raised to this (or to the hard limit, if lower and we may not raise it).
const WANTED_NOFILE: u64 = 65_536;
/// Smallest sensible output bound: one message of the largest size.
const MIN_QUEUED_BYTES: usize = xenstore::wire::HEADER_SIZE + xenstore::wire::XENSTORE_PAYLOAD_MAX;

/// The xenstore daemon: serves the xenstore protocol on a unix socket.
///
/// The socket is --socket, else $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket,
/// else /run/xenstored/socket (the same rules libxenstore's clients follow).
#[derive(Debug, Parser)]
#[command(name = "rxenstored", version, about, long_about = None, disable_version_flag = true)]
struct Cli {
    /// Print version.
    #[arg(long, action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Unix socket to listen on.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Write the daemon's pid to FILE.
    #[arg(short = 'F', long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Stay in the foreground (default: fork and detach, like C xenstored).
    #[arg(short = 'N', long)]
    no_fork: bool,
    /// Print the daemon's pid on stdout once it listens.
    #[arg(short = 'P', long)]
    output_pid: bool,
    /// Access log: every request, reply and watch event.
    #[arg(short = 'T', long, value_name = "FILE")]
    trace_file: Option<PathBuf>,
    /// Log file for the daemon's own messages (default: stderr, lost when forked).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Nodes an unprivileged domain may own.
    #[arg(short = 'E', long, value_name = "NB", value_parser = quota_value)]
    entry_nb: Option<i64>,
    /// Watches an unprivileged domain may hold.
    #[arg(short = 'W', long, value_name = "NB", value_parser = quota_value)]
    watch_nb: Option<i64>,
    /// Transactions an unprivileged domain may have open.
    #[arg(short = 't', long, value_name = "NB", value_parser = quota_value)]
    transaction: Option<i64>,
    /// Largest node (path, value and permissions) an unprivileged domain may write.
    #[arg(short = 'S', long, value_name = "BYTES", value_parser = quota_value)]
    entry_size: Option<i64>,
    /// Permission entries per node for unprivileged domains.
    #[arg(short = 'A', long, value_name = "NB", value_parser = quota_value)]
    perm_nb: Option<i64>,
    /// Longest path below a domain's home path (at most 2048).
    #[arg(short = 'M', long, value_name = "NB", value_parser = quota_value)]
    path_max: Option<i64>,
    /// Hard quota WHAT=NB: outstanding (requests), transaction-nodes, memory (bytes).
    #[arg(short = 'Q', long, value_name = "WHAT=NB")]
    quota: Vec<String>,
    /// Soft quota WHAT=NB (only logged when exceeded): memory.
    #[arg(short = 'q', long, value_name = "WHAT=NB")]
    quota_soft: Vec<String>,
    /// The domain this daemon runs in.
    #[arg(short = 'm', long, value_name = "DOMID", default_value_t = 0)]
    master_domid: u32,
    /// A privileged domain besides dom0 (e.g. a driver domain running the toolstack).
    #[arg(short = 'p', long, value_name = "DOMID", default_value_t = 0)]
    priv_domid: u32,
    /// Keep the nodes of a released domain (given to dom0) instead of removing them.
    #[arg(short = 'K', long)]
    keep_orphans: bool,
    /// Messages a connection's output queue may hold before the daemon stops reading
    /// its requests and drops the watch events over it (a domain keeps its ring; a
    /// socket client that lost events is disconnected).
    #[arg(long, value_name = "NB", default_value_t = xenstore::process::DEFAULT_MAX_QUEUED)]
    max_queued: usize,
    /// Serve the unix socket only, even where /dev/xen/evtchn exists (no dom0
    /// ring, no guests).
    #[arg(long)]
    no_xen: bool,
    /// Bytes a connection's queued replies and events may take before the daemon
    /// stops reading its requests and drops its watch events (as --max-queued).
    #[arg(long, value_name = "BYTES", default_value_t = xenstore::process::DEFAULT_MAX_QUEUED_BYTES)]
    max_queued_bytes: usize,
    /// More log output (repeat for more; C xenstored's -V).
    #[arg(short = 'V', long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// C's `get_optval_int`: a decimal in 0..=INT_MAX.
fn quota_value(s: &str) -> Result<i64, String> {
    let v: i64 = s
        .parse()
        .map_err(|_| format!("invalid parameter value \"{s}\""))?;
    if !(0..=i64::from(i32::MAX)).contains(&v) {
        return Err(format!("invalid parameter value \"{s}\""));
    }
    Ok(v)
}

/// Applies `-Q`/`-q` `WHAT=NB` settings (C `set_quota`).
fn apply_quota(q: &mut Quotas, arg: &str, soft: bool) -> Result<()> {
    let Some((what, value)) = arg.split_once('=') else {
        bail!("quotas must be specified via <what>=<nb>");
    };
    let v = quota_value(value).map_err(anyhow::Error::msg)?;
    match (what, soft) {
        ("outstanding", false) => q.outstanding = v,
        ("transaction-nodes", false) => q.transaction_nodes = v,
        ("memory", false) => q.memory_hard = v,
        ("memory", true) => q.memory_soft = v,
        _ => bail!("unknown quota \"{arg}\""),
    }
    Ok(())
}

fn server_config(cli: &Cli) -> Result<Config> {
    let mut q = Quotas::default();
    if let Some(v) = cli.entry_nb {
        q.nodes = v;
    }
    if let Some(v) = cli.watch_nb {
        q.watches = v;
    }
    if let Some(v) = cli.transaction {
        q.transactions = v;
    }
    if let Some(v) = cli.entry_size {
        q.node_size = v;
    }
    if let Some(v) = cli.perm_nb {
        q.permissions = v;
    }
    if let Some(v) = cli.path_max {
        // C clamps to XENSTORE_REL_PATH_MAX.
        q.path_max = v.min(XENSTORE_REL_PATH_MAX as i64);
    }
    for a in &cli.quota {
        apply_quota(&mut q, a, false)?;
    }
    for a in &cli.quota_soft {
        apply_quota(&mut q, a, true)?;
    }
    if cli.max_queued == 0 {
        bail!("--max-queued must be at least 1");
    }
    if cli.max_queued_bytes < MIN_QUEUED_BYTES {
        bail!("--max-queued-bytes must be at least {MIN_QUEUED_BYTES} (one largest message)");
    }
    // Fields not set here (the core may grow more) keep their defaults.
    let mut config = Config {
        quotas: q,
        ..Config::default()
    };
    config.master_domid = cli.master_domid;
    config.priv_domid = cli.priv_domid;
    config.keep_orphans = cli.keep_orphans;
    config.max_queued = cli.max_queued;
    Ok(config)
}

/// The socket path by Xen's rules (xs_lib.c `xs_daemon_socket`).
fn socket_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.socket {
        return p.clone();
    }
    if let Some(p) = std::env::var_os(ENV_XENSTORED_PATH) {
        return PathBuf::from(p);
    }
    let rundir = std::env::var_os(ENV_XENSTORED_RUNDIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNDIR));
    rundir.join(SOCKET_NAME)
}

fn init_logging(cli: &Cli) -> Result<()> {
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &cli.log_file {
        Some(p) => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open log file {}", p.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Raises RLIMIT_NOFILE so that thousands of clients can connect.
fn raise_nofile() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let mut new_hard = hard;
    if hard < WANTED_NOFILE && setrlimit(Resource::RLIMIT_NOFILE, soft, WANTED_NOFILE).is_ok() {
        new_hard = WANTED_NOFILE;
    }
    let new_soft = WANTED_NOFILE.min(new_hard);
    if new_soft > soft {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, new_soft, new_hard) {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit");
        }
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        tracing::info!(limit = soft, "open files limit");
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("bad path {}", p.display()))
}

/// Detaches like C xenstored's `daemonize`: fork, new session, cwd `/`. Standard
/// input and output go to /dev/null once the pid is printed (`-P`).
fn daemonize() -> Result<()> {
    nix::unistd::daemon(false, true).context("cannot fork into the background")?;
    Ok(())
}

fn detach_stdio() -> Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("cannot open /dev/null")?;
    for fd in [0, 1, 2] {
        nix::unistd::dup2(null.as_raw_fd(), fd).context("cannot redirect standard streams")?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = server_config(&cli)?;
    let socket = absolute(&socket_path(&cli))?;
    let pid_file = cli.pid_file.as_deref().map(absolute).transpose()?;
    let trace_file = cli.trace_file.as_deref().map(absolute).transpose()?;
    let mut cli = cli;
    cli.log_file = cli.log_file.as_deref().map(absolute).transpose()?;
    init_logging(&cli)?;
    raise_nofile();
    let signals = signal_fd().context("cannot set up signal handling")?;
    // Bind before forking: when the parent returns, clients can connect.
    let listener = Listener::bind(&socket).context("cannot set up the socket")?;
    let fork = !cli.no_fork;
    if fork {
        daemonize()?;
    }
    if let Some(p) = &pid_file {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid file {}", p.display()))?;
    }
    if cli.output_pid {
        let mut out = std::io::stdout();
        writeln!(out, "{}", std::process::id())?;
        out.flush()?;
    }
    if fork {
        detach_stdio()?;
    }
    let mut daemon = Daemon::new(
        DaemonConfig {
            socket: socket.clone(),
            server: config,
            trace_file,
            max_queued_bytes: Some(cli.max_queued_bytes),
        },
        listener,
        Some(signals),
    )
    .context("cannot start the daemon")?;
    if !cli.no_xen && Path::new(xen::evtchn::EVTCHN_PATH).exists() {
        let parts = xenstore::daemon::XenParts::open().context("cannot open the Xen devices")?;
        daemon.attach_xen(parts).context("cannot serve domains")?;
    }
    tracing::info!(socket = %socket.display(), "rxenstored listening");
    let exit = daemon.run().context("event loop failed")?;
    drop(daemon);
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    match exit {
        Exit::Signal(signo) => tracing::info!(signo, "rxenstored stopped"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_takes_c_options() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "rxenstored",
            "-N",
            "-F",
            "/run/x.pid",
            "-T",
            "/tmp/t",
            "-E",
            "5",
            "-W",
            "6",
            "-t",
            "7",
            "-S",
            "100",
            "-A",
            "3",
            "-M",
            "9999",
            "-Q",
            "outstanding=4",
            "-Q",
            "memory=1000",
            "-q",
            "memory=500",
            "-Q",
            "transaction-nodes=8",
            "-VV",
        ])
        .expect("C-style options parse");
        let c = server_config(&cli).expect("config");
        let q = &c.quotas;
        assert_eq!((q.nodes, q.watches, q.transactions), (5, 6, 7));
        assert_eq!((q.node_size, q.permissions), (100, 3));
        assert_eq!(
            q.path_max, XENSTORE_REL_PATH_MAX as i64,
            "-M is clamped like C"
        );
        assert_eq!(
            (
                q.outstanding,
                q.memory_hard,
                q.memory_soft,
                q.transaction_nodes
            ),
            (4, 1000, 500, 8)
        );
        assert!(cli.no_fork);
        assert_eq!(cli.verbose, 2);
        for bad in [
            vec!["rxenstored", "-Q", "outstanding"],
            vec!["rxenstored", "-Q", "nodes=3"],
            vec!["rxenstored", "-q", "outstanding=3"],
        ] {
            let cli = Cli::try_parse_from(bad.clone()).expect("parses");
            assert!(server_config(&cli).is_err(), "{bad:?} accepted");
        }
        assert!(Cli::try_parse_from(["rxenstored", "-E", "-1"]).is_err());
        assert!(Cli::try_parse_from(["rxenstored", "-E", "x"]).is_err());
    }

    #[test]
    fn socket_path_prefers_option_then_environment() {
        let cli = Cli::try_parse_from(["rxenstored", "--socket", "/a/b"]).expect("parses");
        assert_eq!(socket_path(&cli), PathBuf::from("/a/b"));
    }
}
