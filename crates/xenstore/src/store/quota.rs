//! Per-domain quotas and limits, with C xenstored 4.17's defaults
//! (`xenstored_core.c`: `quota_*` variables; names as `xenstore-control quota`).

/// Quota values. They apply to unprivileged domains only, like C's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes owned per domain (C `-E`, "nodes"), default 1000.
    pub nodes: i64,
    /// Watches per domain (C `-W`, "watches"), default 128.
    pub watches: i64,
    /// Open transactions per connection (C `-t`, "transactions"), default 10.
    pub transactions: i64,
    /// Outstanding requests (replies not yet taken) per domain (C `-Q outstanding`),
    /// default 20.
    pub outstanding: i64,
    /// Nodes a transaction may access (C `-Q transaction-nodes`), default 1024.
    pub transaction_nodes: i64,
    /// Hard memory quota per domain in bytes (C `-Q memory`), default 2.5 MiB.
    pub memory_hard: i64,
    /// Soft memory quota per domain in bytes (C `-q memory`), default 2 MiB; only logged.
    pub memory_soft: i64,
    /// Maximum size of a node record (C `-S`, "node-size"), default 2048.
    pub node_size: i64,
    /// Maximum path length beyond `/local/domain/<n>/` (C `-M`, "path-max"),
    /// default and maximum 2048 (`XENSTORE_REL_PATH_MAX`).
    pub path_max: i64,
    /// Permission entries per node (C `-A`, "permissions"), default 5.
    pub permissions: i64,
}

/// Default of [`Quotas::memory_soft`] (C `quota_memory_per_domain_soft`).
pub const DEFAULT_MEMORY_SOFT: i64 = 2 * 1024 * 1024;
/// Default of [`Quotas::memory_hard`] (C `quota_memory_per_domain_hard`).
pub const DEFAULT_MEMORY_HARD: i64 = 2 * 1024 * 1024 + 512 * 1024;

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            nodes: 1000,
            watches: 128,
            transactions: 10,
            outstanding: 20,
            transaction_nodes: 1024,
            memory_hard: DEFAULT_MEMORY_HARD,
            memory_soft: DEFAULT_MEMORY_SOFT,
            node_size: 2048,
            path_max: crate::wire::XENSTORE_REL_PATH_MAX as i64,
            permissions: 5,
        }
    }
}

/// Which table a quota belongs to in CONTROL `quota` / `quota-soft`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Enforced quotas (`quota`).
    Hard,
    /// Warning levels (`quota-soft`).
    Soft,
}

/// One named quota: name, description (as C prints them) and accessor.
#[derive(Debug, Clone, Copy)]
pub struct QuotaEntry {
    /// The name used by `xenstore-control quota set <name>`.
    pub name: &'static str,
    /// C's description.
    pub descr: &'static str,
    /// Reads the value.
    pub get: fn(&Quotas) -> i64,
    /// Writes the value.
    pub set: fn(&mut Quotas, i64),
}

/// The hard quota table, in C's order.
pub const HARD_QUOTAS: [QuotaEntry; 9] = [
    QuotaEntry {
        name: "nodes",
        descr: "Nodes per domain",
        get: |q| q.nodes,
        set: |q, v| q.nodes = v,
    },
    QuotaEntry {
        name: "watches",
        descr: "Watches per domain",
        get: |q| q.watches,
        set: |q, v| q.watches = v,
    },
    QuotaEntry {
        name: "transactions",
        descr: "Transactions per domain",
        get: |q| q.transactions,
        set: |q, v| q.transactions = v,
    },
    QuotaEntry {
        name: "outstanding",
        descr: "Outstanding requests per domain",
        get: |q| q.outstanding,
        set: |q, v| q.outstanding = v,
    },
    QuotaEntry {
        name: "transaction-nodes",
        descr: "Max. number of accessed nodes per transaction",
        get: |q| q.transaction_nodes,
        set: |q, v| q.transaction_nodes = v,
    },
    QuotaEntry {
        name: "memory",
        descr: "Total Xenstore memory per domain (error level)",
        get: |q| q.memory_hard,
        set: |q, v| q.memory_hard = v,
    },
    QuotaEntry {
        name: "node-size",
        descr: "Max. size of a node",
        get: |q| q.node_size,
        set: |q, v| q.node_size = v,
    },
    QuotaEntry {
        name: "path-max",
        descr: "Max. length of a node path",
        get: |q| q.path_max,
        set: |q, v| q.path_max = v,
    },
    QuotaEntry {
        name: "permissions",
        descr: "Max. number of permissions per node",
        get: |q| q.permissions,
        set: |q, v| q.permissions = v,
    },
];

/// The soft quota table.
pub const SOFT_QUOTAS: [QuotaEntry; 1] = [QuotaEntry {
    name: "memory",
    descr: "Total Xenstore memory per domain (warning level)",
    get: |q| q.memory_soft,
    set: |q, v| q.memory_soft = v,
}];

impl Quotas {
    /// The table of `kind`.
    pub fn table(kind: QuotaKind) -> &'static [QuotaEntry] {
        match kind {
            QuotaKind::Hard => &HARD_QUOTAS,
            QuotaKind::Soft => &SOFT_QUOTAS,
        }
    }

    /// Sets a quota by name; false when the name is unknown.
    pub fn set_by_name(&mut self, kind: QuotaKind, name: &str, value: i64) -> bool {
        match Quotas::table(kind).iter().find(|e| e.name == name) {
            Some(e) => {
                (e.set)(self, value);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_set() {
        let mut q = Quotas::default();
        assert_eq!(q.nodes, 1000);
        assert_eq!(q.watches, 128);
        assert_eq!(q.transactions, 10);
        assert_eq!(q.outstanding, 20);
        assert_eq!(q.node_size, 2048);
        assert!(q.set_by_name(QuotaKind::Hard, "watches", 7));
        assert_eq!(q.watches, 7);
        assert!(q.set_by_name(QuotaKind::Soft, "memory", 9));
        assert_eq!(q.memory_soft, 9);
        assert!(!q.set_by_name(QuotaKind::Soft, "nodes", 9));
        assert!(!q.set_by_name(QuotaKind::Hard, "bogus", 9));
    }
}
