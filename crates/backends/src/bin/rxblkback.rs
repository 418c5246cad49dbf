//! `rxblkback`: the PV block backend daemon. Serves every disk under
//! `/local/domain/0/backend/rxvbd/` (written by `rxl block-attach` or `disk=[...]`)
//! from a file or block device in dom0.

use anyhow::Context;
use backends::block::BlockHandler;
use backends::xenbus::Daemon;
use clap::Parser;
use toolstack::device::{vbd, DOM0};

/// The PV block backend daemon: serves Xen guests' disks (blkif) from dom0 files
/// and block devices.
#[derive(Debug, Parser)]
#[command(name = "rxblkback", version, about)]
struct Cli {
    /// Backend type directory to serve (`/local/domain/0/backend/<TYPE>`).
    #[arg(long, default_value = vbd::BACKEND_TYPE)]
    backend_type: String,
    /// Directory of the request journals, which let a restarted rxblkback answer
    /// the requests a killed one had taken but not answered.
    #[arg(long, default_value = backends::block::DEFAULT_STATE_DIR)]
    state_dir: std::path::PathBuf,
    /// Keep no request journal (a restart after a kill may then lose requests
    /// that were in flight).
    #[arg(long)]
    no_journal: bool,
    /// Offer indirect requests of up to N segments (feature-max-indirect-segments,
    /// at most 256); 0 (the default) offers none.
    #[arg(long, default_value_t = 0)]
    max_indirect_segments: u16,
    /// Offer up to N queues per disk (multi-queue-max-queues; blkfront uses one
    /// ring per guest vCPU up to this, each served by its own thread); 1 offers
    /// none.
    #[arg(long, default_value_t = 1)]
    max_queues: u32,
    /// Do not offer persistent grants (feature-persistent = 0): every request's
    /// data then moves by grant copy.
    #[arg(long)]
    no_persistent_grants: bool,
    /// More verbose logging (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    backends::logging::init("RXBLKBACK_LOG", cli.verbose);
    let gntdev = xen::Gntdev::open().context("opening the grant device")?;
    let xs = xenstore::client::Client::open().context("connecting to xenstore")?;
    let mut daemon = Daemon::new(
        BlockHandler::new(gntdev, (!cli.no_journal).then_some(cli.state_dir))
            .with_max_indirect_segments(cli.max_indirect_segments)
            .with_max_queues(cli.max_queues)
            .with_persistent_grants(!cli.no_persistent_grants),
        xs,
        DOM0,
        &cli.backend_type,
    );
    daemon.run().context("the xenbus loop failed")?;
    Ok(())
}
