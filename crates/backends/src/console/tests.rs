//! The backend over the xen crate's fakes: a "guest" writes the ring and signals
//! its event channel as hvc_xen would.

use super::ring::guest::put_out;
use super::ring::{OUT_CONS_OFFSET, OUT_PROD_OFFSET};
use super::*;
use std::collections::HashMap;
use xen::abi::domctl::dominf;
use xen::abi::xen::XEN_PAGE_SIZE;
use xen::fake::{FakeEvtchn, FakeEvtchnHub, FakeForeignMemory, FakeGrants, FakeXen};
use xen::DomainInfo;

/// A xenstore stand-in: values and registered watches.
#[derive(Debug, Default)]
struct MapStore {
    values: HashMap<String, String>,
    watches: Vec<(String, String)>,
}

impl ConsoleStore for MapStore {
    fn read(&mut self, path: &str) -> Result<Option<String>, ConsoleError> {
        Ok(self.values.get(path).cloned())
    }
    fn directory(&mut self, path: &str) -> Result<Vec<String>, ConsoleError> {
        let prefix = format!("{path}/");
        let mut children: Vec<String> = self
            .values
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        children.sort();
        children.dedup();
        Ok(children)
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), ConsoleError> {
        self.values.insert(path.into(), value.into());
        Ok(())
    }
    fn watch(&mut self, path: &str, token: &str) -> Result<(), ConsoleError> {
        self.watches.push((path.into(), token.into()));
        Ok(())
    }
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), ConsoleError> {
        self.watches
            .retain(|w| w != &(path.to_string(), token.to_string()));
        Ok(())
    }
}

type TestDaemon = Daemon<FakeXen, FakeEvtchn, FakeGrants, FakeForeignMemory>;

struct Bed {
    hub: Arc<FakeEvtchnHub>,
    d: TestDaemon,
    xs: MapStore,
    dir: PathBuf,
}

use std::sync::Arc;

/// A guest's side of one console.
struct Guest {
    domid: DomId,
    page: MappedMemory,
    evtchn: FakeEvtchn,
    port: EvtchnPort,
}

impl Guest {
    /// Writes output and kicks the backend.
    fn say(&self, text: &[u8]) {
        assert_eq!(put_out(&self.page, text), text.len());
        self.evtchn.notify(self.port).expect("notify");
    }
    /// Whether the backend notified us (and forget it).
    fn was_notified(&self) -> bool {
        let mut any = false;
        while self.evtchn.pending().expect("pending").is_some() {
            any = true;
        }
        any
    }
}

const CONSOLE_GFN: XenPfn = 0x39000;

impl Bed {
    fn new(tag: &str) -> Self {
        Self::with_ptys(tag, false)
    }

    fn with_ptys(tag: &str, ptys: bool) -> Self {
        let dir =
            std::env::temp_dir().join(format!("rxconsoled-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let hub = FakeEvtchnHub::new();
        let d = Daemon::new(
            FakeXen::new(),
            hub.endpoint(0),
            FakeGrants::new(),
            FakeForeignMemory::new(),
            Config {
                log_dir: Some(dir.clone()),
                log_policy: LogPolicy::default(),
                ptys,
                backend_domid: 0,
            },
        );
        Self {
            hub,
            d,
            xs: MapStore::default(),
            dir,
        }
    }

    /// Creates a running domain with a console page (granted when `grant`) and
    /// its xenstore nodes, as a toolstack would.
    fn add_guest(&mut self, domid: DomId, name: &str, kind: ConsoleKind, grant: bool) -> Guest {
        self.d.ctrl().add_domain(DomainInfo {
            domid,
            flags: dominf::RUNNING,
            ..Default::default()
        });
        let page = MappedMemory::anonymous(XEN_PAGE_SIZE).expect("page");
        if grant {
            self.d
                .grants()
                .grant(domid, GNTTAB_RESERVED_CONSOLE, &page, 0, true)
                .expect("grant");
        } else {
            self.d.foreign().add_ram(domid, CONSOLE_GFN, page.clone());
        }
        let evtchn = self.hub.endpoint(domid);
        let port = evtchn.bind_unbound_port(0).expect("unbound");
        let dir = format!("/local/domain/{domid}/{}", kind.xs_dir());
        self.xs
            .values
            .insert(format!("/local/domain/{domid}/name"), name.into());
        self.xs
            .values
            .insert(format!("{dir}/ring-ref"), CONSOLE_GFN.to_string());
        self.xs
            .values
            .insert(format!("{dir}/port"), port.to_string());
        Guest {
            domid,
            page,
            evtchn,
            port,
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("guest-{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn output_reaches_the_log_and_is_released_to_the_guest() {
    let mut b = Bed::new("basic");
    let g = b.add_guest(3, "web", ConsoleKind::Pv, true);
    b.d.start(&mut b.xs).expect("start");
    assert_eq!(b.d.console_state((3, ConsoleKind::Pv)), Some(true));
    assert!(b
        .xs
        .watches
        .contains(&("@introduceDomain".into(), DOMLIST_TOKEN.into())));
    assert!(b
        .xs
        .watches
        .contains(&("/local/domain/3/console".into(), "dom3".into())));
    g.was_notified();
    g.say(b"[    0.000000] Booting Linux\r\n");
    b.d.on_evtchn().expect("evtchn");
    assert_eq!(b.log("web"), "[    0.000000] Booting Linux\r\n");
    assert_eq!(
        g.page.read_u32(OUT_CONS_OFFSET).expect("cons"),
        g.page.read_u32(OUT_PROD_OFFSET).expect("prod")
    );
    assert!(g.was_notified(), "guest told that space is free");
}

#[test]
fn without_a_grant_the_ring_frame_is_mapped_foreign() {
    let mut b = Bed::new("foreign");
    let g = b.add_guest(4, "nogrant", ConsoleKind::Pv, false);
    b.d.start(&mut b.xs).expect("start");
    g.say(b"hello\n");
    b.d.on_evtchn().expect("evtchn");
    assert_eq!(b.log("nogrant"), "hello\n");
}

#[test]
fn the_sbsa_uart_console_has_its_own_log() {
    let mut b = Bed::new("vuart");
    let g = b.add_guest(5, "uart", ConsoleKind::Vuart, false);
    b.d.start(&mut b.xs).expect("start");
    assert_eq!(b.d.console_state((5, ConsoleKind::Vuart)), Some(true));
    assert_eq!(b.d.console_state((5, ConsoleKind::Pv)), None);
    g.say(b"ttyAMA0 says hi\n");
    b.d.on_evtchn().expect("evtchn");
    assert_eq!(b.log("uart-vuart0"), "ttyAMA0 says hi\n");
}

#[test]
fn output_already_in_the_ring_at_start_is_logged_once() {
    let mut b = Bed::new("restart");
    let g = b.add_guest(6, "early", ConsoleKind::Pv, true);
    // Written while no daemon ran (or before a restart).
    put_out(&g.page, b"line 1\nline 2\n");
    b.d.start(&mut b.xs).expect("start");
    assert_eq!(b.log("early"), "line 1\nline 2\n");
    // A second daemon on the same guest (rxconsoled restarted) logs only what
    // came after.
    let b2 = Daemon::new(
        FakeXen::new(),
        b.hub.endpoint(0),
        FakeGrants::new(),
        FakeForeignMemory::new(),
        Config {
            log_dir: Some(b.dir.clone()),
            log_policy: LogPolicy::default(),
            ptys: false,
            backend_domid: 0,
        },
    );
    b2.ctrl().add_domain(DomainInfo {
        domid: 6,
        flags: dominf::RUNNING,
        ..Default::default()
    });
    b2.grants()
        .grant(6, GNTTAB_RESERVED_CONSOLE, &g.page, 0, true)
        .expect("grant");
    // The old binding went with the old daemon; the guest's port is unbound again.
    let port = g.evtchn.bind_unbound_port(0).expect("port");
    b.xs.values
        .insert("/local/domain/6/console/port".into(), port.to_string());
    drop(std::mem::replace(&mut b.d, b2));
    put_out(&g.page, b"line 3\n");
    b.d.start(&mut b.xs).expect("start again");
    assert_eq!(b.log("early"), "line 1\nline 2\nline 3\n");
}

#[test]
fn bogus_indices_disconnect_only_that_guest() {
    let mut b = Bed::new("hostile");
    let bad = b.add_guest(7, "bad", ConsoleKind::Pv, true);
    let good = b.add_guest(8, "good", ConsoleKind::Pv, true);
    b.d.start(&mut b.xs).expect("start");
    bad.page
        .write_u32(OUT_PROD_OFFSET, 0x10_0000)
        .expect("prod");
    bad.evtchn.notify(bad.port).expect("notify");
    good.say(b"still here\n");
    b.d.on_evtchn().expect("evtchn");
    assert_eq!(b.d.console_state((7, ConsoleKind::Pv)), Some(false));
    assert_eq!(b.d.console_state((8, ConsoleKind::Pv)), Some(true));
    assert_eq!(b.log("good"), "still here\n");
    assert_eq!(b.log("bad"), "");
    // The bad ring's out_cons was not moved.
    assert_eq!(bad.page.read_u32(OUT_CONS_OFFSET).expect("cons"), 0);
    // A watch firing with the same values does not reconnect it...
    b.d.on_watch(&mut b.xs, "/local/domain/7/console/port", "dom7")
        .expect("watch");
    assert_eq!(b.d.console_state((7, ConsoleKind::Pv)), Some(false));
    // ...new values (the guest rebooted its console) do.
    bad.page.write_u32(OUT_PROD_OFFSET, 0).expect("prod");
    let port = bad.evtchn.bind_unbound_port(0).expect("port");
    b.xs.values
        .insert("/local/domain/7/console/port".into(), port.to_string());
    b.d.on_watch(&mut b.xs, "/local/domain/7/console/port", "dom7")
        .expect("watch");
    assert_eq!(b.d.console_state((7, ConsoleKind::Pv)), Some(true));
}

#[test]
fn a_flooding_guest_is_rate_limited_and_resumes_after_the_period() {
    let mut b = Bed::new("flood");
    let flood = b.add_guest(9, "flood", ConsoleKind::Pv, true);
    b.d.start(&mut b.xs).expect("start");
    for i in 0..RATE_LIMIT_ALLOWANCE {
        flood.say(format!("{i}\n").as_bytes());
        b.d.on_evtchn().expect("evtchn");
    }
    assert!(b.d.throttled((9, ConsoleKind::Pv)));
    // While throttled its port stays masked (the fake does not model masking, so
    // the guest's output simply waits in the ring until the period ends).
    put_out(&flood.page, b"late\n");
    assert!(!b.log("flood").contains("late"));
    b.d.tick(Instant::now()); // period not over: nothing changes
    assert!(b.d.throttled((9, ConsoleKind::Pv)));
    b.d.tick(Instant::now() + RATE_LIMIT_PERIOD);
    assert!(!b.d.throttled((9, ConsoleKind::Pv)));
    assert!(b.log("flood").ends_with("29\nlate\n"));
}

#[test]
fn nodes_written_after_the_domain_appeared_connect_on_the_watch() {
    let mut b = Bed::new("late");
    let g = b.add_guest(10, "late", ConsoleKind::Pv, true);
    let port =
        b.xs.values
            .remove("/local/domain/10/console/port")
            .expect("port");
    b.d.start(&mut b.xs).expect("start");
    assert_eq!(b.d.console_state((10, ConsoleKind::Pv)), None);
    assert_eq!(b.d.domains(), vec![10]);
    b.xs.values
        .insert("/local/domain/10/console/port".into(), port);
    b.d.on_watch(&mut b.xs, "/local/domain/10/console/port", "dom10")
        .expect("watch");
    assert_eq!(b.d.console_state((10, ConsoleKind::Pv)), Some(true));
    g.say(b"ok\n");
    b.d.on_evtchn().expect("evtchn");
    assert_eq!(b.log("late"), "ok\n");
}

#[test]
fn dying_and_vanished_domains_are_dropped_after_their_last_words() {
    let mut b = Bed::new("gone");
    let g = b.add_guest(11, "dying", ConsoleKind::Pv, true);
    let h = b.add_guest(12, "vanish", ConsoleKind::Pv, true);
    b.d.start(&mut b.xs).expect("start");
    put_out(&g.page, b"reboot: Power down\n");
    b.d.ctrl().add_domain(DomainInfo {
        domid: 11,
        flags: dominf::DYING,
        ..Default::default()
    });
    b.d.ctrl().destroy_domain(12).expect("destroy");
    b.d.on_watch(&mut b.xs, "@releaseDomain", DOMLIST_TOKEN)
        .expect("release");
    assert!(b.d.domains().is_empty());
    assert_eq!(b.log("dying"), "reboot: Power down\n");
    assert!(!b
        .xs
        .watches
        .iter()
        .any(|(_, t)| t == "dom11" || t == "dom12"));
    drop(h);
}

#[test]
fn consoles_owned_by_another_backend_are_left_alone() {
    let mut b = Bed::new("ioemu");
    b.add_guest(13, "qemu", ConsoleKind::Pv, true);
    b.xs.values
        .insert("/local/domain/13/console/type".into(), "ioemu".into());
    b.d.start(&mut b.xs).expect("start");
    assert_eq!(b.d.console_state((13, ConsoleKind::Pv)), None);
}

#[test]
fn guest_names_cannot_escape_the_log_dir() {
    let mut b = Bed::new("name");
    let g = b.add_guest(14, "../../evil", ConsoleKind::Pv, true);
    b.d.start(&mut b.xs).expect("start");
    g.say(b"x\n");
    b.d.on_evtchn().expect("evtchn");
    assert_eq!(b.log(".._.._evil"), "x\n");
    assert_eq!(g.domid, 14);
}

/// The backend directory of secondary console `devid` of `domid`.
fn sec_be(domid: DomId, devid: u32) -> String {
    format!("/local/domain/0/backend/console/{domid}/{devid}")
}

/// The frontend directory of secondary console `devid` of `domid`.
fn sec_fe(domid: DomId, devid: u32) -> String {
    format!("/local/domain/{domid}/device/console/{devid}")
}

impl Bed {
    /// Writes the nodes of a channel as rxl does (both directories, state
    /// Initialising); `owner` is the frontend's `type`.
    fn add_channel(&mut self, domid: DomId, devid: u32, owner: &str) {
        let (be, fe) = (sec_be(domid, devid), sec_fe(domid, devid));
        for (k, v) in [
            (format!("{be}/frontend"), fe.clone()),
            (format!("{be}/frontend-id"), domid.to_string()),
            (format!("{be}/online"), "1".into()),
            (format!("{be}/state"), "1".into()),
            (format!("{be}/name"), "org.rxen.test".into()),
            (format!("{fe}/backend"), be.clone()),
            (format!("{fe}/backend-id"), "0".into()),
            (format!("{fe}/state"), "1".into()),
            (format!("{fe}/type"), owner.into()),
            (format!("{fe}/name"), "org.rxen.test".into()),
        ] {
            self.xs.values.insert(k, v);
        }
    }

    /// The guest's hvc_xen probing channel `devid`: grants a fresh ring page as
    /// `gref`, allocates an event channel, writes both and goes to Initialised.
    fn frontend_connects(&mut self, g: &Guest, devid: u32, gref: u32) -> Guest {
        let page = MappedMemory::anonymous(XEN_PAGE_SIZE).expect("page");
        self.d
            .grants()
            .grant(g.domid, gref, &page, 0, true)
            .expect("grant");
        let evtchn = self.hub.endpoint(g.domid);
        let port = evtchn.bind_unbound_port(0).expect("unbound");
        let fe = sec_fe(g.domid, devid);
        self.xs
            .values
            .insert(format!("{fe}/ring-ref"), gref.to_string());
        self.xs
            .values
            .insert(format!("{fe}/port"), port.to_string());
        self.xs.values.insert(format!("{fe}/state"), "3".into());
        Guest {
            domid: g.domid,
            page,
            evtchn,
            port,
        }
    }

    fn be_state(&self, domid: DomId, devid: u32) -> String {
        self.xs
            .values
            .get(&format!("{}/state", sec_be(domid, devid)))
            .cloned()
            .unwrap_or_default()
    }

    /// What the watches would report: the backend node and the frontend's state.
    fn fire(&mut self, domid: DomId, devid: u32) {
        let be = format!("{}/state", sec_be(domid, devid));
        self.d
            .on_watch(&mut self.xs, &be, BACKEND_TOKEN)
            .expect("backend watch");
        let fe = format!("{}/state", sec_fe(domid, devid));
        self.d
            .on_watch(&mut self.xs, &fe, &format!("dom{domid}"))
            .expect("frontend watch");
    }
}

#[test]
fn a_channel_goes_through_the_xenbus_handshake_and_logs_its_output() {
    let mut b = Bed::new("channel");
    let g = b.add_guest(20, "chan", ConsoleKind::Pv, true);
    b.add_channel(20, 1, CONSOLE_TYPE_DAEMON);
    b.d.start(&mut b.xs).expect("start");
    assert!(b.xs.watches.contains(&(
        "/local/domain/0/backend/console".into(),
        BACKEND_TOKEN.into()
    )));
    assert!(b
        .xs
        .watches
        .contains(&("/local/domain/20/device/console".into(), "dom20".into())));
    assert_eq!(b.be_state(20, 1), "2", "backend waits in InitWait");
    assert_eq!(b.d.console_state((20, ConsoleKind::Secondary(1))), None);
    let ch = b.frontend_connects(&g, 1, 9);
    b.fire(20, 1);
    assert_eq!(b.be_state(20, 1), "4", "backend Connected");
    assert_eq!(
        b.d.console_state((20, ConsoleKind::Secondary(1))),
        Some(true)
    );
    ch.was_notified();
    ch.say(b"from hvc1\n");
    g.say(b"from hvc0\n");
    b.d.on_evtchn().expect("evtchn");
    assert_eq!(b.log("chan-console1"), "from hvc1\n");
    assert_eq!(b.log("chan"), "from hvc0\n");
    assert!(
        ch.was_notified(),
        "the channel's guest is told space is free"
    );
    // Watches firing again change nothing.
    b.fire(20, 1);
    assert_eq!(b.be_state(20, 1), "4");
    // The frontend closes: the backend follows and stops serving the ring.
    b.xs.values
        .insert(format!("{}/state", sec_fe(20, 1)), "5".into());
    b.fire(20, 1);
    assert_eq!(b.be_state(20, 1), "5");
    assert_eq!(b.d.console_state((20, ConsoleKind::Secondary(1))), None);
    b.xs.values
        .insert(format!("{}/state", sec_fe(20, 1)), "6".into());
    b.fire(20, 1);
    assert_eq!(b.be_state(20, 1), "6");
    // The primary console is untouched.
    assert_eq!(b.d.console_state((20, ConsoleKind::Pv)), Some(true));
}

#[test]
fn a_frontend_faster_than_the_backend_is_connected_at_once() {
    // hvc_xen writes ring-ref and Initialised at probe time, without waiting for
    // InitWait: a daemon started later finds it there.
    let mut b = Bed::new("channel-early");
    let g = b.add_guest(21, "early-chan", ConsoleKind::Pv, true);
    b.add_channel(21, 2, CONSOLE_TYPE_DAEMON);
    let ch = b.frontend_connects(&g, 2, 11);
    put_out(&ch.page, b"written before the daemon ran\n");
    b.d.start(&mut b.xs).expect("start");
    assert_eq!(b.be_state(21, 2), "4");
    assert_eq!(
        b.log("early-chan-console2"),
        "written before the daemon ran\n"
    );
}

#[test]
fn channels_of_another_backend_are_left_alone() {
    let mut b = Bed::new("channel-ioemu");
    let g = b.add_guest(22, "qemu-chan", ConsoleKind::Pv, true);
    b.add_channel(22, 1, "ioemu");
    b.frontend_connects(&g, 1, 9);
    b.d.start(&mut b.xs).expect("start");
    b.fire(22, 1);
    assert_eq!(b.be_state(22, 1), "1", "QEMU's device is not touched");
    assert_eq!(b.d.console_state((22, ConsoleKind::Secondary(1))), None);
}

#[test]
fn a_channel_whose_grant_cannot_be_mapped_is_closed_without_retrying() {
    let mut b = Bed::new("channel-badref");
    let g = b.add_guest(23, "bad-chan", ConsoleKind::Pv, true);
    b.add_channel(23, 1, CONSOLE_TYPE_DAEMON);
    b.d.start(&mut b.xs).expect("start");
    let fe = sec_fe(23, 1);
    let port = g.evtchn.bind_unbound_port(0).expect("port");
    // A grant reference the guest never granted.
    b.xs.values.insert(format!("{fe}/ring-ref"), "77".into());
    b.xs.values.insert(format!("{fe}/port"), port.to_string());
    b.xs.values.insert(format!("{fe}/state"), "3".into());
    b.fire(23, 1);
    assert_eq!(b.be_state(23, 1), "5", "backend Closing");
    assert!(b
        .xs
        .values
        .get(&format!("{}/error", sec_be(23, 1)))
        .is_some_and(|e| e.contains("cannot map")));
    assert_eq!(
        b.d.console_state((23, ConsoleKind::Secondary(1))),
        Some(false)
    );
    // Hostile values elsewhere: a ring-ref that is not a number.
    b.xs.values.insert(format!("{fe}/ring-ref"), "x".into());
    b.fire(23, 1);
    assert_eq!(b.be_state(23, 1), "5");
    // The frontend starts over with a good grant: served.
    b.xs.values.insert(format!("{fe}/state"), "1".into());
    b.fire(23, 1);
    assert_eq!(b.be_state(23, 1), "2");
    let ch = b.frontend_connects(&g, 1, 12);
    b.fire(23, 1);
    assert_eq!(b.be_state(23, 1), "4");
    ch.say(b"ok\n");
    b.d.on_evtchn().expect("evtchn");
    assert_eq!(b.log("bad-chan-console1"), "ok\n");
}

#[test]
fn a_channel_removed_by_the_toolstack_is_closed_and_forgotten() {
    let mut b = Bed::new("channel-remove");
    let g = b.add_guest(24, "rm-chan", ConsoleKind::Pv, true);
    b.add_channel(24, 1, CONSOLE_TYPE_DAEMON);
    b.d.start(&mut b.xs).expect("start");
    b.frontend_connects(&g, 1, 9);
    b.fire(24, 1);
    assert_eq!(b.be_state(24, 1), "4");
    let be = sec_be(24, 1);
    b.xs.values.insert(format!("{be}/online"), "0".into());
    b.xs.values.insert(format!("{be}/state"), "5".into());
    b.fire(24, 1);
    assert_eq!(b.be_state(24, 1), "6");
    assert_eq!(b.d.console_state((24, ConsoleKind::Secondary(1))), None);
    // The directory goes away entirely.
    b.xs.values.retain(|k, _| !k.starts_with(&be));
    b.fire(24, 1);
    assert_eq!(b.d.console_state((24, ConsoleKind::Secondary(1))), None);
}

#[test]
fn typed_input_larger_than_the_ring_reaches_the_guest_as_it_makes_room() {
    use super::ring::guest::take_in;
    use super::ring::IN_SIZE;
    use std::io::{Read, Write};
    let mut b = Bed::with_ptys("pty-input", true);
    let g = b.add_guest(30, "typist", ConsoleKind::Pv, true);
    b.d.start(&mut b.xs).expect("start");
    let tty = b.xs.values["/local/domain/30/console/tty"].clone();
    let mut client = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tty)
        .expect("open the console pty");
    // Raw mode on the slave (set by rxconsoled): bytes pass unchanged.
    let typed: Vec<u8> = (0..IN_SIZE + 300).map(|i| b'a' + (i % 26) as u8).collect();
    client.write_all(&typed).expect("type");
    std::thread::sleep(std::time::Duration::from_millis(50));
    b.d.on_pty((30, ConsoleKind::Pv));
    let mut got = take_in(&g.page);
    assert_eq!(got.len(), IN_SIZE, "the ring is filled first");
    // The guest consumed and signals: the rest follows without a new pty event.
    g.evtchn.notify(g.port).expect("notify");
    b.d.on_evtchn().expect("evtchn");
    got.extend(take_in(&g.page));
    assert_eq!(got, typed);
    // Output reaches the attached client.
    g.say(b"echo\r\n");
    b.d.on_evtchn().expect("evtchn");
    let mut buf = [0u8; 64];
    let n = client.read(&mut buf).expect("read output");
    assert_eq!(&buf[..n], b"echo\r\n");
}
