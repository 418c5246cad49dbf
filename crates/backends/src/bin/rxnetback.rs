//! `rxnetback`: the PV network backend daemon

use clap::Parser;

/// the PV network backend daemon
#[derive(Debug, Parser)]
#[command(name = "rxnetback", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "rxnetback {}: not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(1);
}
