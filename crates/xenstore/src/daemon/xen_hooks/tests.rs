//! The daemon's domain rings over the `xen` crate's fakes: guests introduced
//! through grant 1 or by frame number, served through their rings and event
//! channels, released when the hypervisor says they are dying, and hostile rings
//! (bad indices, oversized messages, a reconnect in the middle of a request).

use super::*;
use crate::daemon::ring::{XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX};
use crate::daemon::{DaemonConfig, Listener};
use crate::process::Config;
use crate::wire::{Header, Message, MsgType, Reassembler, HEADER_SIZE};
use std::time::Instant;
use xen::fake::{FakeEvtchn, FakeEvtchnHub, FakeForeignMemory, FakeGrants};
use xen::{EventChannels, MappedMemory};

const OFF_REQ_CONS: usize = 2048;
const OFF_REQ_PROD: usize = 2052;
const OFF_RSP_CONS: usize = 2056;
const OFF_RSP_PROD: usize = 2060;
const OFF_FEATURES: usize = 2064;
const OFF_CONNECTION: usize = 2068;
const OFF_ERROR: usize = 2072;

/// One guest: its page, its event channel endpoint and its unbound port.
struct Guest {
    domid: u32,
    page: MappedMemory,
    evtchn: FakeEvtchn,
    port: EvtchnPort,
    /// Replies may arrive split across reads.
    reasm: std::cell::RefCell<Reassembler>,
}

impl Guest {
    fn new(hub: &Arc<FakeEvtchnHub>, domid: u32) -> Guest {
        let evtchn = hub.endpoint(domid as DomId);
        let port = evtchn.bind_unbound_port(0).expect("unbound port");
        Guest {
            domid,
            page: MappedMemory::anonymous(4096).expect("page"),
            evtchn,
            port,
            reasm: std::cell::RefCell::new(Reassembler::new()),
        }
    }

    /// Puts bytes in the request ring (as the guest's xenbus does) and kicks.
    fn send_bytes(&self, data: &[u8]) {
        self.put_bytes(data);
        self.evtchn.notify(self.port).expect("notify");
    }
    /// Puts bytes in the request ring and moves its producer index, no kick.
    fn put_bytes(&self, data: &[u8]) {
        let prod = self.page.read_u32(OFF_REQ_PROD).expect("prod");
        let cons = self.page.read_u32(OFF_REQ_CONS).expect("cons");
        assert!(
            prod.wrapping_sub(cons) as usize + data.len() <= 1024,
            "request ring full"
        );
        for (i, b) in data.iter().enumerate() {
            let idx = (prod as usize + i) % 1024;
            self.page.write_bytes(idx, &[*b]).expect("byte");
        }
        self.page
            .write_u32(OFF_REQ_PROD, prod.wrapping_add(data.len() as u32))
            .expect("prod");
    }

    fn send(&self, msg: &Message) {
        self.send_bytes(&msg.encode());
    }

    /// Takes every reply byte and decodes the messages.
    fn replies(&self) -> Vec<Message> {
        let cons = self.page.read_u32(OFF_RSP_CONS).expect("cons");
        let prod = self.page.read_u32(OFF_RSP_PROD).expect("prod");
        let mut bytes = Vec::new();
        for i in 0..prod.wrapping_sub(cons) {
            let mut b = [0u8];
            self.page
                .read_bytes(1024 + (cons.wrapping_add(i) % 1024) as usize, &mut b)
                .expect("byte");
            bytes.push(b[0]);
        }
        self.page.write_u32(OFF_RSP_CONS, prod).expect("cons");
        let mut out = Vec::new();
        self.reasm
            .borrow_mut()
            .feed(&bytes, &mut out)
            .expect("frames");
        out
    }

    /// Whether the daemon kicked this guest since the last call.
    fn kicked(&self) -> bool {
        let mut any = false;
        while let Some(p) = self.evtchn.pending().expect("pending") {
            any |= p == self.port;
        }
        any
    }

    fn u32_at(&self, off: usize) -> u32 {
        self.page.read_u32(off).expect("field")
    }
}

/// A daemon attached to fakes, driven step by step from the test.
struct Bed {
    daemon: Daemon,
    states: Arc<Mutex<HashMap<u32, DomainState>>>,
    /// A privileged socket-like connection of the core for toolstack requests.
    tool: ConnId,
    dir: std::path::PathBuf,
}

impl Bed {
    /// Guests granted their page under grant 1 (`granted`) or given RAM whose
    /// frame `0x100 + domid` is their page (`by_frame`).
    fn new(granted: &[&Guest], by_frame: &[&Guest], hub: Arc<FakeEvtchnHub>) -> Bed {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rxs-xen-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let path = dir.join("socket");
        let listener = Listener::bind(&path).expect("bind");
        let mut daemon = Daemon::new(
            DaemonConfig {
                socket: path,
                server: Config::default(),
                trace_file: None,
                max_queued_bytes: None,
            },
            listener,
            None,
        )
        .expect("daemon");
        let grants = FakeGrants::new();
        for g in granted {
            grants
                .grant(g.domid as DomId, GNTTAB_RESERVED_XENSTORE, &g.page, 0, true)
                .expect("grant");
        }
        let foreign = FakeForeignMemory::new();
        for g in by_frame {
            foreign.add_ram(g.domid as DomId, 0x100 + u64::from(g.domid), g.page.clone());
        }
        let states: Arc<Mutex<HashMap<u32, DomainState>>> = Arc::default();
        let s2 = Arc::clone(&states);
        daemon
            .attach_xen(XenParts {
                evtchn: Arc::new(hub.endpoint(0)),
                evtchn_fd: None,
                mapper: Box::new(GrantOrForeign { grants, foreign }),
                domain_state: Box::new(move |d| s2.lock().expect("states").get(&d).copied()),
                dom0: None,
            })
            .expect("attach");
        let tool = daemon.server.connect(ConnKind::Socket);
        Bed {
            daemon,
            states,
            tool,
            dir,
        }
    }

    /// Lets the daemon take pending events and serve what they woke.
    fn pump(&mut self) {
        for _ in 0..4 {
            self.daemon.handle_evtchn();
            self.daemon.service_work();
        }
    }

    /// A toolstack request on the privileged connection; its reply.
    fn tool(&mut self, ty: MsgType, payload: &[u8]) -> Message {
        self.daemon
            .server
            .handle(self.tool, Message::new(ty, 1, 0, payload.to_vec()));
        self.daemon.handle_actions();
        self.daemon.schedule_woken(None);
        self.pump();
        let mut reply = None;
        while let Some(m) = self.daemon.server.pop_output(self.tool) {
            if m.header.msg_type != MsgType::WatchEvent as u32 {
                reply = Some(m);
            }
        }
        reply.expect("a reply")
    }

    fn introduce(&mut self, g: &Guest, gfn: u64) -> Message {
        self.states
            .lock()
            .expect("states")
            .insert(g.domid, DomainState::default());
        let arg = format!("{}\0{}\0{}\0", g.domid, gfn, g.port);
        self.tool(MsgType::Introduce, arg.as_bytes())
    }

    fn introduced(&mut self, domid: u32) -> bool {
        let r = self.tool(MsgType::IsDomainIntroduced, format!("{domid}\0").as_bytes());
        r.payload == b"T\0"
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn domain_path_request(req_id: u32, domid: u32) -> Message {
    Message::new(
        MsgType::GetDomainPath,
        req_id,
        0,
        format!("{domid}\0").into_bytes(),
    )
}

#[test]
fn introduced_guest_is_served_through_its_ring_and_released_when_dying() {
    let hub = FakeEvtchnHub::new();
    let g = Guest::new(&hub, 5);
    // Stale indices from before the introduction are reset, like C.
    g.page.write_u32(OFF_RSP_PROD, 77).expect("stale");
    let mut bed = Bed::new(&[&g], &[], Arc::clone(&hub));
    let r = bed.introduce(&g, 0x1234);
    assert_eq!(r.payload, b"OK\0", "INTRODUCE answered {r:?}");
    assert!(bed.introduced(5));
    assert_eq!(g.u32_at(OFF_RSP_PROD), 0, "indices reset");
    assert_eq!(g.u32_at(OFF_FEATURES), 3, "RECONNECTION | ERROR advertised");
    assert!(g.kicked(), "the guest is notified once its ring is served");

    // A guest request, answered through the reply ring, with a kick.
    g.send(&domain_path_request(42, 5));
    bed.pump();
    let replies = g.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].header.req_id, 42);
    assert_eq!(replies[0].payload, b"/local/domain/5\0");
    assert!(g.kicked());
    assert_eq!(
        g.u32_at(OFF_REQ_CONS),
        g.u32_at(OFF_REQ_PROD),
        "request consumed"
    );

    // The guest's own node, and a @releaseDomain watch by the toolstack.
    let w = bed.tool(MsgType::Watch, b"@releaseDomain\0rel\0");
    assert_eq!(w.payload, b"OK\0");
    let _ = bed.tool(MsgType::Mkdir, b"/local/domain/5\0");
    let _ = bed.tool(MsgType::SetPerms, b"/local/domain/5\0n5\0");
    g.send(&Message::new(
        MsgType::Write,
        7,
        0,
        b"data/x\0hello".to_vec(),
    ));
    bed.pump();
    assert_eq!(g.replies()[0].payload, b"OK\0");
    assert!(bed
        .daemon
        .server
        .store()
        .get("/local/domain/5/data/x")
        .is_some());

    // The hypervisor says the domain is dying: VIRQ_DOM_EXC.
    bed.states.lock().expect("states").insert(
        5,
        DomainState {
            dying: true,
            shutdown: true,
        },
    );
    let _ = bed.daemon.server.pop_output(bed.tool);
    hub.raise_virq(0, VIRQ_DOM_EXC);
    bed.pump();
    let mut events = Vec::new();
    while let Some(m) = bed.daemon.server.pop_output(bed.tool) {
        events.push(m);
    }
    assert!(
        events
            .iter()
            .any(|m| m.header.msg_type == MsgType::WatchEvent as u32
                && m.payload.starts_with(b"@releaseDomain\0")),
        "@releaseDomain fired: {events:?}"
    );
    assert!(!bed.introduced(5), "released");
    assert!(
        bed.daemon.server.store().get("/local/domain/5").is_none(),
        "the domain's nodes are gone"
    );
    assert!(bed.daemon.connections() == 0, "ring connection dropped");
    // Its port was unbound: a late kick from the guest reaches nobody.
    assert!(g.evtchn.notify(g.port).is_ok());
    bed.pump();
    assert!(g.replies().is_empty());
}

#[test]
fn frame_number_is_the_fallback_and_unmappable_pages_are_refused() {
    let hub = FakeEvtchnHub::new();
    let by_frame = Guest::new(&hub, 7);
    let nothing = Guest::new(&hub, 8);
    let mut wrong_port = Guest::new(&hub, 9);
    let mut bed = Bed::new(&[], &[&by_frame, &wrong_port], Arc::clone(&hub));
    assert_eq!(bed.introduce(&by_frame, 0x107).payload, b"OK\0");
    by_frame.send(&domain_path_request(1, 7));
    bed.pump();
    assert_eq!(by_frame.replies()[0].payload, b"/local/domain/7\0");

    // Neither grant 1 nor the frame maps.
    let r = bed.introduce(&nothing, 0x108);
    assert_eq!(r.header.msg_type, MsgType::Error as u32);
    assert_eq!(r.payload, b"EINVAL\0");
    assert!(!bed.introduced(8), "no half-introduced domain");
    // The page maps but the port cannot be bound: nothing stays.
    wrong_port.port += 100;
    let r = bed.introduce(&wrong_port, 0x109);
    assert_eq!(r.payload, b"EINVAL\0");
    assert!(!bed.introduced(9));
    assert_eq!(
        bed.daemon.connections(),
        1,
        "only domain 7's ring is served"
    );
}

#[test]
fn bad_indices_set_the_error_and_other_guests_are_served() {
    let hub = FakeEvtchnHub::new();
    let bad = Guest::new(&hub, 3);
    let good = Guest::new(&hub, 4);
    let mut bed = Bed::new(&[&bad, &good], &[], Arc::clone(&hub));
    assert_eq!(bed.introduce(&bad, 1).payload, b"OK\0");
    assert_eq!(bed.introduce(&good, 1).payload, b"OK\0");

    // Producer more than a ring ahead of the consumer.
    bad.page.write_u32(OFF_REQ_CONS, 5).expect("cons");
    bad.page.write_u32(OFF_REQ_PROD, 5 + 4000).expect("prod");
    bad.evtchn.notify(bad.port).expect("kick");
    good.send(&domain_path_request(2, 4));
    bed.pump();
    assert_eq!(bad.u32_at(OFF_ERROR), XENSTORE_ERROR_RINGIDX);
    assert_eq!(bad.u32_at(OFF_REQ_CONS), 5, "nothing consumed");
    assert_eq!(good.replies()[0].payload, b"/local/domain/4\0");
    assert_eq!(good.u32_at(OFF_ERROR), XENSTORE_ERROR_NONE);

    // The ignored guest gets nothing more, even with sane indices again; it
    // stays introduced (C ignore_connection).
    bad.page.write_u32(OFF_REQ_PROD, 5).expect("prod");
    bad.send(&domain_path_request(3, 3));
    bed.pump();
    assert!(bad.replies().is_empty());
    assert!(bed.introduced(3));
    good.send(&domain_path_request(4, 4));
    bed.pump();
    assert_eq!(good.replies().len(), 1);
}

#[test]
fn oversized_message_is_a_protocol_error() {
    let hub = FakeEvtchnHub::new();
    let g = Guest::new(&hub, 6);
    let mut bed = Bed::new(&[&g], &[], Arc::clone(&hub));
    assert_eq!(bed.introduce(&g, 1).payload, b"OK\0");
    let h = Header {
        msg_type: MsgType::Write as u32,
        req_id: 1,
        tx_id: 0,
        len: 5000,
    };
    g.send_bytes(&h.encode());
    bed.pump();
    assert_eq!(g.u32_at(OFF_ERROR), XENSTORE_ERROR_PROTO);
    assert_eq!(h.encode().len(), HEADER_SIZE);
}

#[test]
fn flooding_requests_are_bounded_by_the_ring() {
    // A guest that writes requests and never reads replies: the reply ring
    // fills, the daemon stops there and serves the rest once there is room.
    let hub = FakeEvtchnHub::new();
    let g = Guest::new(&hub, 11);
    let mut bed = Bed::new(&[&g], &[], Arc::clone(&hub));
    assert_eq!(bed.introduce(&g, 1).payload, b"OK\0");
    let mut sent = 0u32;
    for round in 0..8 {
        for _ in 0..20 {
            g.send(&domain_path_request(sent, 11));
            sent += 1;
            bed.pump();
        }
        let rsp = g.u32_at(OFF_RSP_PROD).wrapping_sub(g.u32_at(OFF_RSP_CONS));
        assert!(rsp <= 1024, "round {round}: {rsp} bytes outstanding");
    }
    let mut got = 0;
    for _ in 0..200 {
        let n = g.replies().len();
        got += n;
        g.evtchn.notify(g.port).expect("kick");
        bed.pump();
        if n == 0 && got as u32 == sent {
            break;
        }
    }
    assert_eq!(
        got as u32, sent,
        "every request answered once room was made"
    );
}

#[test]
fn reconnect_resets_the_ring() {
    let hub = FakeEvtchnHub::new();
    let g = Guest::new(&hub, 12);
    let mut bed = Bed::new(&[&g], &[], Arc::clone(&hub));
    assert_eq!(bed.introduce(&g, 1).payload, b"OK\0");
    // Half a request, then the guest (a new kernel after kexec) asks to reconnect.
    let whole = domain_path_request(1, 12).encode();
    g.send_bytes(&whole[..10]);
    bed.pump();
    g.page
        .write_u32(OFF_CONNECTION, XENSTORE_RECONNECT)
        .expect("connection");
    g.evtchn.notify(g.port).expect("kick");
    bed.pump();
    assert_eq!(g.u32_at(OFF_CONNECTION), XENSTORE_CONNECTED);
    assert_eq!(g.u32_at(OFF_REQ_PROD), 0);
    assert_eq!(g.u32_at(OFF_REQ_CONS), 0);
    // The half request is forgotten: a new one is answered alone.
    g.send(&domain_path_request(2, 12));
    bed.pump();
    let r = g.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].header.req_id, 2);
}

#[test]
fn dom0_ring_is_served_without_reset_and_kicked_at_start() {
    let hub = FakeEvtchnHub::new();
    // Dom0's kernel: its page and an unbound port for xenstored in dom0.
    let kernel = Guest::new(&hub, 0);
    // A request queued before the daemon started stays valid.
    let pre = domain_path_request(9, 0).encode();
    for (i, b) in pre.iter().enumerate() {
        kernel.page.write_bytes(i, &[*b]).expect("byte");
    }
    kernel
        .page
        .write_u32(OFF_REQ_PROD, pre.len() as u32)
        .expect("prod");
    let dir = std::env::temp_dir().join(format!("rxs-xen0-{}", std::process::id()));
    let path = dir.join("socket");
    let listener = Listener::bind(&path).expect("bind");
    let mut daemon = Daemon::new(
        DaemonConfig {
            socket: path,
            server: Config::default(),
            trace_file: None,
            max_queued_bytes: None,
        },
        listener,
        None,
    )
    .expect("daemon");
    daemon
        .attach_xen(XenParts {
            evtchn: Arc::new(hub.endpoint(0)),
            evtchn_fd: None,
            mapper: Box::new(GrantOrForeign {
                grants: FakeGrants::new(),
                foreign: FakeForeignMemory::new(),
            }),
            domain_state: Box::new(|_| Some(DomainState::default())),
            dom0: Some((
                RingPage {
                    mem: kernel.page.clone(),
                    keep: None,
                },
                kernel.port,
            )),
        })
        .expect("attach");
    daemon.service_work();
    let r = kernel.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].payload, b"/local/domain/0\0");
    assert_eq!(kernel.u32_at(OFF_FEATURES), 3);
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_domain_with_a_dead_domains_id_does_not_inherit_its_permissions() {
    let hub = FakeEvtchnHub::new();
    let first = Guest::new(&hub, 5);
    let mut bed = Bed::new(&[&first], &[], Arc::clone(&hub));
    assert_eq!(bed.introduce(&first, 1).payload, b"OK\0");
    let _ = bed.tool(MsgType::Write, b"/tool/secret\0s3cret");
    let _ = bed.tool(MsgType::SetPerms, b"/tool/secret\0n0\0r5\0");
    let read = |req_id| Message::new(MsgType::Read, req_id, 0, b"/tool/secret\0".to_vec());
    first.send(&read(1));
    bed.pump();
    assert_eq!(first.replies()[0].payload, b"s3cret", "domain 5 may read");

    // Domain 5 dies; a new domain gets id 5 (its own page and port).
    bed.states.lock().expect("states").insert(
        5,
        DomainState {
            dying: true,
            shutdown: true,
        },
    );
    hub.raise_virq(0, VIRQ_DOM_EXC);
    bed.pump();
    assert!(!bed.introduced(5));
    let second = Guest::new(&hub, 5);
    // The fake grant table still holds the first page under grant 1: the new
    // domain's ring is that page again, which is fine for this test.
    let second = Guest {
        page: first.page.clone(),
        ..second
    };
    for off in [OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD] {
        second.page.write_u32(off, 0).expect("reset");
    }
    // No write at all between the death and the new introduction: the hardest
    // case, where the new record must still be newer than the last node written.
    assert_eq!(bed.introduce(&second, 1).payload, b"OK\0");
    second.send(&read(2));
    bed.pump();
    let r = second.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].header.msg_type, MsgType::Error as u32);
    assert_eq!(
        r[0].payload, b"EACCES\0",
        "the dead domain's right is not inherited"
    );
}

impl Guest {
    /// Puts bytes in the request ring without a notification (what the Linux
    /// guest's xenbus does when it believes the backend is still reading).
    fn send_quietly(&self, msg: &Message) {
        self.put_bytes(&msg.encode());
    }
}

/// A rescan as the loop runs it once a period has passed (`clock` is the
/// test's time, a period later at each call).
fn rescan(bed: &mut Bed, clock: &mut Instant) -> usize {
    *clock += RING_RESCAN_PERIOD;
    let n = bed.daemon.rescan_rings(*clock);
    bed.daemon.service_work();
    n
}

#[test]
fn work_without_a_notification_is_found_by_the_rescan() {
    let hub = FakeEvtchnHub::new();
    let g = Guest::new(&hub, 14);
    let mut bed = Bed::new(&[&g], &[], Arc::clone(&hub));
    assert_eq!(bed.introduce(&g, 1).payload, b"OK\0");
    // Served rings are looked at once a second at least.
    let idle = bed.daemon.rescan_timeout(Instant::now()).expect("rescan");
    assert!(idle <= RING_RESCAN_IDLE_PERIOD, "{idle:?}");
    g.send(&domain_path_request(1, 14));
    bed.pump();
    assert_eq!(g.replies().len(), 1);
    let busy = bed.daemon.rescan_timeout(Instant::now()).expect("rescan");
    assert!(busy <= RING_RESCAN_PERIOD, "{busy:?}");

    // A request whose notification was lost: nothing happens until the rescan.
    let mut clock = Instant::now();
    g.send_quietly(&domain_path_request(2, 14));
    bed.pump();
    assert!(g.replies().is_empty());
    assert_eq!(rescan(&mut bed, &mut clock), 1);
    let r = g.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].header.req_id, 2);

    // Replies waiting for room: the guest empties the full reply ring without
    // notifying; the rescan finds the room.
    let mut sent = 3;
    while g.u32_at(OFF_RSP_PROD).wrapping_sub(g.u32_at(OFF_RSP_CONS)) < 1024 {
        g.send(&domain_path_request(sent, 14));
        sent += 1;
        bed.pump();
    }
    for _ in 0..4 {
        g.send(&domain_path_request(sent, 14));
        sent += 1;
    }
    bed.pump();
    let mut got = g.replies().len();
    bed.pump();
    assert_eq!(g.replies().len(), 0, "no notification, no new replies");
    for _ in 0..100 {
        if got as u32 == sent - 3 {
            break;
        }
        rescan(&mut bed, &mut clock);
        got += g.replies().len();
    }
    assert_eq!(
        got as u32,
        sent - 3,
        "every reply arrived through rescans alone"
    );
    // Nothing to find: no wake-up.
    assert_eq!(rescan(&mut bed, &mut clock), 0);
    // Once the window after the last notification has passed, the rescans slow
    // down to the idle period.
    let after = clock + RING_RESCAN_WINDOW;
    bed.daemon.rescan_rings(after);
    let idle = bed.daemon.rescan_timeout(after).expect("rescan");
    assert_eq!(idle, RING_RESCAN_IDLE_PERIOD);
}

#[test]
fn a_domain_that_lags_on_watch_events_loses_events_not_its_ring() {
    let hub = FakeEvtchnHub::new();
    let g = Guest::new(&hub, 15);
    let mut bed = Bed::new(&[&g], &[], Arc::clone(&hub));
    assert_eq!(bed.introduce(&g, 1).payload, b"OK\0");
    assert_eq!(bed.tool(MsgType::Write, b"/w15\0").payload, b"OK\0");
    assert_eq!(bed.tool(MsgType::SetPerms, b"/w15\0n15\0").payload, b"OK\0");
    g.send(&Message::new(MsgType::Watch, 1, 0, b"/w15\0t\0".to_vec()));
    bed.pump();
    assert_eq!(g.replies().len(), 2, "watch reply and first event");
    // Far more events than the queue holds, faster than the guest reads them.
    let writes = 3 * crate::process::DEFAULT_MAX_QUEUED;
    for i in 0..writes {
        let m = Message::new(MsgType::Write, 1, 0, format!("/w15/k{i}\0v").into_bytes());
        bed.daemon.server.handle(bed.tool, m);
        while bed.daemon.server.pop_output(bed.tool).is_some() {}
    }
    bed.daemon.schedule_woken(None);
    bed.pump();
    let conn = *bed
        .daemon
        .xen
        .as_ref()
        .expect("xen")
        .rings
        .iter()
        .find(|(_, h)| h.domid == 15)
        .expect("ring")
        .0;
    assert!(
        bed.daemon.server.dropped_events(conn) > 0,
        "events were dropped"
    );
    // The ring is kept: no error, not ignored, and a request is still answered
    // once the guest reads what was queued.
    assert_eq!(g.u32_at(OFF_ERROR), XENSTORE_ERROR_NONE);
    assert!(!bed.daemon.is_ignored(conn));
    g.send(&domain_path_request(7, 15));
    let mut events = 0;
    let mut answered = false;
    for _ in 0..10_000 {
        for m in g.replies() {
            if m.header.msg_type == MsgType::WatchEvent as u32 {
                events += 1;
            } else if m.header.req_id == 7 {
                answered = true;
            }
        }
        if answered {
            break;
        }
        g.evtchn.notify(g.port).expect("kick");
        bed.pump();
    }
    assert!(answered, "the lagging domain is still served");
    assert!(
        events > 0 && events < writes,
        "{events} of {writes} events delivered"
    );
}
