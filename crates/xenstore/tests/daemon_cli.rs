//! rxenstored as a program: forking, pid file, socket location rules, the trace
//! file and its CONTROL commands, clean shutdown on SIGTERM.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{rxenstored, TempDir};
use xenstore::client::{Client, XsOps};

const WAIT: Duration = Duration::from_secs(10);

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks existence; a zombie has no /proc/<pid>/status "State: Z".
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    !status.is_empty() && !status.contains("State:\tZ")
}

fn read_file(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn forks_writes_pid_file_traces_and_stops_on_sigterm() {
    let dir = TempDir::new("cli");
    let socket = dir.path().join("run/socket");
    let pid_file = dir.path().join("xenstored.pid");
    let trace = dir.path().join("trace");
    // Default is to fork: the command returns once the daemon listens.
    let status = Command::new(env!("CARGO_BIN_EXE_rxenstored"))
        .arg("--socket")
        .arg(&socket)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("-T")
        .arg(&trace)
        .stdin(Stdio::null())
        .status()
        .expect("run rxenstored");
    assert!(status.success());
    wait_until("pid file", || !read_file(&pid_file).is_empty());
    let pid: i32 = read_file(&pid_file).trim().parse().expect("pid");
    assert!(alive(pid), "daemon {pid} runs in the background");
    let mode = std::fs::metadata(&socket).expect("socket exists");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        mode.permissions().mode() & 0o777,
        0o600,
        "socket mode like C's"
    );

    let mut c = Client::connect_socket(&socket).expect("connect");
    c.write("/traced", b"v").expect("write");
    wait_until("trace line", || {
        read_file(&trace).contains("WRITE (/traced v)")
    });
    c.control("log", &["off"]).expect("log off");
    c.write("/untraced", b"v").expect("write");
    c.control("log", &["on"]).expect("log on");
    c.write("/traced-again", b"v").expect("write");
    wait_until("trace after log on", || {
        read_file(&trace).contains("/traced-again")
    });
    assert!(
        !read_file(&trace).contains("/untraced"),
        "log off stops tracing"
    );
    let moved = dir.path().join("trace2");
    c.control("logfile", &[moved.to_str().expect("utf8")])
        .expect("logfile");
    c.write("/in-new-file", b"v").expect("write");
    wait_until("trace in the new file", || {
        read_file(&moved).contains("/in-new-file")
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    wait_until("daemon exit", || !alive(pid));
    assert!(!socket.exists(), "socket removed on exit");
    assert!(!pid_file.exists(), "pid file removed on exit");
}

#[test]
fn socket_follows_xenstored_rundir_and_path() {
    let dir = TempDir::new("rundir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rxenstored"))
        .arg("-N")
        .env("XENSTORED_RUNDIR", dir.path())
        .env_remove("XENSTORED_PATH")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let socket = dir.path().join("socket");
    wait_until("socket in XENSTORED_RUNDIR", || {
        Client::connect_socket(&socket).is_ok()
    });
    let _ = child.kill();
    let _ = child.wait();

    let explicit = dir.path().join("elsewhere");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rxenstored"))
        .arg("-N")
        .env("XENSTORED_RUNDIR", dir.path())
        .env("XENSTORED_PATH", &explicit)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_until("socket at XENSTORED_PATH", || {
        Client::connect_socket(&explicit).is_ok()
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_options_are_refused() {
    for args in [
        &["-Q", "bogus=1"][..],
        &["-Q", "outstanding"],
        &["-E", "-5"],
        &["--max-queued", "0"],
        &["--max-queued-bytes", "100"],
        &["extra-argument"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rxenstored"))
            .args(["-N", "--socket", "/nonexistent-dir-for-test/s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} accepted");
    }
}

#[test]
fn quota_options_reach_the_core() {
    // CONTROL quota prints the values in effect.
    let d = rxenstored(&["-E", "77", "-W", "55", "-Q", "outstanding=33"]);
    let mut c = d.client();
    let text = String::from_utf8_lossy(&c.control("quota", &[]).expect("quota")).into_owned();
    for want in ["77", "55", "33"] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    assert_eq!(c.read("/tool/xenstored").expect("read"), b"");
}

#[test]
fn client_open_path_tells_sockets_from_other_files() {
    let d = rxenstored(&[]);
    let mut c = Client::open_path(&d.socket).expect("a socket path connects");
    assert_eq!(c.get_domain_path(3).expect("request"), "/local/domain/3");
    let not_a_daemon = d.dir.path().join("plain-file");
    std::fs::write(&not_a_daemon, b"").expect("create");
    let mut f = Client::open_path(&not_a_daemon).expect("a plain file opens like a device");
    // ...but nothing answers on it.
    f.set_timeout(Some(Duration::from_millis(200)));
    assert!(f.get_domain_path(0).is_err());
    let missing = d.dir.path().join("missing");
    assert!(matches!(
        Client::open_path(&missing),
        Err(xenstore::client::ClientError::Connect { .. })
    ));
}
