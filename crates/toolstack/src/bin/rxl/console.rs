//! `rxl console DOM [-t pv|serial] [-n NUM]`: attach to a domain's console, like
//! `xl console`. The pty comes from xenstore (`console/tty` for the primary PV
//! console, `device/console/NUM/tty` for secondary ones, `vuart/0/tty` for the
//! SBSA UART), published by rxconsoled (or xenconsoled). The local terminal goes
//! to raw mode and is restored on every way out; Ctrl-] leaves.
//!
//! `--via-pty` (hidden) runs the same command inside a fresh pty and relays this
//! process's stdin and stdout to it: a script can then drive the interactive
//! session exactly as a terminal would (the test bed's console-interactive).

use anyhow::{bail, Context};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, LocalFlags, SetArg, Termios};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};
use xenstore::client::{Client, XsOps};

/// Ctrl-]: leaves the console (xl's escape character).
pub const ESCAPE: u8 = 0x1d;
/// How long to wait for the console's tty to be published (a domain just created).
const TTY_WAIT: Duration = Duration::from_secs(10);
/// Poll interval while waiting for the tty node.
const TTY_POLL: Duration = Duration::from_millis(100);
/// How often `--via-pty` looks whether the session has started (ms).
const SESSION_POLL_MS: u16 = 20;
/// Copy buffer size.
const CHUNK: usize = 4096;

/// Which console (xl's `-t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsoleType {
    /// The PV console (hvc0).
    Pv,
    /// The emulated serial port: the SBSA UART on ARM (ttyAMA0).
    #[value(alias = "vuart")]
    Serial,
}

#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// The domain, by id or name.
    pub domain: String,
    /// Console type.
    #[arg(short = 't', long = "type", value_enum, default_value = "pv")]
    pub kind: ConsoleType,
    /// Console number (0 is the primary).
    #[arg(short = 'n', long = "num", default_value_t = 0)]
    pub num: u32,
    /// Run the session in a new pty relayed to stdin/stdout (for scripts).
    #[arg(long, hide = true)]
    pub via_pty: bool,
}

/// The xenstore node holding the pty path of a console.
pub fn tty_node(domid: u32, kind: ConsoleType, num: u32) -> anyhow::Result<String> {
    let base = format!("/local/domain/{domid}");
    Ok(match (kind, num) {
        (ConsoleType::Pv, 0) => format!("{base}/console/tty"),
        (ConsoleType::Pv, n) => format!("{base}/device/console/{n}/tty"),
        (ConsoleType::Serial, 0) => format!("{base}/vuart/0/tty"),
        (ConsoleType::Serial, n) => {
            bail!("a domain has one serial console; there is no number {n}")
        }
    })
}

/// Splits typed input at the escape character: the bytes to forward, and
/// whether the user asked to leave.
pub fn split_escape(buf: &[u8]) -> (&[u8], bool) {
    match buf.iter().position(|&b| b == ESCAPE) {
        Some(i) => (&buf[..i], true),
        None => (buf, false),
    }
}

/// Resolves a domain id or name through xenstore.
fn resolve(xs: &mut Client, dom: &str) -> anyhow::Result<u32> {
    if let Ok(id) = dom.parse::<u32>() {
        return Ok(id);
    }
    for id in xs.directory("/local/domain").context("listing domains")? {
        if xs.try_read(&format!("/local/domain/{id}/name"))?.as_deref() == Some(dom.as_bytes()) {
            return id.parse().context("domain id in xenstore");
        }
    }
    bail!("no domain named '{dom}'")
}

/// Sets a terminal to raw mode for good.
fn make_raw(fd: BorrowedFd<'_>) -> nix::Result<()> {
    let mut t = tcgetattr(fd)?;
    cfmakeraw(&mut t);
    tcsetattr(fd, SetArg::TCSANOW, &t)
}

/// Restores a terminal's settings when dropped.
struct RawGuard<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawGuard<'a> {
    fn new(fd: BorrowedFd<'a>) -> nix::Result<Self> {
        let saved = tcgetattr(fd)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        // TCSANOW: what was typed ahead still goes to the guest.
        tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(Self { fd, saved })
    }
}

impl Drop for RawGuard<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Signals that end the session (with the terminal restored) instead of killing it.
fn exit_signals() -> anyhow::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
    ] {
        mask.add(s);
    }
    mask.thread_block().context("blocking signals")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")
}

pub fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    if args.via_pty {
        return via_pty(&args);
    }
    run_attached(args, || Ok(()))
}

/// Attaches to the console and calls `attached` once the console's pty is open,
/// before relaying (`rxl create -c` unpauses the domain there, so that none of its
/// output is missed).
pub fn run_attached(
    args: ConsoleArgs,
    attached: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut xs = Client::open().context("connecting to xenstore")?;
    let domid = resolve(&mut xs, &args.domain)?;
    let node = tty_node(domid, args.kind, args.num)?;
    let deadline = Instant::now() + TTY_WAIT;
    let path = loop {
        match xs.try_read(&node)? {
            Some(p) if !p.is_empty() => break String::from_utf8_lossy(&p).into_owned(),
            _ if Instant::now() < deadline => std::thread::sleep(TTY_POLL),
            _ => bail!(
                "domain {domid} has no console tty ({node} is not there); is rxconsoled running?"
            ),
        }
    };
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(&path)
        .with_context(|| format!("opening the console {path}"))?;
    // The console pty itself carries bytes unchanged.
    make_raw(tty.as_fd()).with_context(|| format!("setting {path} to raw mode"))?;
    attached()?;
    let signals = exit_signals()?;
    let stdin = io::stdin();
    let raw = RawGuard::new(stdin.as_fd()).ok(); // not a terminal: nothing to restore
    let ended_by = relay(&stdin, &tty, &signals)?;
    drop(raw);
    if let Some(signo) = ended_by {
        // Like a shell reports a command killed by a signal: whoever sent it (a
        // `timeout`, a closing terminal) must not see a session that ended well.
        tracing::debug!("console session ended by signal {signo}");
        std::process::exit(SIGNAL_EXIT_BASE + signo);
    }
    Ok(())
}

/// Exit status of a session ended by signal N: 128 + N, as shells report it.
const SIGNAL_EXIT_BASE: i32 = 128;

/// Copies stdin to the console and the console to stdout until Ctrl-], a
/// signal, or the console going away. Returns the signal's number when one
/// ended the session.
fn relay(stdin: &io::Stdin, tty: &File, signals: &SignalFd) -> anyhow::Result<Option<i32>> {
    let mut stdout = io::stdout().lock();
    let mut buf = [0u8; CHUNK];
    let mut stdin_open = true;
    loop {
        let mut fds = vec![
            PollFd::new(tty.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (tty_ready, sig_ready, in_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if sig_ready {
            let info = signals.read_signal().context("reading the signal")?;
            // A signal read by someone else in between still ended the session.
            let signo = info.map_or(Signal::SIGTERM as i32, |i| i.ssi_signo as i32);
            return Ok(Some(signo));
        }
        if tty_ready {
            match (&*tty).read(&mut buf) {
                Ok(n) if n > 0 => {
                    stdout.write_all(&buf[..n])?;
                    stdout.flush()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EOF, or EIO once the backend closed the pty: the domain went
                // away (or its console daemon stopped), which ends the session
                // as it does for xl console.
                Ok(_) => return Ok(None),
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => return Ok(None),
                Err(e) => return Err(e).context("reading the console"),
            }
        }
        if in_ready {
            let n = stdin.lock().read(&mut buf).context("reading stdin")?;
            if n == 0 {
                stdin_open = false;
                continue;
            }
            let (fwd, leave) = split_escape(&buf[..n]);
            (&*tty).write_all(fwd).context("writing to the console")?;
            if leave {
                return Ok(None);
            }
        }
    }
}

/// Runs `rxl console` (without `--via-pty`) on a new pty, relaying stdin to it and
/// its output to stdout until it exits.
fn via_pty(args: &ConsoleArgs) -> anyhow::Result<()> {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("allocating a pty")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let slave_path = ptsname_r(&master).context("ptsname")?;
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(&slave_path)
        .with_context(|| format!("opening {slave_path}"))?;
    let exe = std::env::current_exe().context("finding rxl")?;
    let kind = match args.kind {
        ConsoleType::Pv => "pv",
        ConsoleType::Serial => "serial",
    };
    let mut child = std::process::Command::new(exe)
        .args([
            "console",
            &args.domain,
            "-t",
            kind,
            "-n",
            &args.num.to_string(),
        ])
        .stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave)
        .spawn()
        .context("starting rxl console")?;
    let stdin = io::stdin();
    let mut stdout = io::stdout().lock();
    let mut buf = [0u8; CHUNK];
    let mut stdin_open = true;
    // Type only once the session is up (its terminal raw), as a person would:
    // until then the pty's line discipline would echo and buffer the input.
    let started = Instant::now();
    let mut session_up = false;
    loop {
        if !session_up {
            session_up = tcgetattr(master.as_fd())
                .map(|t| !t.local_flags.contains(LocalFlags::ICANON))
                .unwrap_or(true)
                || started.elapsed() > TTY_WAIT;
        }
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open && session_up {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if session_up {
            PollTimeout::NONE
        } else {
            PollTimeout::from(SESSION_POLL_MS)
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (out_ready, in_ready) = (ready(0), ready(1));
        drop(fds);
        if out_ready {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => break, // the session ended
                Ok(n) => {
                    stdout.write_all(&buf[..n])?;
                    stdout.flush()?;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("reading the pty"),
            }
        }
        if in_ready {
            let n = stdin.lock().read(&mut buf).context("reading stdin")?;
            if n == 0 {
                stdin_open = false;
            } else {
                nix::unistd::write(master.as_fd(), &buf[..n]).context("writing to the pty")?;
            }
        }
    }
    let status = child.wait().context("waiting for rxl console")?;
    if !status.success() {
        bail!("rxl console exited with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tty_nodes_match_xl() {
        assert_eq!(
            tty_node(3, ConsoleType::Pv, 0).expect("pv"),
            "/local/domain/3/console/tty"
        );
        assert_eq!(
            tty_node(3, ConsoleType::Pv, 2).expect("secondary"),
            "/local/domain/3/device/console/2/tty"
        );
        assert_eq!(
            tty_node(3, ConsoleType::Serial, 0).expect("serial"),
            "/local/domain/3/vuart/0/tty"
        );
        assert!(tty_node(3, ConsoleType::Serial, 1).is_err());
    }

    #[test]
    fn escape_ends_the_forwarded_bytes() {
        assert_eq!(split_escape(b"ls\r"), (&b"ls\r"[..], false));
        assert_eq!(split_escape(b"ab\x1dcd"), (&b"ab"[..], true));
        assert_eq!(split_escape(b"\x1d"), (&b""[..], true));
        assert_eq!(split_escape(b""), (&b""[..], false));
    }
}
