//! `rxconsoled`: the PV console backend daemon

use clap::Parser;

/// the PV console backend daemon
#[derive(Debug, Parser)]
#[command(name = "rxconsoled", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "rxconsoled {}: not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(1);
}
