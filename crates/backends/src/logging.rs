//! Log set-up shared by the backend daemons: `-v` picks the level, an environment
//! variable (e.g. `RXBLKBACK_LOG`) overrides it with a full filter, logs go to
//! stderr, coloured only on a terminal.

/// Installs the global `tracing` subscriber for a daemon.
pub fn init(env_var: &str, verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(env_var)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
