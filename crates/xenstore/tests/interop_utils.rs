//! Interop: Debian's xenstore-utils (xenstore-read, -write, -ls, -list, -rm,
//! -chmod, -exists, -watch; the C libxenstore underneath) against rxenstored.
//! Every scenario also runs against Debian's C xenstored when the peer is
//! available, and the outputs must be the same.
//!
//! Needs the `xenstore-utils` package (CI installs it). Without it the tests skip
//! loudly, and fail when CI=true.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{have_command, peer, rxenstored, Daemon, PeerKind};
use xenstore::client::{Perm, PermAccess, XsOps};

/// How long xenstore-watch may take to report.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

fn utils_available() -> bool {
    if have_command("xenstore-read") && have_command("xenstore-watch") {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "xenstore-utils missing in CI: install the xenstore-utils package"
    );
    eprintln!(
        "\n======== SKIPPED: xenstore-utils not installed (apt-get install xenstore-utils) ========\n"
    );
    false
}

/// Runs a xenstore-utils command against `d`.
fn xs(d: &Daemon, cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .env("XENSTORED_PATH", &d.socket)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"))
}

/// stdout and exit code, for comparison.
fn outcome(o: &Output) -> (String, Option<i32>) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        o.status.code(),
    )
}

/// The steps of the basic scenario with the output each must give.
fn basic_steps() -> Vec<(&'static str, Vec<&'static str>, &'static str, i32)> {
    vec![
        (
            "xenstore-write",
            vec!["/it/a", "hello", "/it/b", "world"],
            "",
            0,
        ),
        ("xenstore-read", vec!["/it/a", "/it/b"], "hello\nworld\n", 0),
        ("xenstore-read", vec!["/it/none"], "", 1),
        ("xenstore-exists", vec!["/it/a"], "", 0),
        ("xenstore-exists", vec!["/it/none"], "", 1),
        ("xenstore-list", vec!["/it"], "a\nb\n", 0),
        (
            "xenstore-ls",
            vec!["/it"],
            "a = \"hello\"\nb = \"world\"\n",
            0,
        ),
        (
            "xenstore-ls",
            vec!["-f", "/it"],
            "/it/a = \"hello\"\n/it/b = \"world\"\n",
            0,
        ),
        ("xenstore-write", vec!["/it/tab", "a\tb"], "", 0),
        ("xenstore-read", vec!["/it/tab"], "a\\tb\n", 0),
        ("xenstore-chmod", vec!["/it/a", "r5", "b7"], "", 0),
        ("xenstore-chmod", vec!["-r", "/it/b", "n0"], "", 0),
        ("xenstore-rm", vec!["/it/tab"], "", 0),
        ("xenstore-exists", vec!["/it/tab"], "", 1),
        ("xenstore-read", vec!["relative-missing"], "", 1),
        ("xenstore-write", vec!["/it/bad path", "x"], "", 1),
    ]
}

fn run_basic(d: &Daemon) -> Vec<(String, Option<i32>)> {
    let mut results = Vec::new();
    for (cmd, args, want_out, want_rc) in basic_steps() {
        let o = xs(d, cmd, &args);
        let got = outcome(&o);
        assert_eq!(
            got,
            (want_out.to_string(), Some(want_rc)),
            "{} {cmd} {args:?} (stderr: {})",
            d.name,
            String::from_utf8_lossy(&o.stderr)
        );
        results.push(got);
    }
    // The permissions set by xenstore-chmod, seen through our client.
    let mut c = d.client();
    assert_eq!(
        c.get_perms("/it/a").expect("perms"),
        [
            Perm::new(5, PermAccess::Read),
            Perm::new(7, PermAccess::Both)
        ]
    );
    assert_eq!(
        c.get_perms("/it/b").expect("perms"),
        [Perm::new(0, PermAccess::None)]
    );
    let o = xs(d, "xenstore-ls", &["-p", "/it"]);
    results.push(outcome(&o));
    xs(d, "xenstore-rm", &["/it"]);
    results
}

#[test]
fn xenstore_utils_work_against_rxenstored() {
    if !utils_available() {
        return;
    }
    let rx = rxenstored(&[]);
    let got = run_basic(&rx);
    if let Some(c) = peer(PeerKind::C) {
        let want = run_basic(&c);
        assert_eq!(got, want, "rxenstored and C xenstored differ");
    }
}

/// xenstore-watch prints each event's path: the first fires on registration.
fn watch_events(d: &Daemon) -> Vec<String> {
    let mut child = Command::new("xenstore-watch")
        .args(["-n", "4", "/wi"])
        .env("XENSTORED_PATH", &d.socket)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn xenstore-watch");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // The registration event shows the watch is in place.
    lines.push(rx.recv_timeout(WATCH_TIMEOUT).expect("initial watch event"));
    let mut c = d.client();
    c.write("/wi/a", b"1").expect("write");
    c.write("/wiz", b"not below /wi").expect("write");
    c.write("/wi/a/deep", b"2").expect("write");
    c.rm("/wi").expect("rm");
    for _ in 0..3 {
        lines.push(rx.recv_timeout(WATCH_TIMEOUT).expect("watch event"));
    }
    let status = child.wait().expect("xenstore-watch exits after -n events");
    assert!(status.success());
    c.rm("/wiz").expect("cleanup");
    lines
}

#[test]
fn xenstore_watch_sees_events_from_rxenstored() {
    if !utils_available() {
        return;
    }
    let rx = rxenstored(&[]);
    let got = watch_events(&rx);
    assert_eq!(got, ["/wi", "/wi/a", "/wi/a/deep", "/wi"]);
    if let Some(c) = peer(PeerKind::C) {
        assert_eq!(watch_events(&c), got);
    }
}
