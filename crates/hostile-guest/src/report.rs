//! Outcomes of attacks: every attack ends in exactly one `HOSTILE-OK` or
//! `HOSTILE-FAIL` line on stdout (the guest's console), which the dom0 scenario
//! reads back from the console daemon's log.

use std::fmt::Display;

/// Collects the outcome of each attack.
#[derive(Debug, Default)]
pub struct Report {
    ok: usize,
    failed: Vec<String>,
}

impl Report {
    /// Records that `attack` had its expected outcome.
    pub fn ok(&mut self, attack: &str, detail: impl Display) {
        println!("HOSTILE-OK {attack}: {detail}");
        self.ok += 1;
    }

    /// Records that `attack` did not have its expected outcome.
    pub fn fail(&mut self, attack: &str, detail: impl Display) {
        println!("HOSTILE-FAIL {attack}: {detail}");
        self.failed.push(attack.to_string());
    }

    /// Records `ok` or `fail` depending on `good`.
    pub fn check(&mut self, attack: &str, good: bool, detail: impl Display) {
        if good {
            self.ok(attack, detail);
        } else {
            self.fail(attack, detail);
        }
    }

    /// Records the result of an attack run as a whole: an `Err` is a failure.
    pub fn run(&mut self, attack: &str, result: anyhow::Result<()>) {
        if let Err(e) = result {
            self.fail(attack, format!("{e:#}"));
        }
    }

    /// Prints the summary line; true when nothing failed.
    pub fn finish(&self, part: &str) -> bool {
        println!(
            "HOSTILE-SUMMARY {part} ok={} fail={}{}",
            self.ok,
            self.failed.len(),
            if self.failed.is_empty() {
                String::new()
            } else {
                format!(" failed={}", self.failed.join(","))
            }
        );
        self.failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_and_errors_fail() {
        let mut r = Report::default();
        r.ok("a", "fine");
        r.check("b", false, "bad");
        r.run("c", Err(anyhow::anyhow!("boom")));
        r.run("d", Ok(()));
        assert_eq!(r.ok, 1);
        assert_eq!(r.failed, vec!["b".to_string(), "c".to_string()]);
        assert!(!r.finish("test"));
        assert!(Report::default().finish("empty"));
    }
}
