//! SCIM 2.0 (RFC 7643/7644) under `/scim/v2`, for an identity provider's SCIM token only: the
//! discovery documents (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`), `Users` and
//! `Groups` (list with an `eq` filter and paging, create, read, replace, patch, delete). The
//! use cases are [`crate::app::scim`]; here bodies are read (within `[limits]
//! max_body_bytes`), answers written as `application/scim+json` with their `meta`, and errors
//! as SCIM's Error schema (the status as a string, `scimType` where the RFC has one). Without
//! `[auth.oidc]` every route answers 404 saying so: its mapping names the teams and users
//! provisioned people get.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use goodhart_store::scim::{ScimGroup, ScimUser};
use serde_json::{Value, json};

use super::audit::Caller;
use super::body::{error_path, read_body};
use super::error::{ApiError, LoggedError};
use super::state::ApiState;
use crate::app::scim::{
    ERROR_SCHEMA, Filter, GROUP_SCHEMA, LIST_SCHEMA, Listed, MAX_RESULTS, Page, ScimError, USER_SCHEMA, timestamp,
};
use crate::oidc::OidcSettings;

const CONTENT_TYPE: &str = "application/scim+json";

fn answer(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({ "schemas": [ERROR_SCHEMA], "status": self.status.to_string(), "detail": self.detail });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = scim_type.into();
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = answer(status, &body);
        if let Some(detail) = self.logged {
            response.extensions_mut().insert(LoggedError(detail));
        }
        response
    }
}

/// An API error (from the token check, the body reader) as a SCIM error.
pub fn scim_error(error: ApiError) -> ScimError {
    let status = error.status().as_u16();
    let scim_type = (status == 400).then_some("invalidSyntax");
    let mut scim = ScimError::new(status, scim_type, error.public_message());
    if let ApiError::Store(e) = &error {
        scim.logged = Some(e.to_string());
    }
    scim
}

type Answer = Result<Response, ScimError>;

fn sso(state: &ApiState) -> Result<&OidcSettings, ScimError> {
    state.sso.as_deref().map(|sso| &sso.settings).ok_or_else(|| {
        ScimError::new(
            404,
            None,
            "SCIM provisioning needs single sign-on ([auth.oidc]): its group mapping names the teams and users of provisioned people",
        )
    })
}

/// Where the SCIM resources are: `<public_url>/scim/v2`.
fn base_url(sso: &OidcSettings) -> String {
    let redirect = sso.redirect_url.as_str();
    let public = redirect.strip_suffix("/auth/callback").unwrap_or(&sso.origin);
    format!("{}/scim/v2", public.trim_end_matches('/'))
}

/// A request body as JSON: within the size limit, of a JSON media type, parsed (a syntax error
/// names where it is).
async fn json_body(state: &ApiState, headers: &HeaderMap, body: Body) -> Result<Value, ScimError> {
    if let Some(kind) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
        && !kind.to_ascii_lowercase().contains("json")
    {
        return Err(ScimError::new(
            415,
            None,
            format!("Content-Type {kind:?}: send application/scim+json or application/json"),
        ));
    }
    let raw = read_body(body, headers, state.max_body_bytes)
        .await
        .map_err(scim_error)?;
    serde_json::from_slice(&raw).map_err(|e| {
        let detail = match error_path(&raw) {
            Some(path) => format!("request body: field `{path}`: {e}"),
            None => format!("request body: {e}"),
        };
        ScimError::new(400, Some("invalidSyntax"), detail)
    })
}

/// A list request's query: `filter`, `startIndex`, `count`, `excludedAttributes` (names
/// ignoring case).
struct ListQuery {
    filter: Option<String>,
    page: Page,
    excluded: Vec<String>,
}

fn list_query(query: &[(String, String)]) -> Result<ListQuery, ScimError> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str, default: usize| -> Result<usize, ScimError> {
        match get(name) {
            None => Ok(default),
            // Negative counts are taken as 0 and start indexes below 1 as 1 (RFC 7644 §3.4.2.4).
            Some(text) => match text.trim().parse::<i64>() {
                Ok(n) => Ok(usize::try_from(n.max(0)).unwrap_or(usize::MAX)),
                Err(_) => Err(ScimError::invalid_value(format!(
                    "parameter `{name}`: {text:?} is not an integer"
                ))),
            },
        }
    };
    Ok(ListQuery {
        filter: get("filter").map(str::to_owned),
        page: Page {
            start_index: number("startIndex", 1)?.max(1),
            count: number("count", MAX_RESULTS)?,
        },
        excluded: get("excludedAttributes")
            .map(|list| list.split(',').map(|a| a.trim().to_ascii_lowercase()).collect())
            .unwrap_or_default(),
    })
}

fn list_answer<T>(listed: &Listed<T>, render: impl Fn(&T) -> Value) -> Response {
    let resources: Vec<Value> = listed.resources.iter().map(render).collect();
    answer(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": listed.total,
            "startIndex": listed.start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

fn meta(
    base: &str,
    kind: &str,
    plural: &str,
    id: &str,
    created: goodhart_core::Micros,
    updated: goodhart_core::Micros,
) -> Value {
    json!({
        "resourceType": kind,
        "created": timestamp(created),
        "lastModified": timestamp(updated),
        "location": format!("{base}/{plural}/{id}"),
    })
}

fn user_json(base: &str, user: &ScimUser, groups: &[ScimGroup]) -> Value {
    let mut body = json!({
        "schemas": [USER_SCHEMA],
        "id": user.id,
        "userName": user.user_name,
        "active": user.active,
        "meta": meta(base, "User", "Users", &user.id, user.created_at, user.updated_at),
    });
    if let Some(external_id) = &user.external_id {
        body["externalId"] = external_id.as_str().into();
    }
    if let Some(display_name) = &user.display_name {
        body["displayName"] = display_name.as_str().into();
    }
    if user.given_name.is_some() || user.family_name.is_some() {
        body["name"] = json!({ "givenName": user.given_name, "familyName": user.family_name });
    }
    if let Some(email) = &user.email {
        body["emails"] = json!([{ "value": email, "type": "work", "primary": true }]);
    }
    let of_user: Vec<Value> = groups
        .iter()
        .filter(|g| g.members.contains(&user.id))
        .map(|g| json!({ "value": g.id, "display": g.display_name, "$ref": format!("{base}/Groups/{}", g.id) }))
        .collect();
    if !of_user.is_empty() {
        body["groups"] = of_user.into();
    }
    body
}

fn group_json(base: &str, group: &ScimGroup, users: &[ScimUser], with_members: bool) -> Value {
    let mut body = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id,
        "displayName": group.display_name,
        "meta": meta(base, "Group", "Groups", &group.id, group.created_at, group.updated_at),
    });
    if let Some(external_id) = &group.external_id {
        body["externalId"] = external_id.as_str().into();
    }
    if with_members {
        let members: Vec<Value> = group
            .members
            .iter()
            .map(|id| {
                let display = users.iter().find(|u| &u.id == id).map(|u| u.user_name.clone());
                json!({ "value": id, "display": display, "$ref": format!("{base}/Users/{id}") })
            })
            .collect();
        body["members"] = members.into();
    }
    body
}

async fn user_answer(state: &ApiState, sso: &OidcSettings, status: StatusCode, user: &ScimUser) -> Answer {
    let groups = state.app.scim_groups().await?;
    Ok(answer(status, &user_json(&base_url(sso), user, &groups)))
}

async fn group_answer(state: &ApiState, sso: &OidcSettings, status: StatusCode, group: &ScimGroup) -> Answer {
    let users = state.app.scim_users().await?;
    Ok(answer(status, &group_json(&base_url(sso), group, &users, true)))
}

/// `GET /scim/v2/ServiceProviderConfig`.
pub async fn service_provider_config(State(state): State<ApiState>) -> Answer {
    let base = base_url(sso(&state)?);
    Ok(answer(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/goodhart/goodhart#provisioning-people-over-scim",
            "patch": { "supported": true },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_RESULTS },
            "changePassword": { "supported": false },
            "sort": { "supported": false },
            "etag": { "supported": false },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A SCIM token from `goodhart tokens create --role scim`",
                "primary": true,
            }],
            "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
        }),
    ))
}

fn resource_types_of(base: &str) -> Vec<Value> {
    [("User", "Users", USER_SCHEMA), ("Group", "Groups", GROUP_SCHEMA)]
        .into_iter()
        .map(|(name, plural, schema)| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": name,
                "name": name,
                "endpoint": format!("/{plural}"),
                "schema": schema,
                "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}") },
            })
        })
        .collect()
}

/// `GET /scim/v2/ResourceTypes`.
pub async fn resource_types(State(state): State<ApiState>) -> Answer {
    let base = base_url(sso(&state)?);
    let types = resource_types_of(&base);
    Ok(answer(
        StatusCode::OK,
        &json!({ "schemas": [LIST_SCHEMA], "totalResults": types.len(), "startIndex": 1, "itemsPerPage": types.len(), "Resources": types }),
    ))
}

fn attribute(name: &str, kind: &str, required: bool, unique: &str, extra: Value) -> Value {
    let mut attribute = json!({
        "name": name, "type": kind, "multiValued": false, "required": required, "caseExact": false,
        "mutability": "readWrite", "returned": "default", "uniqueness": unique,
    });
    if let (Value::Object(into), Value::Object(from)) = (&mut attribute, extra) {
        into.extend(from);
    }
    attribute
}

/// `GET /scim/v2/Schemas`: the attributes Goodhart keeps of each resource.
pub async fn schemas(State(state): State<ApiState>) -> Answer {
    let base = base_url(sso(&state)?);
    let sub = |name: &str| attribute(name, "string", false, "none", json!({}));
    let user = json!({
        "id": USER_SCHEMA, "name": "User", "description": "A person",
        "attributes": [
            attribute("userName", "string", true, "server", json!({})),
            attribute("externalId", "string", false, "none", json!({ "caseExact": true })),
            attribute("displayName", "string", false, "none", json!({})),
            attribute("name", "complex", false, "none", json!({ "subAttributes": [sub("givenName"), sub("familyName")] })),
            attribute("emails", "complex", false, "none", json!({ "multiValued": true, "subAttributes": [sub("value"), sub("type"), attribute("primary", "boolean", false, "none", json!({}))] })),
            attribute("active", "boolean", false, "none", json!({})),
            attribute("groups", "complex", false, "none", json!({ "multiValued": true, "mutability": "readOnly", "subAttributes": [sub("value"), sub("display")] })),
        ],
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}") },
    });
    let group = json!({
        "id": GROUP_SCHEMA, "name": "Group", "description": "A group; its display name maps to a team through [auth.oidc]",
        "attributes": [
            attribute("displayName", "string", true, "server", json!({})),
            attribute("externalId", "string", false, "none", json!({ "caseExact": true })),
            attribute("members", "complex", false, "none", json!({ "multiValued": true, "subAttributes": [sub("value"), sub("display")] })),
        ],
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{GROUP_SCHEMA}") },
    });
    Ok(answer(
        StatusCode::OK,
        &json!({ "schemas": [LIST_SCHEMA], "totalResults": 2, "startIndex": 1, "itemsPerPage": 2, "Resources": [user, group] }),
    ))
}

const USER_FILTERS: &[&str] = &["username", "externalid", "emails.value", "emails"];
const GROUP_FILTERS: &[&str] = &["displayname", "externalid"];

/// `GET /scim/v2/Users?filter=&startIndex=&count=`.
pub async fn list_users(State(state): State<ApiState>, Query(query): Query<Vec<(String, String)>>) -> Answer {
    let sso = sso(&state)?;
    let query = list_query(&query)?;
    let filter = query
        .filter
        .as_deref()
        .map(|f| Filter::parse(f, USER_FILTERS))
        .transpose()?;
    let listed = state.app.list_scim_users(filter.as_ref(), query.page).await?;
    let groups = state.app.scim_groups().await?;
    let base = base_url(sso);
    Ok(list_answer(&listed, |u| user_json(&base, u, &groups)))
}

/// `POST /scim/v2/Users`.
pub async fn post_user(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let sso = sso(&state)?;
    let body = json_body(&state, &headers, body).await?;
    let user = state.app.create_scim_user(&origin, sso, &body).await?;
    user_answer(&state, sso, StatusCode::CREATED, &user).await
}

/// `GET /scim/v2/Users/{id}`.
pub async fn get_user(State(state): State<ApiState>, Path(id): Path<String>) -> Answer {
    let sso = sso(&state)?;
    let user = state.app.scim_user(&id).await?;
    user_answer(&state, sso, StatusCode::OK, &user).await
}

/// `PUT /scim/v2/Users/{id}`: replaces the user.
pub async fn put_user(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let sso = sso(&state)?;
    let body = json_body(&state, &headers, body).await?;
    let user = state.app.update_scim_user(&origin, sso, &id, &body, false).await?;
    user_answer(&state, sso, StatusCode::OK, &user).await
}

/// `PATCH /scim/v2/Users/{id}`: applies the operations.
pub async fn patch_user(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let sso = sso(&state)?;
    let body = json_body(&state, &headers, body).await?;
    let user = state.app.update_scim_user(&origin, sso, &id, &body, true).await?;
    user_answer(&state, sso, StatusCode::OK, &user).await
}

/// `DELETE /scim/v2/Users/{id}`: the person is offboarded.
pub async fn delete_user(State(state): State<ApiState>, Caller(origin): Caller, Path(id): Path<String>) -> Answer {
    let sso = sso(&state)?;
    state.app.delete_scim_user(&origin, sso, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /scim/v2/Groups?filter=&startIndex=&count=&excludedAttributes=`.
pub async fn list_groups(State(state): State<ApiState>, Query(query): Query<Vec<(String, String)>>) -> Answer {
    let sso = sso(&state)?;
    let query = list_query(&query)?;
    let filter = query
        .filter
        .as_deref()
        .map(|f| Filter::parse(f, GROUP_FILTERS))
        .transpose()?;
    let listed = state.app.list_scim_groups(filter.as_ref(), query.page).await?;
    let users = state.app.scim_users().await?;
    let base = base_url(sso);
    let with_members = !query.excluded.iter().any(|a| a == "members");
    Ok(list_answer(&listed, |g| group_json(&base, g, &users, with_members)))
}

/// `POST /scim/v2/Groups`.
pub async fn post_group(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let sso = sso(&state)?;
    let body = json_body(&state, &headers, body).await?;
    let group = state.app.create_scim_group(&origin, sso, &body).await?;
    group_answer(&state, sso, StatusCode::CREATED, &group).await
}

/// `GET /scim/v2/Groups/{id}?excludedAttributes=members`.
pub async fn get_group(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let sso = sso(&state)?;
    let query = list_query(&query)?;
    let group = state.app.scim_group(&id).await?;
    let users = state.app.scim_users().await?;
    let with_members = !query.excluded.iter().any(|a| a == "members");
    Ok(answer(
        StatusCode::OK,
        &group_json(&base_url(sso), &group, &users, with_members),
    ))
}

/// `PUT /scim/v2/Groups/{id}`: replaces the group and its members.
pub async fn put_group(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let sso = sso(&state)?;
    let body = json_body(&state, &headers, body).await?;
    let group = state.app.update_scim_group(&origin, sso, &id, &body, false).await?;
    group_answer(&state, sso, StatusCode::OK, &group).await
}

/// `PATCH /scim/v2/Groups/{id}`: applies the operations.
pub async fn patch_group(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let sso = sso(&state)?;
    let body = json_body(&state, &headers, body).await?;
    let group = state.app.update_scim_group(&origin, sso, &id, &body, true).await?;
    group_answer(&state, sso, StatusCode::OK, &group).await
}

/// `DELETE /scim/v2/Groups/{id}`.
pub async fn delete_group(State(state): State<ApiState>, Caller(origin): Caller, Path(id): Path<String>) -> Answer {
    let sso = sso(&state)?;
    state.app.delete_scim_group(&origin, sso, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
