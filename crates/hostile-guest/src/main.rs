//! `rxen-hostile`: a hostile guest for rxen's test bed. It runs inside a domU (with
//! the guest kernel's xen-evtchn and xen-gntalloc loaded and xen-blkfront not
//! loaded) and attacks dom0's daemons through the devices any guest has:
//! `/dev/xen/xenbus` (xenstore), `/dev/xen/gntalloc` + `/dev/xen/evtchn` (its own
//! blkif and netif frontends) and its hvc console. Each attack prints one `HOSTILE-OK` or
//! `HOSTILE-FAIL` line; the exit status is 1 when any attack did not end as
//! expected. See docs/SECURITY.md for the list and the dom0 side
//! (tests/testbed/scenarios/hostile-guest.sh).

mod blk;
mod console;
mod diskbench;
mod front;
mod net;
mod report;
mod xs;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "rxen-hostile", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Xenstore attacks (access to other domains' nodes, quotas, floods, watches).
    Xenstore {
        /// Domain id of the honest guest whose nodes are attacked.
        #[arg(long)]
        honest: u32,
    },
    /// Blkif attacks on this guest's disk DEVID (its frontend must be unbound).
    Block {
        /// The vbd device id (51712 for xvda).
        #[arg(long)]
        devid: u32,
    },
    /// Netif attacks on this guest's NIC DEVID (xen-netfront must not be loaded).
    Net {
        /// The vif device id.
        #[arg(long, default_value_t = 0)]
        devid: u32,
        /// The IPv4 address this guest's ARP requests claim.
        #[arg(long)]
        me: std::net::Ipv4Addr,
        /// The IPv4 address asked for (dom0's bridge), whose answers fill the rx ring.
        #[arg(long)]
        peer: std::net::Ipv4Addr,
    },
    /// Times COUNT O_DIRECT reads or writes of BS bytes on DEVICE (not an
    /// attack: block-bench's I/O generator); prints `DISK-BENCH ... us=N`.
    DiskBench {
        #[arg(long)]
        device: String,
        /// Write instead of read.
        #[arg(long)]
        write: bool,
        #[arg(long, default_value_t = 4096)]
        bs: usize,
        #[arg(long)]
        count: u64,
        /// Random offsets among the first SPAN blocks (default: sequential).
        #[arg(long)]
        random_span: Option<u64>,
        #[arg(long, default_value_t = 12345)]
        seed: u64,
    },
    /// Floods the console device for SECONDS.
    ConsoleFlood {
        #[arg(long, default_value = "/dev/hvc0")]
        device: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut report = report::Report::default();
    let part = match cli.cmd {
        Cmd::Xenstore { honest } => {
            {
                let r = xs::run(&mut report, honest);
                report.run("xenstore", r);
            }
            "xenstore"
        }
        Cmd::Block { devid } => {
            {
                let r = blk::run(&mut report, devid);
                report.run("block", r);
            }
            "block"
        }
        Cmd::Net { devid, me, peer } => {
            {
                let r = net::run(&mut report, devid, me, peer);
                report.run("net", r);
            }
            "net"
        }
        Cmd::DiskBench {
            device,
            write,
            bs,
            count,
            random_span,
            seed,
        } => {
            let job = diskbench::Job {
                device,
                write,
                block_size: bs,
                count,
                random_span,
                seed,
            };
            let took = diskbench::run(&job)?;
            println!(
                "DISK-BENCH device={} op={} bs={} count={} us={}",
                job.device,
                if job.write { "write" } else { "read" },
                job.block_size,
                job.count,
                took.as_micros()
            );
            return Ok(());
        }
        Cmd::ConsoleFlood { device, seconds } => {
            {
                let r = console::flood(&device, seconds);
                report.run("console-flood", r);
            }
            "console"
        }
    };
    if !report.finish(part) {
        std::process::exit(1);
    }
    Ok(())
}
