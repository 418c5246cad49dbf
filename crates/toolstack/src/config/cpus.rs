//! xl's CPU affinity syntax: `cpus` (hard) and `cpus_soft` (xl.cfg(5), "CPU
//! Allocation"). A list is comma-separated terms applied left to right: `all`, a CPU
//! `N`, a range `N-M`, each optionally negated with `^` (`"0-3,^1"` is 0, 2 and 3).
//! The key takes one such string for every vCPU, or a list of them, one per vCPU
//! (`["2", "3-5"]`: vCPU 0 on CPU 2, vCPU 1 on 3 to 5, later vCPUs unrestricted).

use std::fmt;

/// The largest CPU number rxl accepts (Xen's largest NR_CPUS is 4096).
pub const MAX_CPU: u32 = xen::ctrl::CPUMAP_BITS - 1;

/// Errors of a CPU list, at parse time or against the host's CPUs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    #[error("empty CPU list")]
    Empty,
    #[error("empty term in CPU list \"{0}\"")]
    EmptyTerm(String),
    #[error("invalid CPU \"{0}\" (a number, N-M, ^N or all)")]
    BadTerm(String),
    #[error("range \"{0}\" ends before it starts")]
    Reversed(String),
    #[error("CPU {0} is beyond the largest CPU number Xen supports ({MAX_CPU})")]
    TooLarge(u32),
    #[error("NUMA node affinity (\"{0}\") is not supported by rxl; name CPUs instead")]
    Nodes(String),
    #[error("CPU {cpu} does not exist: the host has {nr_cpus} CPUs (0-{last})", last = nr_cpus.saturating_sub(1))]
    NoSuchCpu { cpu: u32, nr_cpus: u32 },
    #[error("\"{0}\" leaves no CPU to run on")]
    NoCpuLeft(String),
}

/// One term of a CPU list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    All,
    Range { first: u32, last: u32 },
}

/// A parsed CPU list such as `"0-3,^1"`; resolved against the host by
/// [`CpuList::resolve`] because `all` and `^N` depend on how many CPUs it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList {
    text: String,
    /// (negated, term) in the order written.
    terms: Vec<(bool, Term)>,
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn cpu_number(s: &str, term: &str) -> Result<u32, CpuListError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::BadTerm(term.to_string()));
    }
    let n: u64 = s
        .parse()
        .map_err(|_| CpuListError::BadTerm(term.to_string()))?;
    u32::try_from(n)
        .ok()
        .filter(|&c| c <= MAX_CPU)
        .ok_or(CpuListError::TooLarge(u32::try_from(n).unwrap_or(u32::MAX)))
}

impl CpuList {
    /// Parses xl's CPU list syntax.
    pub fn parse(text: &str) -> Result<CpuList, CpuListError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CpuListError::Empty);
        }
        let mut terms = Vec::new();
        for raw in text.split(',') {
            let t = raw.trim();
            if t.is_empty() {
                return Err(CpuListError::EmptyTerm(text.to_string()));
            }
            let (negated, body) = match t.strip_prefix('^') {
                Some(b) => (true, b.trim()),
                None => (false, t),
            };
            if body.starts_with("node") {
                return Err(CpuListError::Nodes(t.to_string()));
            }
            let term = if body == "all" {
                Term::All
            } else if let Some((a, b)) = body.split_once('-') {
                let (first, last) = (cpu_number(a.trim(), t)?, cpu_number(b.trim(), t)?);
                if last < first {
                    return Err(CpuListError::Reversed(t.to_string()));
                }
                Term::Range { first, last }
            } else {
                let c = cpu_number(body, t)?;
                Term::Range { first: c, last: c }
            };
            terms.push((negated, term));
        }
        Ok(CpuList {
            text: text.to_string(),
            terms,
        })
    }

    /// The CPUs the list names on a host with `nr_cpus` CPUs (0..nr_cpus), in
    /// order. A CPU the host does not have, or a list that leaves none, is an error
    /// (xl would hand Xen the map and fail later, or run the vCPU nowhere).
    pub fn resolve(&self, nr_cpus: u32) -> Result<Vec<u32>, CpuListError> {
        let mut set = vec![false; nr_cpus as usize];
        for &(negated, term) in &self.terms {
            let (first, last) = match term {
                Term::All => (0, nr_cpus.saturating_sub(1)),
                Term::Range { first, last } => {
                    if last >= nr_cpus {
                        let cpu = if first >= nr_cpus { first } else { nr_cpus };
                        return Err(CpuListError::NoSuchCpu { cpu, nr_cpus });
                    }
                    (first, last)
                }
            };
            if nr_cpus == 0 {
                continue;
            }
            for c in first..=last {
                set[c as usize] = !negated;
            }
        }
        let cpus: Vec<u32> = (0..nr_cpus).filter(|&c| set[c as usize]).collect();
        if cpus.is_empty() {
            return Err(CpuListError::NoCpuLeft(self.text.clone()));
        }
        Ok(cpus)
    }
}

/// A `cpus`/`cpus_soft` setting: one list for every vCPU, or one per vCPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuAffinity {
    /// `cpus = "..."`: every vCPU.
    Every(CpuList),
    /// `cpus = ["...", ...]`: vCPU i gets element i; vCPUs past the end are left
    /// unrestricted.
    PerVcpu(Vec<CpuList>),
}

impl VcpuAffinity {
    /// The list for vCPU `vcpu`, if the setting restricts it.
    pub fn for_vcpu(&self, vcpu: u32) -> Option<&CpuList> {
        match self {
            VcpuAffinity::Every(l) => Some(l),
            VcpuAffinity::PerVcpu(v) => v.get(vcpu as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(text: &str, nr: u32) -> Result<Vec<u32>, CpuListError> {
        CpuList::parse(text)?.resolve(nr)
    }

    #[test]
    fn single_cpus_ranges_and_all() {
        assert_eq!(cpus("1", 4), Ok(vec![1]));
        assert_eq!(cpus("0-2", 4), Ok(vec![0, 1, 2]));
        assert_eq!(cpus(" 3 , 0-1 ", 4), Ok(vec![0, 1, 3]));
        assert_eq!(cpus("all", 3), Ok(vec![0, 1, 2]));
    }

    #[test]
    fn negation_applies_left_to_right() {
        assert_eq!(cpus("0-3,^1", 4), Ok(vec![0, 2, 3]));
        assert_eq!(cpus("all,^0-1", 4), Ok(vec![2, 3]));
        // A later term adds back what an earlier one took away.
        assert_eq!(cpus("^1,1", 4), Ok(vec![1]));
        assert_eq!(cpus("0-3,^1-2,2", 4), Ok(vec![0, 2, 3]));
    }

    #[test]
    fn bad_syntax_is_named() {
        assert_eq!(CpuList::parse(""), Err(CpuListError::Empty));
        assert_eq!(
            CpuList::parse("1,,2"),
            Err(CpuListError::EmptyTerm("1,,2".into()))
        );
        assert_eq!(CpuList::parse("x"), Err(CpuListError::BadTerm("x".into())));
        assert_eq!(
            CpuList::parse("-1"),
            Err(CpuListError::BadTerm("-1".into()))
        );
        assert_eq!(
            CpuList::parse("3-1"),
            Err(CpuListError::Reversed("3-1".into()))
        );
        assert_eq!(CpuList::parse("4096"), Err(CpuListError::TooLarge(4096)));
        assert_eq!(
            CpuList::parse("99999999999"),
            Err(CpuListError::TooLarge(u32::MAX))
        );
        assert_eq!(
            CpuList::parse("nodes:0"),
            Err(CpuListError::Nodes("nodes:0".into()))
        );
    }

    #[test]
    fn cpus_the_host_lacks_or_an_empty_result_are_refused() {
        assert_eq!(
            cpus("2", 2),
            Err(CpuListError::NoSuchCpu { cpu: 2, nr_cpus: 2 })
        );
        assert_eq!(
            cpus("1-5", 2),
            Err(CpuListError::NoSuchCpu { cpu: 2, nr_cpus: 2 })
        );
        assert_eq!(cpus("^0", 2), Err(CpuListError::NoCpuLeft("^0".into())));
        assert_eq!(
            cpus("all,^0-1", 2),
            Err(CpuListError::NoCpuLeft("all,^0-1".into()))
        );
        let e = cpus("3", 2).expect_err("error").to_string();
        assert_eq!(e, "CPU 3 does not exist: the host has 2 CPUs (0-1)");
    }

    #[test]
    fn per_vcpu_lists_leave_later_vcpus_alone() {
        let a = VcpuAffinity::PerVcpu(vec![
            CpuList::parse("1").expect("ok"),
            CpuList::parse("0").expect("ok"),
        ]);
        assert_eq!(a.for_vcpu(0).map(|l| l.to_string()), Some("1".into()));
        assert_eq!(a.for_vcpu(1).map(|l| l.to_string()), Some("0".into()));
        assert_eq!(a.for_vcpu(2), None);
        let e = VcpuAffinity::Every(CpuList::parse("0-1").expect("ok"));
        assert_eq!(e.for_vcpu(7).map(|l| l.to_string()), Some("0-1".into()));
    }
}
