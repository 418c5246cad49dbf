//! `rxnetback`: the PV network backend daemon. Serves every NIC under
//! `/local/domain/0/backend/rxvif/` (written by `rxl network-attach` or
//! `vif=[...]`) through a TAP device in dom0, added to the NIC's bridge.

use anyhow::Context;
use backends::net::device::NetHandler;
use backends::xenbus::Daemon;
use clap::Parser;
use toolstack::device::{vif, DOM0};

/// The PV network backend daemon: connects Xen guests' NICs (netif) to TAP
/// devices in dom0.
#[derive(Debug, Parser)]
#[command(name = "rxnetback", version, about)]
struct Cli {
    /// Backend type directory to serve (`/local/domain/0/backend/<TYPE>`).
    #[arg(long, default_value = vif::BACKEND_TYPE)]
    backend_type: String,
    /// More verbose logging (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    backends::logging::init("RXNETBACK_LOG", cli.verbose);
    let gntdev = xen::Gntdev::open().context("opening the grant device")?;
    let xs = xenstore::client::Client::open().context("connecting to xenstore")?;
    let mut daemon = Daemon::new(NetHandler::new(gntdev), xs, DOM0, &cli.backend_type);
    daemon.run().context("the xenbus loop failed")?;
    Ok(())
}
