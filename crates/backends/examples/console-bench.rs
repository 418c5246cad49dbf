//! The console data path on the host: a fake guest fills its console ring with
//! flood lines (`FLOOD 0123...XYZ\r\n`, 80 bytes, as the test bed's console-flood
//! guest writes them through hvc0) and signals its event channel; rxconsoled's
//! backend moves the bytes to a timestamped log file and a pty nobody reads (as
//! in the test bed). Prints the backend's time per byte and per event for a few
//! amounts of output per event (one line up to a full 2 KiB ring).
//!
//! `cargo run --release -p backends --example console-bench -- [--mib N] [--no-timestamps] [--no-pty]`
//!
//! Only the backend's calls are timed (the guest's side is a memcpy), single
//! threaded, so the figure is its CPU and system-call time.

use backends::console::log::LogPolicy;
use backends::console::ring::{OUT_CONS_OFFSET, OUT_OFFSET, OUT_PROD_OFFSET, OUT_SIZE};
use backends::console::{Config, ConsoleError, ConsoleKind, ConsoleStore, Daemon};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use xen::abi::domctl::dominf;
use xen::abi::grant_table::GNTTAB_RESERVED_CONSOLE;
use xen::abi::xen::XEN_PAGE_SIZE;
use xen::fake::{FakeEvtchnHub, FakeForeignMemory, FakeGrants, FakeXen};
use xen::{DomainInfo, EventChannels, MappedMemory};

/// One line of the flooding guest as it reaches the ring (ONLCR: `\r\n`).
const LINE: &[u8] =
    b"FLOOD 0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
const DOMID: u16 = 7;

#[derive(Default)]
struct Store(HashMap<String, String>);

impl ConsoleStore for Store {
    fn read(&mut self, path: &str) -> Result<Option<String>, ConsoleError> {
        Ok(self.0.get(path).cloned())
    }
    fn directory(&mut self, _path: &str) -> Result<Vec<String>, ConsoleError> {
        Ok(Vec::new())
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), ConsoleError> {
        self.0.insert(path.into(), value.into());
        Ok(())
    }
    fn watch(&mut self, _: &str, _: &str) -> Result<(), ConsoleError> {
        Ok(())
    }
    fn unwatch(&mut self, _: &str, _: &str) -> Result<(), ConsoleError> {
        Ok(())
    }
}

/// The guest's side: appends `data` to `out` (as much as fits).
fn put_out(page: &MappedMemory, data: &[u8]) -> usize {
    let cons = page.read_u32(OUT_CONS_OFFSET).expect("cons");
    let prod = page.read_u32(OUT_PROD_OFFSET).expect("prod");
    let space = OUT_SIZE - prod.wrapping_sub(cons) as usize;
    let n = space.min(data.len());
    let start = prod as usize % OUT_SIZE;
    let first = n.min(OUT_SIZE - start);
    page.write_bytes(OUT_OFFSET + start, &data[..first])
        .expect("copy");
    page.write_bytes(OUT_OFFSET, &data[first..n]).expect("copy");
    page.write_u32(OUT_PROD_OFFSET, prod.wrapping_add(n as u32))
        .expect("prod");
    n
}

struct Result1 {
    per_event: usize,
    bytes: u64,
    events: u64,
    spent: Duration,
}

fn run(per_event: usize, total: u64, timestamps: bool, ptys: bool) -> Result1 {
    let dir = std::env::temp_dir().join(format!("rxen-console-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let hub = FakeEvtchnHub::new();
    let mut d = Daemon::new(
        FakeXen::new(),
        hub.endpoint(0),
        FakeGrants::new(),
        FakeForeignMemory::new(),
        Config {
            log_dir: Some(dir.clone()),
            log_policy: LogPolicy {
                timestamps,
                ..LogPolicy::default()
            },
            ptys,
            backend_domid: 0,
        },
    );
    d.ctrl().add_domain(DomainInfo {
        domid: DOMID,
        flags: dominf::RUNNING,
        ..Default::default()
    });
    let page = MappedMemory::anonymous(XEN_PAGE_SIZE).expect("page");
    d.grants()
        .grant(DOMID, GNTTAB_RESERVED_CONSOLE, &page, 0, true)
        .expect("grant");
    let guest = hub.endpoint(DOMID);
    let port = guest.bind_unbound_port(0).expect("port");
    let mut xs = Store::default();
    let base = format!("/local/domain/{DOMID}");
    xs.0.insert(format!("{base}/name"), "bench".into());
    xs.0.insert(format!("{base}/console/ring-ref"), "1".into());
    xs.0.insert(format!("{base}/console/port"), port.to_string());
    d.start(&mut xs).expect("start");
    assert_eq!(d.console_state((DOMID, ConsoleKind::Pv)), Some(true));

    // A stream of flood lines, cut into `per_event` pieces.
    let stream: Vec<u8> = LINE.iter().copied().cycle().take(OUT_SIZE * 64).collect();
    let mut pos = 0;
    let (mut bytes, mut events) = (0u64, 0u64);
    let mut spent = Duration::ZERO;
    let mut now = Instant::now();
    while bytes < total {
        let end = (pos + per_event).min(stream.len());
        let n = put_out(&page, &stream[pos..end]);
        pos = (pos + n) % (stream.len() - per_event.min(stream.len() - 1));
        guest.notify(port).expect("notify");
        let t = Instant::now();
        d.on_evtchn().expect("evtchn");
        spent += t.elapsed();
        while guest.pending().expect("pending").is_some() {}
        bytes += n as u64;
        events += 1;
        if events % u64::from(backends::console::RATE_LIMIT_ALLOWANCE) == 0 {
            // The next rate-limit period (the fakes do not mask ports).
            now += backends::console::RATE_LIMIT_PERIOD;
            let t = Instant::now();
            d.tick(now);
            spent += t.elapsed();
        }
    }
    assert_eq!(d.logged((DOMID, ConsoleKind::Pv)), bytes);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
    Result1 {
        per_event,
        bytes,
        events,
        spent,
    }
}

fn main() {
    let mut mib = 32u64;
    let mut timestamps = true;
    let mut ptys = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mib" => mib = args.next().and_then(|v| v.parse().ok()).expect("--mib N"),
            "--no-timestamps" => timestamps = false,
            "--no-pty" => ptys = false,
            _ => {
                eprintln!("usage: console-bench [--mib N] [--no-timestamps] [--no-pty]");
                std::process::exit(2);
            }
        }
    }
    println!("console data path, {mib} MiB per row, timestamps {timestamps}, pty {ptys}");
    println!("| bytes per event | events | ns per byte | us per event | MB/s |");
    println!("|---|---|---|---|---|");
    for per_event in [80, 400, OUT_SIZE] {
        let r = run(per_event, mib << 20, timestamps, ptys);
        let ns = r.spent.as_nanos() as f64;
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.0} |",
            r.per_event,
            r.events,
            ns / r.bytes as f64,
            ns / r.events as f64 / 1000.0,
            r.bytes as f64 / r.spent.as_secs_f64() / 1e6
        );
    }
}
