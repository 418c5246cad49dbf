//! `xl uptime`'s arithmetic and output lines (tools/xl/xl_info.c, print_uptime):
//! dom0's uptime from /proc/uptime, a guest's from its `/vm/<uuid>/start_time`.

/// Seconds in a day, an hour, a minute.
const DAY: u64 = 86_400;
const HOUR: u64 = 3_600;
const MINUTE: u64 = 60;

/// The header of the long form.
pub fn header() -> String {
    format!("{:<33} {:>4} {}", "Name", "ID", "Uptime")
}

/// An uptime as xl writes it: `H:MM:SS` (`H:MM` in short form), after
/// `N day(s), ` once it is a day or more; the hour is padded to two places.
pub fn uptime_string(secs: u64, short: bool) -> String {
    let days = secs / DAY;
    let hours = secs % DAY / HOUR;
    let minutes = secs % HOUR / MINUTE;
    let seconds = secs % MINUTE;
    let clock = if short {
        format!("{hours:2}:{minutes:02}")
    } else {
        format!("{hours:2}:{minutes:02}:{seconds:02}")
    };
    match days {
        0 => clock,
        1 => format!("1 day, {clock}"),
        n => format!("{n} days, {clock}"),
    }
}

/// One domain's line: the long form (`name id uptime`), or the short form
/// (` HH:MM:SS up uptime, name (id)`) with `now` the time of day.
pub fn line(name: &str, domid: u32, secs: u64, short_now: Option<&str>) -> String {
    match short_now {
        Some(now) => format!(" {now} up {}, {name} ({domid})", uptime_string(secs, true)),
        None => format!("{name:<33} {domid:>4} {}", uptime_string(secs, false)),
    }
}

/// The whole seconds of a leading decimal number, as C's `strtoul` reads
/// `start_time` ("1700000000.25") and /proc/uptime ("12.34 45.67").
pub fn leading_seconds(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// `HH:MM:SS` of a time given in seconds since the epoch, in UTC.
pub fn time_of_day_utc(epoch_secs: u64) -> String {
    let t = epoch_secs % DAY;
    format!("{:02}:{:02}:{:02}", t / HOUR, t % HOUR / MINUTE, t % MINUTE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_strings_match_xl_in_both_forms() {
        assert_eq!(uptime_string(0, false), " 0:00:00");
        assert_eq!(uptime_string(3 * HOUR + 7 * MINUTE + 9, false), " 3:07:09");
        assert_eq!(uptime_string(3 * HOUR + 7 * MINUTE + 9, true), " 3:07");
        assert_eq!(uptime_string(DAY + 12 * HOUR + 5, false), "1 day, 12:00:05");
        assert_eq!(uptime_string(3 * DAY + 59, true), "3 days,  0:00");
    }

    #[test]
    fn lines_have_xls_columns() {
        assert_eq!(header(), format!("Name{}ID Uptime", " ".repeat(32)));
        assert_eq!(
            line("Domain-0", 0, 75, None),
            format!("Domain-0{}    0  0:01:15", " ".repeat(25))
        );
        assert_eq!(
            line("guest", 3, 2 * DAY + HOUR, Some("14:02:03")),
            " 14:02:03 up 2 days,  1:00, guest (3)"
        );
    }

    #[test]
    fn leading_seconds_reads_like_strtoul() {
        assert_eq!(leading_seconds("1700000000.25"), Some(1_700_000_000));
        assert_eq!(leading_seconds("12.34 45.67\n"), Some(12));
        assert_eq!(leading_seconds("  42"), Some(42));
        assert_eq!(leading_seconds("x1"), None);
        assert_eq!(leading_seconds(""), None);
    }

    #[test]
    fn time_of_day_is_utc_hms() {
        assert_eq!(time_of_day_utc(0), "00:00:00");
        assert_eq!(time_of_day_utc(1_700_000_000), "22:13:20");
    }
}
