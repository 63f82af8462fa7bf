//! Throwaway databases for tests: a SQLite file in a temporary directory, or a fresh schema in
//! the PostgreSQL server named by `GOODHART_TEST_POSTGRES_URL` (default: the local server's
//! `test` database), dropped when the handle goes away. For fault tests: a PostgreSQL cluster
//! of the test's own ([`PgCluster`]) that it can stop and start, and a small file system
//! ([`SmallDisk`]) that it can fill.

#![expect(
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "test helpers: a broken test setup stops the test, the server URL comes from the test's environment, and connection tasks live as long as the test's runtime"
)]

use std::sync::Arc;

use rand::Rng;

use crate::{Store, StoreError};

/// A bare usage record of alice's, named `id`, of `model` (its length sets the record's size).
pub fn spooled_event(id: String, model: String) -> crate::spool::SpooledEvent {
    let event = goodhart_core::usage::UsageEvent {
        id,
        timestamp: goodhart_core::Micros(1_700_000_000_000_000),
        attribution: goodhart_core::usage::Attribution {
            user: "alice".into(),
            ..Default::default()
        },
        provider: None,
        model,
        tokens: Default::default(),
        finish_reason: None,
        fingerprints: Default::default(),
        content: None,
        source: goodhart_core::usage::Source::Gateway,
        estimated: false,
        call: None,
    };
    crate::spool::SpooledEvent {
        event,
        cost: None,
        price_version: "v1".into(),
    }
}

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
    Postgres {
        schema: String,
    },
    /// Someone else's (a [`PgCluster`] the test drops whole).
    Nothing,
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

    /// A database at `url` that outlives this handle (whoever made it removes it), with a
    /// scratch directory of its own.
    pub fn external(url: String) -> TestDatabase {
        TestDatabase {
            url,
            dir: tempfile::tempdir().expect("create a temporary directory"),
            cleanup: Cleanup::Nothing,
        }
    }

    /// A SQLite database at `path` (on a [`SmallDisk`], say), with a scratch directory for the
    /// rest on the normal disk.
    pub fn sqlite_at(path: &std::path::Path) -> TestDatabase {
        TestDatabase {
            url: format!("sqlite://{}", path.display()),
            dir: tempfile::tempdir().expect("create a temporary directory"),
            cleanup: Cleanup::Nothing,
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
            // SQLite files go with the directory; an external database is not ours.
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

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{program} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// `program` as the `postgres` user (PostgreSQL refuses to run as root).
fn as_postgres(program: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["-u", "postgres", "--", program];
    all.extend_from_slice(args);
    run("runuser", &all)
}

/// A PostgreSQL cluster of the test's own (`initdb` in a temporary directory, a free loopback
/// port, trust authentication), which the test may stop and start; stopped and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PgCluster {
    /// Why clusters cannot be made here (`initdb`, `pg_ctl` or `runuser` missing), if so.
    pub fn unavailable() -> Option<String> {
        ["initdb", "pg_ctl", "runuser"]
            .into_iter()
            .find(|program| std::process::Command::new(program).arg("--version").output().is_err())
            .map(|missing| format!("{missing} is not installed"))
    }

    /// Creates and starts a cluster.
    pub fn start() -> Result<PgCluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir
            .path()
            .to_str()
            .ok_or("temporary directory is not UTF-8")?
            .to_owned();
        run("chown", &["postgres:postgres", &path])?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        as_postgres(
            "initdb",
            &[
                "-D",
                &format!("{path}/data"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let cluster = PgCluster { dir, port };
        cluster.start_again()?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    /// The URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=2", self.port)
    }

    /// `pg_ctl stop -m <mode>` (`fast`: sessions are ended cleanly; `immediate`: a crash).
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        as_postgres("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "-t", "30", "stop"])
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = format!("{}/postgres.log", self.dir.path().display());
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop("immediate") {
            eprintln!("warning: could not stop the test's PostgreSQL cluster: {e}");
        }
    }
}

/// A small tmpfs mounted on a temporary directory, to run out of space on; unmounted on drop.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes`; why not, if mounting is not permitted here.
    pub fn mount(bytes: u64) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir
            .path()
            .to_str()
            .ok_or("temporary directory is not UTF-8")?
            .to_owned();
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs", &path],
        )
        .map_err(|e| format!("cannot mount a tmpfs: {e}"))?;
        Ok(SmallDisk { dir })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn filler(&self) -> std::path::PathBuf {
        self.dir.path().join("filler")
    }

    /// Writes a file until the disk is full.
    pub fn fill(&self) -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler())?;
        let block = [0u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes what [`SmallDisk::fill`] wrote.
    pub fn free(&self) -> std::io::Result<()> {
        std::fs::remove_file(self.filler())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let path = self.dir.path().display().to_string();
        if let Err(e) = run("umount", &["-l", &path]) {
            eprintln!("warning: could not unmount the test's tmpfs: {e}");
        }
    }
}
