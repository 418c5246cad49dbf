//! `rxblkback`: the PV block backend daemon

use clap::Parser;

/// the PV block backend daemon
#[derive(Debug, Parser)]
#[command(name = "rxblkback", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "rxblkback {}: not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(1);
}
