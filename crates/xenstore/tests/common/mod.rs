//! Helpers shared by the integration tests: temporary directories, rxenstored on a
//! temporary socket, and the reference peers (Debian's C xenstored and oxenstored,
//! run by tests/peer/run-peer.sh without Xen).
#![allow(dead_code)] // each test binary uses a different subset

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a daemon may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Exit status of run-peer.sh when the peer cannot be had (automake's "skip").
const PEER_UNAVAILABLE: i32 = 77;

/// A directory under the target's tmp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Unix socket paths are limited to 108 bytes: keep the path short.
        let base = std::env::var_os("XS_TEST_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let p = base.join(format!("rxs-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon child process listening on `socket`; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    pub name: &'static str,
    pub socket: PathBuf,
    child: Child,
    pub dir: TempDir,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.socket).expect("connect to daemon")
    }

    pub fn client(&self) -> xenstore::client::Client {
        xenstore::client::Client::connect_socket(&self.socket).expect("client connects")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_socket(child: &mut Child, socket: &Path, name: &str) -> io::Result<()> {
    let start = Instant::now();
    loop {
        if UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(io::Error::other(format!("{name} exited early: {status}")));
        }
        if start.elapsed() > START_TIMEOUT {
            return Err(io::Error::other(format!(
                "{name} did not listen on {} within {START_TIMEOUT:?}",
                socket.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// rxenstored in the foreground on a temporary socket, with extra arguments.
pub fn rxenstored(extra: &[&str]) -> Daemon {
    let dir = TempDir::new("rx");
    let socket = dir.path().join("socket");
    let log = std::fs::File::create(dir.path().join("rxenstored.log")).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rxenstored"))
        .arg("--no-fork")
        .arg("--socket")
        .arg(&socket)
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn rxenstored");
    if let Err(e) = wait_for_socket(&mut child, &socket, "rxenstored") {
        let _ = child.kill();
        let log = std::fs::read_to_string(dir.path().join("rxenstored.log")).unwrap_or_default();
        panic!("{e}\nrxenstored log:\n{log}");
    }
    Daemon {
        name: "rxenstored",
        socket,
        child,
        dir,
    }
}

/// Which reference peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// Debian's C xenstored 4.17.
    C,
    /// Debian's oxenstored 4.17.
    Ocaml,
}

fn run_peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/run-peer.sh")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Makes sure the peer binaries and the shim are in the cache. `None` (after a loud
/// message) when they cannot be had here; in CI (`CI=true`) that is a failure.
fn prepare_peer() -> Option<()> {
    let out = Command::new(run_peer_script())
        .arg("prepare")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run tests/peer/run-peer.sh");
    if out.status.success() {
        return Some(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(PEER_UNAVAILABLE) && !in_ci() {
        eprintln!(
            "\n======== SKIPPED: reference xenstored (Debian xen-utils-4.17) unavailable ========\n\
             {why}\n\
             Install gcc, libxen-dev and an apt source carrying xen-utils-4.17 (or set \
             XS_PEER_DEB). In CI this is a failure.\n\
             ================================================================================\n"
        );
        return None;
    }
    panic!("reference peer cannot be prepared (CI={}): {why}", in_ci());
}

/// Starts a reference peer on a temporary socket; `None` (skip) only when the
/// package cannot be had and we are not in CI.
pub fn peer(kind: PeerKind) -> Option<Daemon> {
    prepare_peer()?;
    let dir = TempDir::new(match kind {
        PeerKind::C => "c",
        PeerKind::Ocaml => "ox",
    });
    let socket = dir.path().join("socket");
    let log = std::fs::File::create(dir.path().join("peer.log")).expect("log file");
    let mut child = Command::new(run_peer_script())
        .arg(match kind {
            PeerKind::C => "c",
            PeerKind::Ocaml => "ocaml",
        })
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn run-peer.sh");
    let name = match kind {
        PeerKind::C => "C xenstored",
        PeerKind::Ocaml => "oxenstored",
    };
    if let Err(e) = wait_for_socket(&mut child, &socket, name) {
        let _ = child.kill();
        let log = std::fs::read_to_string(dir.path().join("peer.log")).unwrap_or_default();
        panic!("{e}\n{name} log:\n{log}");
    }
    Some(Daemon {
        name,
        socket,
        child,
        dir,
    })
}

/// Whether a command is on PATH.
pub fn have_command(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}
