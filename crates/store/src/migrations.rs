//! Timestamped SQL migrations, embedded in the binary and applied in order at open.

/// One migration: a sortable timestamp version and its SQL.
pub struct Migration {
    pub version: &'static str,
    pub sql: &'static str,
}

pub const SQLITE: &[Migration] = &[
    Migration {
        version: "20261123000000_usage",
        sql: include_str!("../migrations/sqlite/20261123000000_usage.sql"),
    },
    Migration {
        version: "20261123010000_keys",
        sql: include_str!("../migrations/sqlite/20261123010000_keys.sql"),
    },
    Migration {
        version: "20261123020000_gateway_calls",
        sql: include_str!("../migrations/sqlite/20261123020000_gateway_calls.sql"),
    },
    Migration {
        version: "20261123030000_budgets",
        sql: include_str!("../migrations/sqlite/20261123030000_budgets.sql"),
    },
    Migration {
        version: "20261123040000_key_rate_limits",
        sql: include_str!("../migrations/sqlite/20261123040000_key_rate_limits.sql"),
    },
    Migration {
        version: "20261123050000_alerts",
        sql: include_str!("../migrations/sqlite/20261123050000_alerts.sql"),
    },
];

pub const POSTGRES: &[Migration] = &[
    Migration {
        version: "20261123000000_usage",
        sql: include_str!("../migrations/postgres/20261123000000_usage.sql"),
    },
    Migration {
        version: "20261123010000_keys",
        sql: include_str!("../migrations/postgres/20261123010000_keys.sql"),
    },
    Migration {
        version: "20261123020000_gateway_calls",
        sql: include_str!("../migrations/postgres/20261123020000_gateway_calls.sql"),
    },
    Migration {
        version: "20261123030000_budgets",
        sql: include_str!("../migrations/postgres/20261123030000_budgets.sql"),
    },
    Migration {
        version: "20261123040000_key_rate_limits",
        sql: include_str!("../migrations/postgres/20261123040000_key_rate_limits.sql"),
    },
    Migration {
        version: "20261123050000_alerts",
        sql: include_str!("../migrations/postgres/20261123050000_alerts.sql"),
    },
];

/// The table that records applied migrations (same SQL on both backends).
pub const CREATE_LEDGER: &str =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_sorted_unique_and_match_across_backends() {
        for list in [SQLITE, POSTGRES] {
            assert!(list.windows(2).all(|w| w[0].version < w[1].version));
        }
        let names = |list: &[Migration]| list.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
    }
}
