//! Per-console log files, like `xenconsoled --log=guest --log-dir=DIR`:
//! `DIR/guest-NAME.log` (`guest-NAME-vuart0.log` for the SBSA UART), with optional
//! `[YYYY-MM-DD HH:MM:SS.mmm] ` timestamps at the start of each line and a size
//! cap: when a file would grow past it, it is renamed to `NAME.log.1` (older ones
//! shift to `.2` ... up to the number kept) and a fresh file is started.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Errors of console logging.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open console log {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write console log {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rotate console log {path}")]
    Rotate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    /// Timestamp each line.
    pub timestamps: bool,
    /// Rotate when a file would exceed this many bytes (0: never).
    pub max_bytes: u64,
    /// Rotated files kept (`.1` .. `.keep`).
    pub keep: u32,
}

impl Default for LogPolicy {
    fn default() -> Self {
        Self {
            timestamps: false,
            max_bytes: 0,
            keep: 1,
        }
    }
}

/// The log file name xenconsoled uses for a guest's console.
pub fn log_file_name(guest_name: &str, suffix: &str) -> String {
    // A hostile guest can write its own name in xenstore only if the toolstack lets
    // it; still, never let it leave the log directory.
    let safe: String = guest_name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    let safe = if safe.is_empty() || safe == "." || safe == ".." {
        "unnamed".to_string()
    } else {
        safe
    };
    format!("guest-{safe}{suffix}.log")
}

/// One open console log.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    policy: LogPolicy,
    at_line_start: bool,
    /// The bytes of one write with their timestamps (kept to spare an
    /// allocation per write).
    out: Vec<u8>,
    /// The last timestamp written and the millisecond it stands for: a flood
    /// writes many chunks per millisecond, formatted once.
    stamp: (u128, String),
}

impl LogFile {
    /// Opens (appending) `path`.
    pub fn open(path: &Path, policy: LogPolicy) -> Result<Self, LogError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            policy,
            at_line_start: true,
            out: Vec::new(),
            stamp: (u128::MAX, String::new()),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends console bytes (timestamping line starts when asked) in one write.
    pub fn write(&mut self, data: &[u8]) -> Result<(), LogError> {
        if data.is_empty() {
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let bytes: &[u8] = if self.policy.timestamps {
            // One clock reading per write: the lines of one chunk left the
            // guest's ring together.
            let now = SystemTime::now();
            let ms = now
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            if self.stamp.0 != ms {
                self.stamp = (ms, timestamp(now));
            }
            let stamp = self.stamp.1.as_bytes();
            for line in data.split_inclusive(|&b| b == b'\n') {
                if self.at_line_start {
                    out.extend_from_slice(stamp);
                }
                out.extend_from_slice(line);
                self.at_line_start = line.last() == Some(&b'\n');
            }
            &out
        } else {
            data
        };
        let result = self.append(bytes);
        self.out = out;
        result
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        if self.policy.max_bytes > 0 && self.size + bytes.len() as u64 > self.policy.max_bytes {
            self.rotate()?;
        }
        self.file
            .write_all(bytes)
            .map_err(|source| LogError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Opens the file again by name (after an outside logrotate moved it away:
    /// xenconsoled does this on SIGHUP).
    pub fn reopen(&mut self) -> Result<(), LogError> {
        self.file = open_append(&self.path)?;
        self.size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let err = |source| LogError::Rotate {
            path: self.path.clone(),
            source,
        };
        let keep = self.policy.keep.max(1);
        for k in (1..keep).rev() {
            let from = numbered(&self.path, k);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, k + 1)).map_err(err)?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1)).map_err(err)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn numbered(path: &Path, k: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Seconds in a day.
const SECS_PER_DAY: u64 = 86_400;

/// `[YYYY-MM-DD HH:MM:SS.mmm] ` in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / SECS_PER_DAY) as i64);
    let s = secs % SECS_PER_DAY;
    format!(
        "[{y:04}-{m:02}-{day:02} {:02}:{:02}:{:02}.{:03}] ",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "rxconsoled-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmpdir");
        d
    }

    #[test]
    fn names_stay_inside_the_log_dir() {
        assert_eq!(log_file_name("web", ""), "guest-web.log");
        assert_eq!(log_file_name("web", "-vuart0"), "guest-web-vuart0.log");
        assert_eq!(log_file_name("../../etc/x", ""), "guest-.._.._etc_x.log");
        assert_eq!(log_file_name("..", ""), "guest-unnamed.log");
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(t), "[2023-11-14 22:13:20.123] ");
        assert_eq!(timestamp(UNIX_EPOCH), "[1970-01-01 00:00:00.000] ");
        // 2024-02-29 (leap day) 12:00:00
        let t = UNIX_EPOCH + Duration::from_secs(1_709_208_000);
        assert_eq!(timestamp(t), "[2024-02-29 12:00:00.000] ");
    }

    #[test]
    fn lines_get_timestamps_across_writes() {
        let d = tmpdir("ts");
        let p = d.join("guest-a.log");
        let mut l = LogFile::open(
            &p,
            LogPolicy {
                timestamps: true,
                ..Default::default()
            },
        )
        .expect("open");
        l.write(b"one\ntw").expect("write");
        l.write(b"o\nthree\n").expect("write");
        let text = std::fs::read_to_string(&p).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for (line, want) in lines.iter().zip(["one", "two", "three"]) {
            assert!(
                line.starts_with('[') && line.ends_with(&format!("] {want}")),
                "{line}"
            );
        }
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn reopen_follows_the_name() {
        let d = tmpdir("reopen");
        let p = d.join("guest-c.log");
        let mut l = LogFile::open(&p, LogPolicy::default()).expect("open");
        l.write(b"old\n").expect("write");
        std::fs::rename(&p, d.join("moved.log")).expect("rename");
        l.reopen().expect("reopen");
        l.write(b"new\n").expect("write");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "new\n");
        assert_eq!(
            std::fs::read_to_string(d.join("moved.log")).expect("read"),
            "old\n"
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn size_cap_rotates_and_keeps_n_files() {
        let d = tmpdir("rot");
        let p = d.join("guest-b.log");
        let mut l = LogFile::open(
            &p,
            LogPolicy {
                timestamps: false,
                max_bytes: 10,
                keep: 2,
            },
        )
        .expect("open");
        l.write(b"aaaaaaaa").expect("1");
        l.write(b"bbbbbbbb").expect("2"); // rotates: a -> .1
        l.write(b"cccccccc").expect("3"); // rotates: a -> .2, b -> .1
        l.write(b"dddddddd").expect("4"); // rotates: b -> .2, c -> .1, a dropped
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("read");
        assert_eq!(read(p.clone()), "dddddddd");
        assert_eq!(read(numbered(&p, 1)), "cccccccc");
        assert_eq!(read(numbered(&p, 2)), "bbbbbbbb");
        assert!(!numbered(&p, 3).exists());
        std::fs::remove_dir_all(&d).ok();
    }
}
