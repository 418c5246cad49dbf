use xenstore::process::{Config, ConnKind, Server};
use xenstore::wire::{join_args, Message, MsgType};
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with("VmRSS")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}
fn main() {
    let mut s = Server::new(Config::default());
    let c = s.connect(ConnKind::Socket);
    let before = rss();
    for d in 0..1000 {
        let base = format!("/local/domain/{d}");
        let mut w = |p: String, v: &str| { s.handle(c, Message::new(MsgType::Write, 1, 0, { let mut x = join_args(&[p.as_str()]); x.extend_from_slice(v.as_bytes()); x })); while s.pop_output(c).is_some() {} };
        w(format!("{base}/name"), "guest-name");
        for v in 0..9 {
            for k in ["state", "backend", "backend-id", "virtual-device", "device-type"] {
                w(format!("{base}/device/vbd/{}/{k}", 51712 + v), "4");
                w(format!("/local/domain/0/backend/vbd/{d}/{}/{k}", 51712 + v), "/dev/xvda");
            }
        }
    }
    println!("nodes {} rss delta {} kB", s.store().len(), rss() - before);
}
