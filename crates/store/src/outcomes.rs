//! Delivered-work facts and GitHub bookkeeping (tables from the `outcomes` migration).

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::outcomes::Fact;

use crate::error::StoreError;

/// What storing a batch of facts did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FactsOutcome {
    pub inserted: u64,
    /// Facts whose id was already stored (or repeated in the batch): not counted again.
    pub duplicates: u64,
}

#[async_trait]
pub trait OutcomeStore: Send + Sync {
    /// Stores the facts whose ids are new, all in one transaction.
    async fn insert_facts(&self, facts: Vec<(String, Fact)>) -> Result<FactsOutcome, StoreError>;

    /// Stores a GitHub delivery's facts unless the delivery id was seen before: `None` for a
    /// replayed delivery (nothing stored).
    async fn insert_delivery(
        &self,
        delivery: &str,
        event: &str,
        facts: Vec<(String, Fact)>,
    ) -> Result<Option<FactsOutcome>, StoreError>;

    /// Every fact that happened before `to`, oldest first (value depends on history: which
    /// commits were deployed before, which pull requests a deployment ships).
    async fn facts_before(&self, to: Micros) -> Result<Vec<(String, Fact)>, StoreError>;

    /// The Goodhart user of a GitHub login, where one was mapped.
    async fn github_user(&self, login: &str) -> Result<Option<String>, StoreError>;
    /// Maps a login to a user (replacing an earlier mapping).
    async fn map_github_login(&self, login: &str, user: &str) -> Result<(), StoreError>;
    /// Every mapping, by login.
    async fn github_logins(&self) -> Result<Vec<(String, String)>, StoreError>;
}

pub(crate) const INSERT_FACT: &str = "INSERT INTO outcome_facts (id, kind, at, payload, received_at) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING";
pub(crate) const INSERT_DELIVERY: &str =
    "INSERT INTO github_deliveries (id, event, received_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";
pub(crate) const FACTS_BEFORE: &str = "SELECT id, payload FROM outcome_facts WHERE at < $1 ORDER BY at, id";
pub(crate) const GITHUB_USER: &str = "SELECT user_name FROM github_logins WHERE login = $1";
pub(crate) const MAP_LOGIN: &str = "INSERT INTO github_logins (login, user_name) VALUES ($1, $2) \
    ON CONFLICT (login) DO UPDATE SET user_name = excluded.user_name";
pub(crate) const LOGINS: &str = "SELECT login, user_name FROM github_logins ORDER BY login";

/// A fact as stored: its JSON.
#[expect(
    clippy::expect_used,
    reason = "facts are plain structs of strings and numbers, which always serialise"
)]
pub(crate) fn payload(fact: &Fact) -> String {
    serde_json::to_string(fact).expect("facts serialise")
}

pub(crate) fn parse(id: String, payload: &str) -> Result<(String, Fact), StoreError> {
    serde_json::from_str(payload)
        .map(|fact| (id, fact))
        .map_err(|e| StoreError::Corrupt {
            what: "outcome fact",
            value: format!("{payload} ({e})"),
        })
}
