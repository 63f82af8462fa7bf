//! Query strings and JSON bodies into the application layer's typed queries and commands.
//! Unknown parameters and fields are refused; a request that cannot be read is a 400 in the
//! API's error format.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use goodhart_core::Micros;
use goodhart_core::value::{BoardQuery, By, Metric};
use goodhart_store::SummaryQuery;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::body::{deserialize_body, read_body};
use super::error::ApiError;
use super::state::ApiState;
use crate::app::App;
use crate::app::findings::FindingsQuery;
use crate::app::query::{self, Window};

/// Query-string parameters, refused with a 400 naming what is wrong.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params<T>, ApiError> {
        let Query(params) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(Params(params))
    }
}

/// A JSON body, read like every other body (within `limits.max_body_bytes`, gzip-decoded on
/// request) and refused with a 400 naming the field that is wrong.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<ApiState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<JsonBody<T>, ApiError> {
        let (parts, body) = request.into_parts();
        let raw = read_body(body, &parts.headers, state.max_body_bytes).await?;
        Ok(JsonBody(deserialize_body(&raw)?))
    }
}

/// `?from=&to=`: RFC 3339 instants, dates, or spans back from now such as `7d`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowParams {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl WindowParams {
    pub fn window(&self, now: Micros) -> Result<Window, ApiError> {
        Ok(Window::parse(self.from.as_deref(), self.to.as_deref(), now)?)
    }
}

/// `GET /api/v1/usage/summary?from=&to=&group_by=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: Option<String>,
}

impl SummaryParams {
    pub fn query(&self, now: Micros) -> Result<SummaryQuery, ApiError> {
        Ok(query::summary_query(
            self.from.as_deref(),
            self.to.as_deref(),
            self.group_by.as_deref(),
            now,
        )?)
    }
}

/// `GET /api/v1/leaderboard?from=&to=&by=&metric=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: Option<String>,
    pub metric: Option<String>,
}

impl BoardParams {
    pub fn query(&self, app: &App) -> Result<BoardQuery, ApiError> {
        let Window { from, to } = Window::parse(self.from.as_deref(), self.to.as_deref(), app.now())?;
        let by = By::parse(self.by.as_deref().unwrap_or("user")).ok_or(ApiError::InvalidQuery {
            parameter: "by",
            message: "must be user, team or agent".into(),
        })?;
        let metric = Metric::parse(self.metric.as_deref().unwrap_or("value")).ok_or(ApiError::InvalidQuery {
            parameter: "metric",
            message: "must be value, efficiency or volume".into(),
        })?;
        Ok(app.board_query(from, to, by, metric))
    }
}

/// `GET /api/v1/findings?from=&to=&status=&user=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsParams {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `open`, `confirmed` or `dismissed`.
    pub status: Option<String>,
    /// Only this person's findings.
    pub user: Option<String>,
}

impl FindingsParams {
    pub fn query(self, now: Micros) -> Result<FindingsQuery, ApiError> {
        Ok(FindingsQuery {
            window: Window::parse(self.from.as_deref(), self.to.as_deref(), now)?,
            status: self.status.as_deref().map(query::finding_status).transpose()?,
            user: self.user,
        })
    }
}
