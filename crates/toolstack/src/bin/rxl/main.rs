//! `rxl`: the rxen toolstack CLI, in the manner of xl.
//!
//! Each subcommand lives in its own module beside this file; `main` only parses the
//! command line, sets up logging and dispatches.

use clap::{Parser, Subcommand};

mod block;
mod build;
mod check_dtb;
mod console;
mod create;
mod devcmd;
mod hostcmds;
mod info;
mod lifecycle_cmds;
mod list;
mod network;
mod vcpu;

/// The rxen toolstack CLI: create and manage Xen domains on ARM, in the manner of xl.
#[derive(Debug, Parser)]
#[command(name = "rxl", version, about)]
struct Cli {
    /// More verbose logging (repeat for more). Before the command, as xl's `-v`:
    /// after it, `-v` is the command's own (`rxl list -v`).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Information about the hypervisor and host (like `xl info`).
    Info,
    /// Create a domain from a config file (like `xl create`); `--dry-run` plans it without Xen.
    Create(create::CreateArgs),
    /// Check a guest DTB against the ARM VM System Specification for a Xen guest.
    CheckDtb(check_dtb::CheckDtbArgs),
    /// Attach to a domain's console (like `xl console`); Ctrl-] leaves.
    Console(console::ConsoleArgs),
    /// List domains (like `xl list`).
    List {
        /// Also the uuid, the shutdown reason code and the security label.
        #[arg(short = 'v', long = "verbose")]
        verbose: bool,
        /// Domains to list, by id or name (all when none is given).
        domains: Vec<String>,
    },
    /// List the domains' uuids, ids and names (like `xl vm-list`).
    VmList,
    /// List vCPUs: where each runs and may run (like `xl vcpu-list`).
    VcpuList {
        /// Domains to list, by id or name (all when none is given).
        domains: Vec<String>,
    },
    /// Set a vCPU's hard (and soft) CPU affinity (like `xl vcpu-pin`).
    VcpuPin(vcpu::PinArgs),
    /// Set how many of a domain's vCPUs are online (like `xl vcpu-set`).
    VcpuSet(vcpu::SetArgs),
    /// Attach a disk to a running domain (like `xl block-attach`), served by rxblkback.
    BlockAttach(block::AttachArgs),
    /// Detach a disk from a domain (like `xl block-detach`).
    BlockDetach(block::DetachArgs),
    /// List a domain's disks (like `xl block-list`).
    BlockList(block::ListArgs),
    /// Attach a NIC to a running domain (like `xl network-attach`), served by rxnetback.
    NetworkAttach(network::AttachArgs),
    /// Detach a NIC from a domain by device id or MAC (like `xl network-detach`).
    NetworkDetach(network::DetachArgs),
    /// List a domain's NICs (like `xl network-list`).
    NetworkList(network::ListArgs),
    /// Destroy a domain at once (like `xl destroy`).
    Destroy {
        /// The domain (name or id).
        domain: String,
    },
    /// Pause a domain.
    Pause {
        /// The domain (name or id).
        domain: String,
    },
    /// Unpause a domain.
    Unpause {
        /// The domain (name or id).
        domain: String,
    },
    /// Ask a domain to shut down (control/shutdown = poweroff).
    Shutdown(lifecycle_cmds::ShutdownArgs),
    /// Ask a domain to reboot (control/shutdown = reboot).
    Reboot(lifecycle_cmds::ShutdownArgs),
    /// Print a domain's id from its name.
    Domid {
        /// The domain's name.
        domain: String,
    },
    /// Print a domain's name from its id.
    Domname {
        /// The domain's id.
        domid: String,
    },
    /// Rename a domain (like `xl rename`).
    Rename {
        /// The domain (name or id).
        domain: String,
        /// Its new name.
        new_name: String,
    },
    /// Set a domain's memory target, which its balloon driver follows (like `xl mem-set`).
    MemSet(hostcmds::MemArgs),
    /// Set a domain's maximum memory (like `xl mem-max`).
    MemMax(hostcmds::MemArgs),
    /// Print uptime for all or some domains (like `xl uptime`).
    Uptime(hostcmds::UptimeArgs),
    /// Send a sysrq to a domain (like `xl sysrq`).
    Sysrq(hostcmds::SysrqArgs),
    /// Read and/or clear the hypervisor's console ring (like `xl dmesg`).
    Dmesg(hostcmds::DmesgArgs),
    /// Send debug keys to Xen (like `xl debug-keys`); their output is in `rxl dmesg`.
    DebugKeys(hostcmds::DebugKeysArgs),
    /// (internal) The per-domain monitor `rxl create` starts.
    #[command(hide = true)]
    Monitor(lifecycle_cmds::MonitorArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Info => info::run(),
        Command::List { verbose, domains } => list::run(&domains, verbose),
        Command::VmList => list::vm_list(),
        Command::VcpuList { domains } => vcpu::list(&domains),
        Command::VcpuPin(args) => vcpu::pin(&args),
        Command::VcpuSet(args) => vcpu::set(&args),
        Command::Create(args) => create::run(args),
        Command::CheckDtb(args) => check_dtb::run(args),
        Command::BlockAttach(args) => block::attach(args),
        Command::BlockDetach(args) => block::detach(args),
        Command::BlockList(args) => block::list(args),
        Command::NetworkAttach(args) => network::attach(args),
        Command::NetworkDetach(args) => network::detach(args),
        Command::NetworkList(args) => network::list(args),
        Command::Destroy { domain } => lifecycle_cmds::destroy(&domain),
        Command::Pause { domain } => lifecycle_cmds::pause(&domain, true),
        Command::Unpause { domain } => lifecycle_cmds::pause(&domain, false),
        Command::Shutdown(args) => lifecycle_cmds::shutdown(&args, "poweroff"),
        Command::Reboot(args) => lifecycle_cmds::shutdown(&args, "reboot"),
        Command::Domid { domain } => lifecycle_cmds::domid(&domain),
        Command::Domname { domid } => lifecycle_cmds::domname(&domid),
        Command::Rename { domain, new_name } => lifecycle_cmds::rename(&domain, &new_name),
        Command::MemSet(args) => hostcmds::mem(&args, false),
        Command::MemMax(args) => hostcmds::mem(&args, true),
        Command::Uptime(args) => hostcmds::uptime(&args),
        Command::Sysrq(args) => hostcmds::sysrq(&args),
        Command::Dmesg(args) => hostcmds::dmesg(&args),
        Command::DebugKeys(args) => hostcmds::debug_keys(&args),
        Command::Monitor(args) => lifecycle_cmds::monitor(&args),
        Command::Console(args) => console::run(args),
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RXL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in logs (create -F, monitors, scripts).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rxl_v_is_logging_and_list_v_is_the_verbose_listing() {
        let cli = Cli::try_parse_from(["rxl", "-vv", "list", "-v", "web"]).expect("parses");
        assert_eq!(cli.verbose, 2);
        match cli.command {
            Command::List { verbose, domains } => {
                assert!(verbose);
                assert_eq!(domains, ["web"]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
