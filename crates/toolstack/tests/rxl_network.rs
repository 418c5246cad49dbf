//! `rxl network-attach`, `network-list` and `network-detach` as an admin runs them,
//! against rxenstored's daemon on a temporary socket, with a stand-in backend
//! thread that plays rxnetback's part of the xenbus handshake (InitWait on a new
//! NIC, Closed when asked to close) while it is switched on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xenstore::client::{Client, XsOps};

const RXL: &str = env!("CARGO_BIN_EXE_rxl");
const DOMID: u32 = 5;
const BACKEND_DIR: &str = "/local/domain/0/backend/rxvif/5";
const FRONTEND_DIR: &str = "/local/domain/5/device/vif";
/// How often the stand-in backend looks at its directory.
const BACKEND_POLL: Duration = Duration::from_millis(20);

fn start_daemon(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rxl-net-{tag}-{}", std::process::id()));
    let path = dir.join("socket");
    // The daemon thread lives until the test process ends.
    xenstore::daemon::spawn_unix_daemon(&path).expect("xenstore daemon");
    path
}

/// rxnetback's side of the handshake while `on` is set: a new NIC (state 1,
/// online) goes to InitWait; one asked to close (state 5) goes to Closed. While
/// `guest` is set, a guest's netfront connects NICs in InitWait.
fn stand_in_backend(socket: &Path, on: Arc<AtomicBool>, guest: Arc<AtomicBool>) {
    let mut xs = Client::connect_socket(socket).expect("backend connects");
    std::thread::spawn(move || loop {
        std::thread::sleep(BACKEND_POLL);
        if !on.load(Ordering::SeqCst) {
            continue;
        }
        let Ok(devs) = xs.directory(BACKEND_DIR) else {
            continue;
        };
        for d in devs {
            let state = format!("{BACKEND_DIR}/{d}/state");
            let next = match xs.read_string(&state).as_deref() {
                Ok("1") => "2",
                Ok("2") if guest.load(Ordering::SeqCst) => {
                    // The guest's netfront: picks the NIC up, both sides connect.
                    let _ = xs.write(&format!("{FRONTEND_DIR}/{d}/state"), b"4");
                    "4"
                }
                Ok("5") => "6",
                _ => continue,
            };
            let _ = xs.write(&state, next.as_bytes());
        }
    });
}

fn rxl(socket: &Path, args: &[&str]) -> Output {
    Command::new(RXL)
        .args(args)
        .env("XENSTORED_PATH", socket)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run rxl")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn children(xs: &mut Client, dir: &str) -> Vec<String> {
    let mut v = xs.directory(dir).unwrap_or_default();
    v.sort();
    v
}

#[test]
fn attach_list_detach_and_failures_leave_no_debris() {
    let sock = start_daemon("cycle");
    let mut xs = Client::connect_socket(&sock).expect("connect");
    xs.write(&format!("/local/domain/{DOMID}/name"), b"g5")
        .expect("domain");
    let backend_on = Arc::new(AtomicBool::new(true));
    let guest_on = Arc::new(AtomicBool::new(false));
    stand_in_backend(&sock, backend_on.clone(), guest_on.clone());

    // A NIC with a given MAC, by domain name: devid 0, xl's nodes.
    let o = rxl(
        &sock,
        &[
            "network-attach",
            "g5",
            "mac=00:16:3e:00:00:aa",
            "bridge=br9",
            "--timeout",
            "5",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(children(&mut xs, FRONTEND_DIR), ["0"]);
    assert_eq!(
        xs.read_string(&format!("{BACKEND_DIR}/0/bridge"))
            .expect("xenstore"),
        "br9"
    );
    assert_eq!(
        xs.read_string(&format!("{FRONTEND_DIR}/0/mac"))
            .expect("xenstore"),
        "00:16:3e:00:00:aa"
    );
    assert_eq!(
        xs.read_string(&format!("{BACKEND_DIR}/0/state"))
            .expect("xenstore"),
        "2"
    );

    // Defaults, by domain id, and a model= note: devid 1, a generated Xen MAC.
    let o = rxl(
        &sock,
        &["network-attach", "5", "model=e1000", "--timeout", "5"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("model=e1000 ignored"));
    assert_eq!(children(&mut xs, FRONTEND_DIR), ["0", "1"]);
    let mac1 = xs
        .read_string(&format!("{FRONTEND_DIR}/1/mac"))
        .expect("xenstore");
    assert!(mac1.starts_with("00:16:3e:"), "{mac1}");
    assert_eq!(
        xs.read_string(&format!("{BACKEND_DIR}/1/bridge"))
            .expect("xenstore"),
        "xenbr0"
    );

    // With the guest's netfront running (it connects NICs 0 and 1 as well),
    // attach returns once the NIC is connected.
    guest_on.store(true, Ordering::SeqCst);
    let o = rxl(&sock, &["network-attach", "g5", "--timeout", "5"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("waits for the guest"),
        "{}",
        text(&o)
    );
    assert_eq!(
        xs.read_string(&format!("{BACKEND_DIR}/2/state"))
            .expect("xenstore"),
        "4"
    );
    let o = rxl(&sock, &["network-detach", "g5", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    guest_on.store(false, Ordering::SeqCst);

    // The same MAC twice in one domain is refused before anything is written.
    let o = rxl(&sock, &["network-attach", "g5", "mac=00:16:3e:00:00:aa"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already has a NIC"));
    assert_eq!(children(&mut xs, FRONTEND_DIR), ["0", "1"]);

    // A bad spec and an unknown domain: errors, nothing written.
    let o = rxl(&sock, &["network-attach", "g5", "mac=01:00:00:00:00:01"]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = rxl(&sock, &["network-attach", "nosuch", "bridge=b"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid domain identifier"));
    assert_eq!(children(&mut xs, FRONTEND_DIR), ["0", "1"]);

    // network-list: xl's header, one row per NIC.
    let o = rxl(&sock, &["network-list", "g5"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0]
        .starts_with("Idx BE Mac Addr.         handle state evt-ch   tx-/rx-ring-ref BE-path"));
    assert!(lines[1].starts_with("0   0  00:16:3e:00:00:aa     0     4     -1    -1/-1          /local/domain/0/backend/rxvif/5/0"), "{out}");
    assert!(lines[2].contains(&mac1), "{out}");

    // Detach by MAC, then by devid: the backend closes, both directories go,
    // and the per-domain backend directory with the last one.
    let o = rxl(&sock, &["network-detach", "g5", "00:16:3E:00:00:AA"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(children(&mut xs, FRONTEND_DIR), ["1"]);
    assert_eq!(children(&mut xs, BACKEND_DIR), ["1"]);
    let o = rxl(&sock, &["network-detach", "5", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(children(&mut xs, FRONTEND_DIR).is_empty());
    assert!(!xs.exists(BACKEND_DIR).expect("xenstore"));
    let o = rxl(&sock, &["network-detach", "5", "1"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));

    // No backend: attach gives up, says why and removes what it wrote.
    backend_on.store(false, Ordering::SeqCst);
    let o = rxl(
        &sock,
        &["network-attach", "g5", "bridge=b", "--timeout", "1"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is rxnetback running?"));
    assert!(children(&mut xs, FRONTEND_DIR).is_empty());
    assert!(!xs.exists(BACKEND_DIR).expect("xenstore"));

    // A backend that does not close: detach times out and leaves the NIC; --force
    // removes it.
    backend_on.store(true, Ordering::SeqCst);
    let o = rxl(&sock, &["network-attach", "g5", "--timeout", "5"]);
    assert!(o.status.success(), "{}", text(&o));
    backend_on.store(false, Ordering::SeqCst);
    let o = rxl(&sock, &["network-detach", "g5", "0", "--timeout", "1"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(children(&mut xs, FRONTEND_DIR), ["0"]);
    let o = rxl(&sock, &["network-detach", "g5", "0", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(children(&mut xs, FRONTEND_DIR).is_empty());
    assert!(!xs.exists(BACKEND_DIR).expect("xenstore"));
}
