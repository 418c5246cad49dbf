//! `rxl console` ended by a signal, as `timeout` or a closing terminal ends it:
//! the session must report the signal in its exit status (128 + N, as a shell
//! does) instead of looking like a session the user left with Ctrl-].
//! The console is a pty of the test's own, published in a domain's console/tty
//! on rxenstored's daemon at a temporary socket.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::pty::openpty;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use xenstore::client::{Client, XsOps};

const RXL: &str = env!("CARGO_BIN_EXE_rxl");
const DOMID: u32 = 7;
/// The longest the session may take to relay a line or to end.
const PATIENCE: Duration = Duration::from_secs(20);

fn start_daemon() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rxl-console-{}", std::process::id()));
    let path = dir.join("socket");
    // The daemon thread lives until the test process ends.
    xenstore::daemon::spawn_unix_daemon(&path).expect("xenstore daemon");
    path
}

#[test]
fn a_signal_ends_the_session_with_the_signals_status() {
    let socket = start_daemon();
    let pty = openpty(None, None).expect("openpty");
    let tty_path = std::fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        pty.slave.as_raw_fd()
    }))
    .expect("pty path");
    let mut xs = Client::connect_socket(&socket).expect("connect");
    xs.write(&format!("/local/domain/{DOMID}/name"), b"sig-guest")
        .expect("test set-up");
    xs.write(
        &format!("/local/domain/{DOMID}/console/tty"),
        tty_path.to_string_lossy().as_bytes(),
    )
    .expect("test set-up");

    let mut child = Command::new(RXL)
        .args(["console", "sig-guest"])
        .env("XENSTORED_PATH", &socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run rxl console");

    // The guest's side of the console writes a line until the session relays it:
    // then rxl is in its relay loop with the signals it handles blocked.
    let mut guest = std::fs::File::from(pty.master);
    let mut out = child.stdout.take().expect("test set-up");
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(5).any(|w| w == b"hello") {
                return true;
            }
        }
        false
    });
    let start = Instant::now();
    while !reader.is_finished() && start.elapsed() < PATIENCE {
        guest.write_all(b"hello\r\n").expect("test set-up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        reader.join().expect("test set-up"),
        "rxl console never relayed the guest's line"
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("test set-up");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("test set-up") {
            break s;
        }
        assert!(start.elapsed() < PATIENCE, "rxl console ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(128 + Signal::SIGTERM as i32),
        "exit status after SIGTERM: {status:?} (signal {:?})",
        status.signal()
    );
}
