//! Running the `goodhart` binary in a test: start it, read its banner, talk HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_goodhart");

pub struct Served {
    pub child: Child,
    pub addr: String,
    pub token: Option<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed assertion must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `goodhart serve` on a random port and reads its banner.
pub fn serve(dir: &std::path::Path) -> Served {
    serve_with(dir, &[])
}

/// Starts `goodhart serve` with extra environment variables; provider keys are removed so
/// the built-in mock serves every call.
#[expect(
    clippy::zombie_processes,
    reason = "the child is owned by `Served`, whose Drop kills and waits for it"
)]
pub fn serve_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Served {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .current_dir(dir)
        .env_remove("GOODHART_ADMIN_TOKEN")
        .env_remove("GOODHART_DATABASE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start goodhart serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut token = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no banner within 30 s");
        let line = lines.next().expect("banner line").expect("stdout");
        if let Some(t) = line.trim().strip_prefix("gh_admin_") {
            token = Some(format!("gh_admin_{t}"));
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_owned();
            return Served { child, addr, token };
        }
    }
}

/// Runs `goodhart ARGS` in `dir` against the database there (never one named by the
/// environment).
pub fn goodhart(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("GOODHART_DATABASE_URL")
        .output()
        .expect("run goodhart")
}

/// Runs `goodhart ARGS` in `dir` and returns its output, asserting that it succeeded.
pub fn goodhart_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let output = goodhart(dir, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A minimal HTTP/1.1 exchange (the test must not depend on the code under test's client).
pub fn http(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let response = exchange(
        addr,
        method,
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        body,
    )
    .expect("HTTP exchange");
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Sends one request with `Connection: close` and returns the raw response, head and body.
pub fn exchange(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(
        stream,
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// `path`, which the test setup installs; a clear failure when it is not there.
pub fn required(path: std::path::PathBuf) -> std::path::PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/setup-clients.sh` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A tool `scripts/setup-clients.sh` installs under `.cache/clients` (or `$GOODHART_CLIENTS_DIR`),
/// e.g. `venv/bin/python` or `node_modules/.bin/ccusage`.
pub fn client_tool(relative: &str) -> std::path::PathBuf {
    let clients = std::env::var_os("GOODHART_CLIENTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/clients"));
    required(clients.join(relative))
}
