//! Timestamped SQL migrations, embedded in the binary and applied in order at open.

/// One migration: a sortable timestamp version and its SQL.
pub struct Migration {
    pub version: &'static str,
    pub sql: &'static str,
}

/// A migration's SQL: from `migrations/<backend>/` when the backends need different SQL
/// (`each`), from `migrations/shared/` when one file serves both (`shared`), and only from
/// `migrations/postgres/` when SQLite has nothing to change (`postgres`; SQLite records it as
/// applied, so both lists keep the same versions).
macro_rules! migration_sql {
    (each, $backend:literal, $name:literal) => {
        include_str!(concat!("../migrations/", $backend, "/", $name, ".sql"))
    };
    (shared, $backend:literal, $name:literal) => {
        include_str!(concat!("../migrations/shared/", $name, ".sql"))
    };
    (postgres, "sqlite", $name:literal) => {
        ""
    };
    (postgres, "postgres", $name:literal) => {
        include_str!(concat!("../migrations/postgres/", $name, ".sql"))
    };
}

/// Both backends' migration lists, from one list of names.
macro_rules! migrations {
    ($($place:ident $name:literal),* $(,)?) => {
        pub const SQLITE: &[Migration] = &[$(Migration {
            version: $name,
            sql: migration_sql!($place, "sqlite", $name),
        }),*];
        pub const POSTGRES: &[Migration] = &[$(Migration {
            version: $name,
            sql: migration_sql!($place, "postgres", $name),
        }),*];
    };
}

migrations!(
    each "20261123000000_usage",
    shared "20261123010000_keys",
    each "20261123020000_gateway_calls",
    each "20261123030000_budgets",
    each "20261123040000_key_rate_limits",
    each "20261123050000_alerts",
    shared "20261124000000_leases",
    shared "20261124010000_outcomes",
    shared "20261124020000_findings",
    shared "20261124030000_viewer_tokens",
    shared "20261124040000_otlp",
    shared "20261204000000_finding_deciders",
    shared "20261205000000_finding_samples",
    shared "20261206000000_provider_reports",
    shared "20261207000000_agent_activity",
    each "20261208000000_project_rollups",
    postgres "20261209000000_ingest_storage",
    each "20261209100000_events_by_message",
    shared "20261210000000_budget_unreachable",
    each "20261211000000_audit_log",
    shared "20261212000000_token_person",
    shared "20261213000000_sessions",
    shared "20261214000000_directory",
    shared "20261215000000_role_grants",
    shared "20261216000000_session_id_tokens",
    shared "20261217000000_scim",
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
