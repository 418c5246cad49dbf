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
                ptys: false,
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
    b.d.on_watch(&mut b.xs, "dom7").expect("watch");
    assert_eq!(b.d.console_state((7, ConsoleKind::Pv)), Some(false));
    // ...new values (the guest rebooted its console) do.
    bad.page.write_u32(OUT_PROD_OFFSET, 0).expect("prod");
    let port = bad.evtchn.bind_unbound_port(0).expect("port");
    b.xs.values
        .insert("/local/domain/7/console/port".into(), port.to_string());
    b.d.on_watch(&mut b.xs, "dom7").expect("watch");
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
    b.d.on_watch(&mut b.xs, "dom10").expect("watch");
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
    b.d.on_watch(&mut b.xs, DOMLIST_TOKEN).expect("release");
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
