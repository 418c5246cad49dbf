//! CONTROL requests (C `xenstored_control.c`): check, log, logfile, memreport,
//! print, quota, quota-soft, help. Live update is not supported and answers as
//! C does when no live-update session can start.

use std::fmt::Write as _;

use super::{Action, Cx, Reply, Server};
use crate::store::perms::c_atoi;
use crate::store::{QuotaKind, Quotas};
use crate::wire::{count_args, split_args, string_at, XsError};

/// C `struct cmd_s`: name, parameter help, max parameter count (0 = any).
struct Cmd {
    name: &'static str,
    pars: &'static str,
    max_pars: usize,
}

/// The command table in C's order (daemon build with live update).
const CMDS: [Cmd; 9] = [
    Cmd {
        name: "check",
        pars: "",
        max_pars: 0,
    },
    Cmd {
        name: "log",
        pars: "on|off",
        max_pars: 0,
    },
    Cmd {
        name: "live-update",
        pars: "[-c <cmdline>] [-F] [-t <timeout>] <file>\n    Default timeout is 60 seconds.",
        max_pars: 5,
    },
    Cmd {
        name: "logfile",
        pars: "<file>",
        max_pars: 0,
    },
    Cmd {
        name: "memreport",
        pars: "[<file>]",
        max_pars: 0,
    },
    Cmd {
        name: "print",
        pars: "<string>",
        max_pars: 0,
    },
    Cmd {
        name: "quota",
        pars: "[set <name> <val>|<domid>]",
        max_pars: 0,
    },
    Cmd {
        name: "quota-soft",
        pars: "[set <name> <val>]",
        max_pars: 0,
    },
    Cmd {
        name: "help",
        pars: "",
        max_pars: 0,
    },
];

fn text(s: String) -> Result<Reply, XsError> {
    let mut v = s.into_bytes();
    v.push(0);
    Ok(Reply::Payload(v))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Server {
    pub(super) fn do_control(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        if cx.unpriv {
            return Err(XsError::Eacces);
        }
        let off = string_at(payload, 0).ok_or(XsError::Einval)?;
        let name = &payload[..off - 1];
        let cmd = CMDS
            .iter()
            .position(|c| c.name.as_bytes() == name)
            .ok_or(XsError::Einval)?;
        let mut num = count_args(payload);
        if CMDS[cmd].max_pars != 0 {
            num = num.min(CMDS[cmd].max_pars);
        }
        let args = split_args(payload);
        let params: Vec<&[u8]> = args
            .iter()
            .skip(1)
            .take(num.saturating_sub(1))
            .copied()
            .collect();
        match CMDS[cmd].name {
            "check" => self.control_check(&params),
            "log" => match params.as_slice() {
                [b"on"] => {
                    self.logging = true;
                    self.actions.push(Action::Log(true));
                    super::ok()
                }
                [b"off"] => {
                    self.logging = false;
                    self.actions.push(Action::Log(false));
                    super::ok()
                }
                _ => Err(XsError::Einval),
            },
            "live-update" => {
                if params.is_empty() {
                    return Err(XsError::Einval);
                }
                if params[0] == b"-a" && params.len() == 1 {
                    return text("No live-update session active.".to_string());
                }
                // rxenstored has no live update.
                Err(XsError::Enosys)
            }
            "logfile" => match params.as_slice() {
                [file] => {
                    self.actions.push(Action::LogFile(lossy(file)));
                    super::ok()
                }
                _ => Err(XsError::Einval),
            },
            "memreport" => match params.as_slice() {
                // C writes to its trace file; without one it fails (EBADF, sent
                // as EINVAL). rxenstored's trace file belongs to the I/O layer.
                [] => Err(XsError::Einval),
                [file] => {
                    let report = self.memreport();
                    tracing::info!(file = %lossy(file), "memreport:\n{report}");
                    super::ok()
                }
                _ => Err(XsError::Einval),
            },
            "print" => match params.as_slice() {
                [s] => {
                    tracing::info!("control: {}", lossy(s));
                    self.actions.push(Action::Print(lossy(s)));
                    super::ok()
                }
                _ => Err(XsError::Einval),
            },
            "quota" => self.control_quota(&params, QuotaKind::Hard),
            "quota-soft" => self.control_quota(&params, QuotaKind::Soft),
            _ => {
                if !params.is_empty() {
                    return Err(XsError::Einval);
                }
                let mut s = String::new();
                for c in &CMDS {
                    let _ = writeln!(s, "{}\t{}", c.name, c.pars);
                }
                text(s)
            }
        }
    }

    fn control_check(&mut self, params: &[&[u8]]) -> Result<Reply, XsError> {
        if !params.is_empty() {
            return Err(XsError::Einval);
        }
        for p in self.store.check() {
            tracing::error!("check: {p}");
        }
        super::ok()
    }

    fn memreport(&self) -> String {
        let mut s = format!(
            "nodes: {}\nconnections: {}\n",
            self.store.len(),
            self.conns.len()
        );
        for d in self.domains.values() {
            let _ = writeln!(
                s,
                "domain {}: memory {} nodes {} watches {}",
                d.domid, d.memory, d.nbentry, d.nbwatch
            );
        }
        s
    }

    fn control_quota(&mut self, params: &[&[u8]], kind: QuotaKind) -> Result<Reply, XsError> {
        if params.is_empty() {
            let mut s = String::from("Quota settings:\n");
            for e in Quotas::table(kind) {
                let _ = writeln!(
                    s,
                    "{:<17}: {:>8} {}",
                    e.name,
                    (e.get)(&self.config.quotas),
                    e.descr
                );
            }
            return text(s);
        }
        if params[0] == b"set" {
            let [name, val] = &params[1..] else {
                return Err(XsError::Einval);
            };
            let val = c_atoi(val);
            if val < 1 {
                return Err(XsError::Einval);
            }
            let name = std::str::from_utf8(name).map_err(|_| XsError::Einval)?;
            if !self.config.quotas.set_by_name(kind, name, i64::from(val)) {
                return Err(XsError::Einval);
            }
            return super::ok();
        }
        if kind == QuotaKind::Soft || params.len() != 1 {
            return Err(XsError::Einval);
        }
        let domid = c_atoi(params[0]) as u32;
        let d = self.domains.get(&domid).ok_or(XsError::Enoent)?;
        let ta = d
            .conn
            .and_then(|c| self.conns.get(&c))
            .map_or(0, |c| c.transactions.len());
        let mut s = format!("Domain {domid}:\n");
        for (n, v) in [
            ("nodes", d.nbentry),
            ("watches", d.nbwatch),
            ("transactions", ta as i64),
            ("outstanding", d.nboutstanding),
            ("memory", d.memory),
        ] {
            let _ = writeln!(s, "{n:<16}: {v:>8}");
        }
        text(s)
    }
}
