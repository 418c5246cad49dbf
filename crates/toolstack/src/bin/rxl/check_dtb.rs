//! `rxl check-dtb FILE`: does a guest DTB meet the ARM VM System Specification for
//! a Xen guest? Prints the report point by point; fails when a point is not met.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use toolstack::dtb::{self, vmspec, MAX_DTB_SIZE};

#[derive(Debug, Args)]
pub struct CheckDtbArgs {
    /// The DTB to check (e.g. a guest's /sys/firmware/fdt, or `rxl create --dry-run --dtb-out`).
    pub file: PathBuf,
}

pub fn run(args: CheckDtbArgs) -> anyhow::Result<()> {
    let f = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let mut blob = Vec::new();
    // Read one byte past the limit to tell "too large" from "exactly at the limit".
    f.take(MAX_DTB_SIZE as u64 + 1)
        .read_to_end(&mut blob)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let parsed = dtb::parse(&blob)
        .with_context(|| format!("{} is not a valid device tree blob", args.file.display()))?;
    let report = vmspec::check_dtb(&parsed);
    println!(
        "{}: ARM VM System Specification, Xen guest",
        args.file.display()
    );
    println!("{report}");
    if !report.compliant() {
        bail!(
            "{} does not meet the ARM VM spec for a Xen guest",
            args.file.display()
        );
    }
    Ok(())
}
