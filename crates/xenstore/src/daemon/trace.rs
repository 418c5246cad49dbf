//! The access log (`-T/--trace-file`), in the spirit of C xenstored's trace: one
//! line per request, reply, event and connection change. CONTROL `log on|off`
//! switches it, `logfile` moves it, SIGHUP reopens it (for log rotation).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::process::ConnId;
use crate::wire::{Message, MsgType};

/// Longest payload excerpt written per message.
const MAX_LOGGED_PAYLOAD: usize = 256;
const SECS_PER_DAY: u64 = 86_400;

/// The access log.
#[derive(Debug)]
pub struct Trace {
    path: Option<PathBuf>,
    out: Option<BufWriter<File>>,
    enabled: bool,
}

impl Trace {
    /// A trace writing to `path` (appending), or a disabled one.
    pub fn open(path: Option<&Path>) -> io::Result<Trace> {
        let mut t = Trace {
            path: path.map(Path::to_path_buf),
            out: None,
            enabled: path.is_some(),
        };
        t.reopen()?;
        Ok(t)
    }

    /// Reopens the file (after rotation, or a new path).
    pub fn reopen(&mut self) -> io::Result<()> {
        self.flush();
        self.out = match &self.path {
            Some(p) => Some(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            )),
            None => None,
        };
        Ok(())
    }

    /// CONTROL `logfile`: trace to a new file from now on.
    pub fn set_path(&mut self, path: &Path) -> io::Result<()> {
        self.path = Some(path.to_path_buf());
        self.reopen()
    }

    /// CONTROL `log on|off`.
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    /// Whether lines are being written.
    pub fn active(&self) -> bool {
        self.enabled && self.out.is_some()
    }

    fn line(&mut self, text: std::fmt::Arguments<'_>) {
        if !self.enabled {
            return;
        }
        if let Some(out) = &mut self.out {
            if let Err(e) = writeln!(out, "{} {text}", timestamp(SystemTime::now())) {
                tracing::warn!(error = %e, "writing the trace file failed; tracing stops");
                self.out = None;
            }
        }
    }

    /// A message in (`IN`) or out (`OUT`).
    pub fn io(&mut self, conn: ConnId, out: bool, msg: &Message) {
        if !self.active() {
            return;
        }
        let kind = MsgType::try_from(msg.header.msg_type)
            .map(MsgType::name)
            .unwrap_or("UNKNOWN");
        let shown = &msg.payload[..msg.payload.len().min(MAX_LOGGED_PAYLOAD)];
        let text: String = shown
            .iter()
            .map(|b| match *b {
                0 => ' ',
                b if b.is_ascii_graphic() || b == b' ' => b as char,
                _ => '.',
            })
            .collect();
        let more = if shown.len() < msg.payload.len() {
            "..."
        } else {
            ""
        };
        self.line(format_args!(
            "io: {} {conn} req {} tx {} {kind} ({text}{more})",
            if out { "OUT" } else { "IN" },
            msg.header.req_id,
            msg.header.tx_id
        ));
    }

    /// A connection was created or destroyed.
    pub fn conn(&mut self, conn: ConnId, what: &str) {
        self.line(format_args!("{what} connection {conn}"));
    }

    /// CONTROL `print`.
    pub fn print(&mut self, text: &str) {
        self.line(format_args!("{text}"));
    }

    /// Pushes buffered lines to the file.
    pub fn flush(&mut self) {
        if let Some(out) = &mut self.out {
            if let Err(e) = out.flush() {
                tracing::warn!(error = %e, "flushing the trace file failed");
            }
        }
    }
}

/// `YYYYMMDD HH:MM:SS` in UTC, like C's trace prefix (which uses local time).
fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days(secs / SECS_PER_DAY);
    let s = secs % SECS_PER_DAY;
    format!(
        "{y:04}{m:02}{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101 00:00:00");
        // 2000-02-29 12:34:56 UTC (a leap day).
        let t = UNIX_EPOCH + Duration::from_secs(951_827_696);
        assert_eq!(timestamp(t), "20000229 12:34:56");
        // 2026-11-27 03:55:00 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_751_700);
        assert_eq!(timestamp(t), "20261127 03:55:00");
    }

    #[test]
    fn trace_lines_show_requests_and_can_be_switched_off() {
        let dir = std::env::temp_dir().join(format!("rxs-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("trace");
        let mut t = Trace::open(Some(&path)).expect("open");
        let m = Message::new(MsgType::Write, 3, 0, b"/a\0v\x01".to_vec());
        t.io(ConnId(9), false, &m);
        t.set_enabled(false);
        t.io(ConnId(9), true, &m);
        t.set_enabled(true);
        t.conn(ConnId(9), "DESTROY");
        t.flush();
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with("io: IN conn9 req 3 tx 0 WRITE (/a v.)"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("DESTROY connection conn9"),
            "{}",
            lines[1]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
