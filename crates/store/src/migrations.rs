//! Timestamped SQL migrations, embedded in the binary and applied in order at open.

/// One migration: a sortable timestamp version and its SQL.
pub struct Migration {
    pub version: &'static str,
    pub sql: &'static str,
}

/// Both backends' migration lists, from one list of names: each backend has a file of that
/// name under `migrations/<backend>/`.
macro_rules! migrations {
    ($($name:literal),* $(,)?) => {
        pub const SQLITE: &[Migration] = &[$(Migration {
            version: $name,
            sql: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
        }),*];
        pub const POSTGRES: &[Migration] = &[$(Migration {
            version: $name,
            sql: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }),*];
    };
}

migrations!(
    "20261123000000_usage",
    "20261123010000_keys",
    "20261123020000_gateway_calls",
    "20261123030000_budgets",
    "20261123040000_key_rate_limits",
    "20261123050000_alerts",
    "20261124000000_leases",
    "20261124010000_outcomes",
);

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
