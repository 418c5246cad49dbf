//! `rxconsoled`: the console backend daemon, in place of xenconsoled. Serves
//! every domain's PV console, SBSA UART and secondary PV consoles (channels,
//! `device/console/N`): log files (`--log=guest --log-dir=DIR`, like
//! xenconsoled) and a pty per console, published in xenstore (`console/tty`,
//! `vuart/0/tty`, `device/console/N/tty`) for `rxl console` and `xl console`.

use anyhow::Context;
use backends::console::log::LogPolicy;
use backends::console::{Config, ConsoleError, ConsoleId, ConsoleStore, Daemon};
use clap::{Parser, ValueEnum};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Instant;
use xenstore::client::{Client, XsOps};

/// What to log (xenconsoled's `--log`; the hypervisor's own log is not ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogWhat {
    None,
    Guest,
    All,
}

/// Where timestamps go (xenconsoled's `--timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stamp {
    None,
    Guest,
    All,
}

/// The PV console backend daemon (xenconsoled's job).
#[derive(Debug, Parser)]
#[command(name = "rxconsoled", version, about)]
struct Cli {
    /// Stay in the foreground (xenconsoled's -i).
    #[arg(short, long)]
    interactive: bool,
    /// Which consoles to log to files.
    #[arg(long, value_enum, default_value = "none")]
    log: LogWhat,
    /// Directory of the guest log files (guest-NAME.log).
    #[arg(long, default_value = "/var/log/xen/console")]
    log_dir: PathBuf,
    /// Timestamp each logged line.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "guest", default_value = "none")]
    timestamp: Stamp,
    /// Rotate a log file when it would grow past this many bytes (0: never).
    #[arg(long, default_value_t = 0)]
    log_max_bytes: u64,
    /// Rotated log files kept per console.
    #[arg(long, default_value_t = 1)]
    log_keep: u32,
    /// The domain rxconsoled runs in: secondary consoles are served from
    /// `/local/domain/<this>/backend/console`.
    #[arg(long, default_value_t = 0)]
    backend_domid: u16,
    /// Write the daemon's pid here.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// More verbose logging (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The xenstore client as the backend's store.
struct Store(Client);

fn xs_err(e: xenstore::client::ClientError) -> ConsoleError {
    ConsoleError::Store(e.to_string())
}

impl ConsoleStore for Store {
    fn read(&mut self, path: &str) -> Result<Option<String>, ConsoleError> {
        Ok(self
            .0
            .try_read(path)
            .map_err(xs_err)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    fn directory(&mut self, path: &str) -> Result<Vec<String>, ConsoleError> {
        match self.0.directory(path) {
            Ok(v) => Ok(v),
            Err(e) if e.is_enoent() => Ok(Vec::new()),
            Err(e) => Err(xs_err(e)),
        }
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), ConsoleError> {
        self.0.write(path, value.as_bytes()).map_err(xs_err)
    }
    fn watch(&mut self, path: &str, token: &str) -> Result<(), ConsoleError> {
        self.0.watch(path, token).map_err(xs_err)
    }
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), ConsoleError> {
        self.0.unwatch(path, token).map_err(xs_err)
    }
}

const XENSTORE: Token = Token(0);
const EVTCHN: Token = Token(1);
const SIGNALS: Token = Token(2);
const FIRST_PTY: usize = 3;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    backends::logging::init("RXCONSOLED_LOG", cli.verbose);

    let log_dir = match cli.log {
        LogWhat::None => None,
        LogWhat::Guest | LogWhat::All => {
            std::fs::create_dir_all(&cli.log_dir)
                .with_context(|| format!("creating {}", cli.log_dir.display()))?;
            Some(cli.log_dir.clone())
        }
    };
    let config = Config {
        log_dir,
        log_policy: LogPolicy {
            timestamps: cli.timestamp != Stamp::None,
            max_bytes: cli.log_max_bytes,
            keep: cli.log_keep,
        },
        ptys: true,
        backend_domid: cli.backend_domid,
    };
    let ctrl = xen::XenCtrl::open().context("opening /dev/xen/privcmd")?;
    let evtchn = xen::Evtchn::open().context("opening /dev/xen/evtchn")?;
    let gntdev = xen::Gntdev::open().context("opening /dev/xen/gntdev")?;
    let privcmd = xen::Privcmd::open().context("opening /dev/xen/privcmd")?;
    let client = Client::open().context("connecting to xenstored")?;

    if !cli.interactive {
        nix::unistd::daemon(false, false).context("daemonizing")?;
    }
    if let Some(p) = &cli.pid_file {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", p.display()))?;
    }

    let evtchn_fd = evtchn.as_raw_fd();
    let mut store = Store(client);
    let mut daemon = Daemon::new(ctrl, evtchn, gntdev, privcmd, config);
    let mut poll = Poll::new().context("creating the event loop")?;
    poll.registry()
        .register(&mut store.0, XENSTORE, Interest::READABLE)
        .context("registering xenstore")?;
    poll.registry()
        .register(&mut SourceFd(&evtchn_fd), EVTCHN, Interest::READABLE)
        .context("registering the event channel device")?;
    // SIGHUP reopens the log files (logrotate); SIGTERM/SIGINT end the daemon
    // (output still in the rings stays there for the next rxconsoled).
    let mut mask = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().context("blocking signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;
    let signal_fd = signals.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&signal_fd), SIGNALS, Interest::READABLE)
        .context("registering signals")?;
    tracing::info!("rxconsoled {} serving consoles", env!("CARGO_PKG_VERSION"));
    daemon.start(&mut store).context("watching domains")?;

    let mut ptys: HashMap<Token, ConsoleId> = HashMap::new();
    let mut tokens: HashMap<ConsoleId, Token> = HashMap::new();
    let mut next_token = FIRST_PTY;
    let mut events = Events::with_capacity(256);
    // The xenstore socket is read to its end when it was readable (its source is
    // edge-triggered) or when requests queued events; not on every wake-up, where
    // the read would only say EAGAIN.
    let mut xenstore_ready = true;
    loop {
        // Watch events queue up during any request: hand them all out.
        while xenstore_ready || store.0.queued_events() > 0 {
            let Some(ev) = store.0.try_next_event().context("reading xenstore")? else {
                break;
            };
            tracing::debug!(path = %ev.path, token = %ev.token, "watch");
            if let Err(e) = daemon.on_watch(&mut store, &ev.path, &ev.token) {
                tracing::warn!("handling watch {}: {e}", ev.path);
            }
        }
        xenstore_ready = false;
        let changes = daemon.take_fd_changes();
        for (id, fd) in changes.removed {
            if let Some(t) = tokens.remove(&id) {
                ptys.remove(&t);
            }
            // The fd may be closed already (then epoll forgot it by itself).
            let _ = poll.registry().deregister(&mut SourceFd(&fd));
        }
        for (id, fd) in changes.added {
            let t = Token(next_token);
            next_token += 1;
            poll.registry()
                .register(
                    &mut SourceFd(&fd),
                    t,
                    Interest::READABLE | Interest::WRITABLE,
                )
                .context("registering a console pty")?;
            ptys.insert(t, id);
            tokens.insert(id, t);
        }
        if store.0.queued_events() > 0 {
            continue;
        }
        let timeout = daemon.next_tick(Instant::now());
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("waiting for events"),
        }
        for ev in events.iter() {
            match ev.token() {
                XENSTORE => xenstore_ready = true, // drained at the top of the loop
                SIGNALS => {
                    while let Ok(Some(info)) = signals.read_signal() {
                        if info.ssi_signo == Signal::SIGHUP as u32 {
                            tracing::info!("SIGHUP: reopening log files");
                            daemon.reopen_logs();
                        } else {
                            tracing::info!(signal = info.ssi_signo, "exiting");
                            daemon.on_evtchn().ok();
                            return Ok(());
                        }
                    }
                }
                EVTCHN => daemon
                    .on_evtchn()
                    .context("reading the event channel device")?,
                t => {
                    if let Some(&id) = ptys.get(&t) {
                        daemon.on_pty(id);
                    }
                }
            }
        }
        daemon.tick(Instant::now());
    }
}
