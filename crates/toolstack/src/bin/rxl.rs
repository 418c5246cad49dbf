//! `rxl`: the rxen toolstack CLI, in the manner of xl

use clap::Parser;

/// the rxen toolstack CLI, in the manner of xl
#[derive(Debug, Parser)]
#[command(name = "rxl", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("rxl {}: not implemented yet", env!("CARGO_PKG_VERSION"));
    std::process::exit(1);
}
