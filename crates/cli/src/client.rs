//! Talking to a Goodhart server from the command line (`goodhart demo`, `goodhart import
//! --server`): its public API with a bearer token, and progress bars.

use anyhow::bail;
use bytes::Bytes;
use goodhart_gateway::upstream::UpstreamClient;
use http_body_util::{BodyExt, Full};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// The public API of a Goodhart server, authenticated with a token.
#[derive(Clone)]
pub struct Api {
    pub client: UpstreamClient,
    /// `http://host:port`, no trailing slash.
    pub base: String,
    pub token: String,
}

impl Api {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.client.request(request.body(Full::new(body))?).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    pub async fn admin(&self, method: &str, path: &str, content_type: &str, body: Bytes) -> anyhow::Result<Value> {
        let auth = format!("Bearer {}", self.token);
        let headers = [("authorization", auth.as_str()), ("content-type", content_type)];
        let (status, json) = self.send(method, path, &headers, body).await?;
        if !(200..300).contains(&status) {
            bail!("{method} {path}: HTTP {status}: {json}");
        }
        Ok(json)
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> anyhow::Result<Value> {
        self.admin("POST", path, "application/json", body.into()).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.admin("GET", path, "application/json", Bytes::new()).await
    }
}

/// A progress bar for `length` items (drawn only on a terminal).
#[expect(
    clippy::expect_used,
    reason = "the template is a constant, drawn by every test of the demo"
)]
pub fn bar(length: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(length).with_message(what.to_owned());
    bar.set_style(
        ProgressStyle::with_template("{msg:<24} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}
