//! `rxenstored`: the xenstore daemon

use clap::Parser;

/// the xenstore daemon
#[derive(Debug, Parser)]
#[command(name = "rxenstored", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "rxenstored {}: not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(1);
}
