//! Throwaway databases for tests: a SQLite file in a temporary directory, or a fresh schema in
//! the PostgreSQL server named by `GOODHART_TEST_POSTGRES_URL` (default: the local server's
//! `test` database), dropped when the handle goes away.

#![expect(
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "test helpers: a broken test setup stops the test, the server URL comes from the test's environment, and connection tasks live as long as the test's runtime"
)]

use std::sync::Arc;

use rand::Rng;

use crate::{Store, StoreError};

/// The PostgreSQL server tests use.
pub fn postgres_base_url() -> String {
    std::env::var("GOODHART_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database that exists for one test, with a scratch directory for the test's other files
/// (e.g. the gateway's spool).
pub struct TestDatabase {
    pub url: String,
    dir: tempfile::TempDir,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite,
    Postgres { schema: String },
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("goodhart.db").display());
        TestDatabase {
            url,
            dir,
            cleanup: Cleanup::Sqlite,
        }
    }

    /// Creates a uniquely named schema; the URL makes it the connection's search path.
    pub async fn postgres() -> TestDatabase {
        let schema = format!(
            "goodhart_test_{}_{:08x}",
            std::process::id(),
            rand::rng().random::<u32>()
        );
        let (client, connection) = tokio_postgres::connect(&postgres_base_url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} is required for these tests: {e}", postgres_base_url()));
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create test schema");
        let separator = if postgres_base_url().contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}options=-csearch_path%3D{schema}", postgres_base_url());
        TestDatabase {
            url,
            dir: tempfile::tempdir().expect("create a temporary directory"),
            cleanup: Cleanup::Postgres { schema },
        }
    }

    /// A directory that lives as long as the database.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        crate::open(&self.url).await
    }

    /// Runs `sql` (statements separated by `;`) on the database directly, outside any store:
    /// to put a database into the state an older version left it in.
    pub async fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        match crate::sqlite_path(&self.url)? {
            Some(path) => rusqlite::Connection::open(path)?.execute_batch(sql)?,
            None => {
                let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(sql).await?;
            }
        }
        Ok(())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { schema } = &self.cleanup else {
            return;
        };
        // A bounded lock wait: a leaked open transaction must not hang the test run.
        let statement = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
        // Drop may run inside a runtime, which cannot block on another: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&postgres_base_url(), tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client.batch_execute(&statement).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test schema {schema}");
        }
    }
}
