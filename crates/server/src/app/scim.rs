//! SCIM 2.0 provisioning (RFC 7643/7644): an identity provider (Okta, Entra ID) creates,
//! updates and deactivates people and groups, so that people who never sign in (engineers who
//! only use keys) are in the people directory with the home team their groups give, and an
//! offboarding is seen at once.
//!
//! After every change each affected person's directory row is recomputed: their usage `user`
//! is [`OidcSettings::usage_user`] of their primary email (else their userName), their team
//! [`OidcSettings::home_team`] of their groups' display names, the issuer `scim` and the
//! subject their SCIM id. A deactivation (`active: false`, or deleting the user) takes them out
//! of the directory, revokes their live sessions (by email), their own virtual keys and their
//! personal tokens (ingest and engineer), and refuses their sign-ins while it lasts. Each write
//! is audited once (`scim.user.*`, `scim.group.*`).
//!
//! Resources are read and written as JSON values here: IdPs send many attributes Goodhart
//! does not keep (they are ignored), booleans as strings ("True", Entra) and operations in any
//! case, so a strict typed reader would refuse what they send.

use std::collections::BTreeSet;

use goodhart_core::Micros;
use goodhart_store::directory::Member;
use goodhart_store::scim::{ScimGroup, ScimUser};
use goodhart_store::viewers::TokenRole;
use rand::Rng;
use serde_json::{Value, json};

use super::audit::{Event, Origin};
use super::sessions::Identity;
use super::{App, AppError};
use crate::oidc::OidcSettings;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The most resources one list answer holds.
pub const MAX_RESULTS: usize = 200;
/// The directory issuer of provisioned people.
pub const ISSUER: &str = "scim";

/// A SCIM error (RFC 7644 §3.12): its HTTP status, `scimType` where the RFC defines one, and
/// what was wrong.
#[derive(Debug)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// A storage failure's detail, for the server log (never shown).
    pub logged: Option<String>,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> ScimError {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            logged: None,
        }
    }

    pub fn invalid_value(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidValue"), detail)
    }

    fn not_found(what: &str, id: &str) -> ScimError {
        ScimError::new(404, None, format!("no {what} {id}"))
    }
}

impl From<AppError> for ScimError {
    fn from(error: AppError) -> ScimError {
        match error {
            AppError::Store(e) => ScimError {
                status: 503,
                scim_type: None,
                detail: "the database is unavailable; retry later".into(),
                logged: Some(e.to_string()),
            },
            AppError::NotFound { what } => ScimError::new(404, None, format!("no {what}")),
            AppError::Conflict(message) => ScimError::new(409, Some("uniqueness"), message),
            AppError::Unauthorized => ScimError::new(401, None, "missing or invalid token"),
            other => ScimError::invalid_value(other.to_string()),
        }
    }
}

impl From<goodhart_store::StoreError> for ScimError {
    fn from(error: goodhart_store::StoreError) -> ScimError {
        AppError::Store(error).into()
    }
}

/// A filter of a list request: `attribute eq "value"`, the only kind supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The attribute, lower-cased (`username`, `emails.value`, …).
    pub attribute: String,
    pub value: String,
}

impl Filter {
    /// Parses `attribute eq "value"` for one of `attributes` (lower-case); anything else is
    /// `invalidFilter`.
    pub fn parse(text: &str, attributes: &[&str]) -> Result<Filter, ScimError> {
        let invalid = |why: &str| {
            ScimError::new(
                400,
                Some("invalidFilter"),
                format!(
                    "filter {text:?}: {why}; supported: `{}` eq \"…\"",
                    attributes.join("`, `")
                ),
            )
        };
        let text = text.trim();
        let (attribute, rest) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid("not `attribute eq \"value\"`"))?;
        let (op, rest) = rest
            .trim_start()
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid("not `attribute eq \"value\"`"))?;
        if !op.eq_ignore_ascii_case("eq") {
            return Err(invalid(&format!("the operator {op:?} is not supported")));
        }
        let attribute = attribute.to_ascii_lowercase();
        let attribute = attribute
            .strip_prefix(&format!("{}:", USER_SCHEMA.to_ascii_lowercase()))
            .or_else(|| attribute.strip_prefix(&format!("{}:", GROUP_SCHEMA.to_ascii_lowercase())))
            .unwrap_or(&attribute)
            .to_owned();
        if !attributes.contains(&attribute.as_str()) {
            return Err(invalid(&format!("the attribute {attribute:?} cannot be filtered on")));
        }
        let value: String = serde_json::from_str(rest.trim())
            .map_err(|_| invalid("the value is not one JSON string (and/or are not supported)"))?;
        Ok(Filter { attribute, value })
    }
}

/// A list request's paging (`startIndex` is 1-based).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub start_index: usize,
    pub count: usize,
}

/// One page of resources and how many matched in all.
#[derive(Debug)]
pub struct Listed<T> {
    pub total: usize,
    pub start_index: usize,
    pub resources: Vec<T>,
}

fn page<T>(matched: Vec<T>, page: Page) -> Listed<T> {
    let total = matched.len();
    let start_index = page.start_index.max(1);
    let resources = matched
        .into_iter()
        .skip(start_index - 1)
        .take(page.count.min(MAX_RESULTS))
        .collect();
    Listed {
        total,
        start_index,
        resources,
    }
}

fn new_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// A string attribute: absent and null are none, a string is itself (empty: none).
fn string(value: &Value, name: &str) -> Result<Option<String>, ScimError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_owned())),
        other => Err(ScimError::invalid_value(format!(
            "attribute `{name}`: {other} is not a string"
        ))),
    }
}

/// A boolean attribute: `true`/`false`, or (as Entra ID sends them) the strings "True"/"False".
fn boolean(value: &Value, name: &str) -> Result<bool, ScimError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(ScimError::invalid_value(format!(
            "attribute `{name}`: {other} is not a boolean"
        ))),
    }
}

/// The attribute `name` of an object, its name ignoring case (SCIM attribute names are not
/// case-sensitive).
fn attribute<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The email a `emails` value gives: the primary one, else the work one, else the first.
fn email_of(emails: &Value) -> Result<Option<String>, ScimError> {
    let Value::Array(list) = emails else {
        return match emails {
            Value::Null => Ok(None),
            other => Err(ScimError::invalid_value(format!(
                "attribute `emails`: {other} is not a list"
            ))),
        };
    };
    let entries: Vec<&serde_json::Map<String, Value>> = list.iter().filter_map(Value::as_object).collect();
    let primary = entries
        .iter()
        .find(|e| attribute(e, "primary").is_some_and(|p| boolean(p, "primary").unwrap_or(false)))
        .or_else(|| {
            entries.iter().find(|e| {
                attribute(e, "type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("work"))
            })
        })
        .or_else(|| entries.first());
    match primary.and_then(|e| attribute(e, "value")) {
        Some(value) => string(value, "emails.value"),
        None => Ok(None),
    }
}

/// Sets one attribute of `user` (a path lower-cased, without schema) to `value` (null: removes it).
fn set_user_attribute(user: &mut ScimUser, path: &str, value: &Value) -> Result<(), ScimError> {
    match path {
        "username" => {
            user.user_name = string(value, "userName")?
                .ok_or_else(|| ScimError::invalid_value("attribute `userName` is required"))?;
        }
        "active" => {
            user.active = match value {
                Value::Null => false,
                other => boolean(other, "active")?,
            };
        }
        "displayname" => user.display_name = string(value, "displayName")?,
        "externalid" => user.external_id = string(value, "externalId")?,
        "name.givenname" => user.given_name = string(value, "name.givenName")?,
        "name.familyname" => user.family_name = string(value, "name.familyName")?,
        "name" => match value {
            Value::Object(name) => {
                for (key, part) in name {
                    match key.to_ascii_lowercase().as_str() {
                        "givenname" => user.given_name = string(part, "name.givenName")?,
                        "familyname" => user.family_name = string(part, "name.familyName")?,
                        _ => {}
                    }
                }
            }
            Value::Null => (user.given_name, user.family_name) = (None, None),
            other => {
                return Err(ScimError::invalid_value(format!(
                    "attribute `name`: {other} is not an object"
                )));
            }
        },
        "emails" => user.email = email_of(value)?,
        // Other emails than the work one are not kept.
        p if p.starts_with("emails[") && sets_work_email(p)? => user.email = string(value, "emails.value")?,
        // Attributes Goodhart does not keep (title, locale, phone numbers, …) are accepted and
        // ignored; `schemas`, `id` and `meta` are not the client's to set.
        _ => {}
    }
    Ok(())
}

/// A user from a POST or PUT body; `id`, `created_at` and `updated_at` from `base`.
fn user_from(body: &Value, base: ScimUser) -> Result<ScimUser, ScimError> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::new(400, Some("invalidSyntax"), "the body is not a JSON object"))?;
    let mut user = ScimUser {
        user_name: String::new(),
        external_id: None,
        display_name: None,
        given_name: None,
        family_name: None,
        email: None,
        active: true,
        ..base
    };
    let user_name = attribute(object, "userName").unwrap_or(&Value::Null);
    set_user_attribute(&mut user, "username", user_name)?;
    for (key, value) in object {
        let key = key.to_ascii_lowercase();
        if key != "username" {
            set_user_attribute(&mut user, &key, value)?;
        }
    }
    Ok(user)
}

/// The operations of a PATCH body (`{"schemas": [PatchOp], "Operations": [...]}`), each as
/// its op (lower-cased), path (if any) and value.
fn operations(body: &Value) -> Result<Vec<(String, Option<String>, Value)>, ScimError> {
    let syntax = |detail: String| ScimError::new(400, Some("invalidSyntax"), detail);
    let object = body
        .as_object()
        .ok_or_else(|| syntax("the body is not a JSON object".into()))?;
    let list = attribute(object, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("field `Operations`: a list of operations is required".into()))?;
    list.iter()
        .enumerate()
        .map(|(i, operation)| {
            let op = operation
                .get("op")
                .or_else(|| operation.get("Op"))
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .filter(|op| ["add", "replace", "remove"].contains(&op.as_str()))
                .ok_or_else(|| syntax(format!("field `Operations[{i}].op`: not add, replace or remove")))?;
            let path = operation
                .get("path")
                .or_else(|| operation.get("Path"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let value = operation
                .get("value")
                .or_else(|| operation.get("Value"))
                .cloned()
                .unwrap_or(Value::Null);
            Ok((op, path, value))
        })
        .collect()
}

/// A path lower-cased and without the core schema's prefix.
fn plain_path(path: &str, schema: &str) -> String {
    let lower = path.trim().to_ascii_lowercase();
    lower
        .strip_prefix(&format!("{}:", schema.to_ascii_lowercase()))
        .unwrap_or(&lower)
        .to_owned()
}

/// Whether a PATCH path names what only Goodhart sets (`id`, `meta`, a user's `groups`).
fn read_only(path: &str) -> bool {
    ["id", "meta", "groups"]
        .iter()
        .any(|name| path == *name || path.starts_with(&format!("{name}.")) || path.starts_with(&format!("{name}[")))
}

fn mutability(path: &str) -> ScimError {
    ScimError::new(400, Some("mutability"), format!("{path:?} is read-only"))
}

/// The email a `emails[type eq "…"].value` path sets: the work one is kept (the others are
/// not); a filter that does not parse is `invalidPath`.
fn sets_work_email(path: &str) -> Result<bool, ScimError> {
    let invalid = || {
        ScimError::new(
            400,
            Some("invalidPath"),
            format!("{path:?}: expected emails[type eq \"work\"].value"),
        )
    };
    let inner = path
        .strip_prefix("emails[")
        .and_then(|rest| rest.strip_suffix("].value"))
        .ok_or_else(invalid)?;
    let filter = Filter::parse(inner, &["type"]).map_err(|_| invalid())?;
    Ok(filter.value.eq_ignore_ascii_case("work"))
}

/// Applies a PATCH body to a user.
fn patch_user(user: &mut ScimUser, body: &Value) -> Result<(), ScimError> {
    for (op, path, value) in operations(body)? {
        match path {
            None => {
                if op == "remove" {
                    return Err(ScimError::new(400, Some("noTarget"), "a remove operation needs a path"));
                }
                let object = value
                    .as_object()
                    .ok_or_else(|| ScimError::invalid_value("an operation without a path needs an object value"))?;
                for (key, attribute_value) in object {
                    set_user_attribute(user, &plain_path(key, USER_SCHEMA), attribute_value)?;
                }
            }
            Some(path) => {
                let path = plain_path(&path, USER_SCHEMA);
                if read_only(&path) {
                    return Err(mutability(&path));
                }
                let value = if op == "remove" { Value::Null } else { value };
                set_user_attribute(user, &path, &value)?;
            }
        }
    }
    if user.user_name.is_empty() {
        return Err(ScimError::invalid_value("attribute `userName` is required"));
    }
    Ok(())
}

/// A group's members from a `members` value (`[{"value": id}, …]`).
fn member_ids(value: &Value) -> Result<Vec<String>, ScimError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(list) => list
            .iter()
            .map(|m| {
                m.get("value")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| ScimError::invalid_value(format!("attribute `members`: {m} has no string `value`")))
            })
            .collect(),
        other => Err(ScimError::invalid_value(format!(
            "attribute `members`: {other} is not a list"
        ))),
    }
}

/// The id of `members[value eq "id"]`.
fn member_filter(path: &str) -> Option<String> {
    let inner = path.strip_prefix("members[")?.strip_suffix(']')?;
    let filter = Filter::parse(inner, &["value"]).ok()?;
    Some(filter.value)
}

/// A group from a POST or PUT body; `id` and times from `base`.
fn group_from(body: &Value, base: ScimGroup) -> Result<ScimGroup, ScimError> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::new(400, Some("invalidSyntax"), "the body is not a JSON object"))?;
    let display_name = string(attribute(object, "displayName").unwrap_or(&Value::Null), "displayName")?
        .ok_or_else(|| ScimError::invalid_value("attribute `displayName` is required"))?;
    let external_id = string(attribute(object, "externalId").unwrap_or(&Value::Null), "externalId")?;
    let members = member_ids(attribute(object, "members").unwrap_or(&Value::Null))?;
    Ok(ScimGroup {
        display_name,
        external_id,
        members,
        ..base
    })
}

/// Applies a PATCH body to a group.
fn patch_group(group: &mut ScimGroup, body: &Value) -> Result<(), ScimError> {
    for (op, path, value) in operations(body)? {
        let path = path.map(|p| plain_path(&p, GROUP_SCHEMA));
        match (op.as_str(), path.as_deref()) {
            ("add" | "replace", None) => {
                let object = value
                    .as_object()
                    .ok_or_else(|| ScimError::invalid_value("an operation without a path needs an object value"))?;
                for (key, attribute_value) in object {
                    set_group_attribute(group, &op, &plain_path(key, GROUP_SCHEMA), attribute_value)?;
                }
            }
            (_, None) => {
                return Err(ScimError::new(400, Some("noTarget"), "a remove operation needs a path"));
            }
            ("remove", Some("members")) => {
                if value.is_null() {
                    group.members.clear();
                } else {
                    let gone = member_ids(&value)?;
                    group.members.retain(|m| !gone.contains(m));
                }
            }
            ("remove", Some(path)) if path.starts_with("members[") => {
                let id = member_filter(path).ok_or_else(|| {
                    ScimError::new(
                        400,
                        Some("invalidFilter"),
                        format!("{path:?}: expected members[value eq \"id\"]"),
                    )
                })?;
                group.members.retain(|m| *m != id);
            }
            ("remove", Some("externalid")) => group.external_id = None,
            ("remove", Some(path)) => {
                return Err(ScimError::new(
                    400,
                    Some("invalidPath"),
                    format!("the path {path:?} cannot be removed"),
                ));
            }
            (_, Some(path)) if read_only(path) => return Err(mutability(path)),
            (_, Some(path)) => set_group_attribute(group, &op, path, &value)?,
        }
    }
    Ok(())
}

fn set_group_attribute(group: &mut ScimGroup, op: &str, path: &str, value: &Value) -> Result<(), ScimError> {
    match path {
        "displayname" => {
            group.display_name = string(value, "displayName")?
                .ok_or_else(|| ScimError::invalid_value("attribute `displayName` is required"))?;
        }
        "externalid" => group.external_id = string(value, "externalId")?,
        "members" if op == "add" => {
            for id in member_ids(value)? {
                if !group.members.contains(&id) {
                    group.members.push(id);
                }
            }
        }
        "members" => group.members = member_ids(value)?,
        // `id`, `schemas` and `meta` (sent back with a resource) and attributes Goodhart does
        // not keep are ignored.
        _ => {}
    }
    Ok(())
}

/// What an offboarding revoked.
#[derive(Debug, Default)]
struct Offboarded {
    sessions: Vec<String>,
    keys: Vec<String>,
    tokens: Vec<String>,
}

impl App {
    /// The usage `user` a provisioned person is.
    pub fn scim_person(sso: &OidcSettings, user: &ScimUser) -> String {
        let email = user.email.as_deref().unwrap_or(&user.user_name);
        sso.usage_user(Some(email), &user.id)
    }

    pub async fn scim_users(&self) -> Result<Vec<ScimUser>, ScimError> {
        Ok(self.store().scim_users().await?)
    }

    pub async fn scim_groups(&self) -> Result<Vec<ScimGroup>, ScimError> {
        Ok(self.store().scim_groups().await?)
    }

    /// The users `filter` matches (all without one), one page of them.
    pub async fn list_scim_users(&self, filter: Option<&Filter>, page_of: Page) -> Result<Listed<ScimUser>, ScimError> {
        let users = self.scim_users().await?;
        let matched = users
            .into_iter()
            .filter(|u| match filter {
                None => true,
                Some(f) => match f.attribute.as_str() {
                    "username" => u.user_name.eq_ignore_ascii_case(&f.value),
                    "externalid" => u.external_id.as_deref() == Some(f.value.as_str()),
                    "emails.value" | "emails" => u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(&f.value)),
                    _ => false,
                },
            })
            .collect();
        Ok(page(matched, page_of))
    }

    pub async fn scim_user(&self, id: &str) -> Result<ScimUser, ScimError> {
        self.scim_users()
            .await?
            .into_iter()
            .find(|u| u.id == id)
            .ok_or_else(|| ScimError::not_found("user", id))
    }

    /// The groups `filter` matches (all without one), one page of them.
    pub async fn list_scim_groups(
        &self,
        filter: Option<&Filter>,
        page_of: Page,
    ) -> Result<Listed<ScimGroup>, ScimError> {
        let groups = self.scim_groups().await?;
        let matched = groups
            .into_iter()
            .filter(|g| match filter {
                None => true,
                Some(f) => match f.attribute.as_str() {
                    "displayname" => g.display_name.eq_ignore_ascii_case(&f.value),
                    "externalid" => g.external_id.as_deref() == Some(f.value.as_str()),
                    _ => false,
                },
            })
            .collect();
        Ok(page(matched, page_of))
    }

    pub async fn scim_group(&self, id: &str) -> Result<ScimGroup, ScimError> {
        self.scim_groups()
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| ScimError::not_found("group", id))
    }

    /// `POST /scim/v2/Users`.
    pub async fn create_scim_user(
        &self,
        origin: &Origin,
        sso: &OidcSettings,
        body: &Value,
    ) -> Result<ScimUser, ScimError> {
        let _one_at_a_time = self.scim_writes.lock().await;
        let now = self.now();
        let base = ScimUser {
            id: new_id(),
            user_name: String::new(),
            external_id: None,
            display_name: None,
            given_name: None,
            family_name: None,
            email: None,
            active: true,
            created_at: now,
            updated_at: now,
        };
        let user = user_from(body, base)?;
        self.unique_user_name(&user).await?;
        self.store().put_scim_user(&user).await?;
        let offboarded = self
            .sync_person(sso, None, Some(&user), &self.scim_groups().await?)
            .await?;
        self.audit_user(origin, sso, "scim.user.create", &user, &offboarded)
            .await?;
        Ok(user)
    }

    /// `PUT /scim/v2/Users/{id}` (replace) or `PATCH` (operations).
    pub async fn update_scim_user(
        &self,
        origin: &Origin,
        sso: &OidcSettings,
        id: &str,
        body: &Value,
        patch: bool,
    ) -> Result<ScimUser, ScimError> {
        let _one_at_a_time = self.scim_writes.lock().await;
        let before = self.scim_user(id).await?;
        let mut user = if patch {
            let mut user = before.clone();
            patch_user(&mut user, body)?;
            user
        } else {
            user_from(body, before.clone())?
        };
        user.updated_at = self.now();
        self.unique_user_name(&user).await?;
        self.store().put_scim_user(&user).await?;
        let offboarded = self
            .sync_person(sso, Some(&before), Some(&user), &self.scim_groups().await?)
            .await?;
        let action = if before.active && !user.active {
            "scim.user.deactivate"
        } else {
            "scim.user.update"
        };
        self.audit_user(origin, sso, action, &user, &offboarded).await?;
        Ok(user)
    }

    /// `DELETE /scim/v2/Users/{id}`: the person is offboarded.
    pub async fn delete_scim_user(&self, origin: &Origin, sso: &OidcSettings, id: &str) -> Result<(), ScimError> {
        let _one_at_a_time = self.scim_writes.lock().await;
        let before = self.scim_user(id).await?;
        if !self.store().delete_scim_user(id).await? {
            return Err(ScimError::not_found("user", id));
        }
        let offboarded = self.sync_person(sso, Some(&before), None, &[]).await?;
        self.audit_user(origin, sso, "scim.user.delete", &before, &offboarded)
            .await?;
        Ok(())
    }

    /// `POST /scim/v2/Groups`.
    pub async fn create_scim_group(
        &self,
        origin: &Origin,
        sso: &OidcSettings,
        body: &Value,
    ) -> Result<ScimGroup, ScimError> {
        let _one_at_a_time = self.scim_writes.lock().await;
        let now = self.now();
        let base = ScimGroup {
            id: new_id(),
            display_name: String::new(),
            external_id: None,
            members: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let group = group_from(body, base)?;
        self.write_group(origin, sso, "scim.group.create", None, group).await
    }

    /// `PUT /scim/v2/Groups/{id}` (replace) or `PATCH` (operations).
    pub async fn update_scim_group(
        &self,
        origin: &Origin,
        sso: &OidcSettings,
        id: &str,
        body: &Value,
        patch: bool,
    ) -> Result<ScimGroup, ScimError> {
        let _one_at_a_time = self.scim_writes.lock().await;
        let before = self.scim_group(id).await?;
        let mut group = if patch {
            let mut group = before.clone();
            patch_group(&mut group, body)?;
            group
        } else {
            group_from(body, before.clone())?
        };
        group.updated_at = self.now();
        self.write_group(origin, sso, "scim.group.update", Some(&before), group)
            .await
    }

    /// `DELETE /scim/v2/Groups/{id}`: its members' home teams are recomputed without it.
    pub async fn delete_scim_group(&self, origin: &Origin, sso: &OidcSettings, id: &str) -> Result<(), ScimError> {
        let _one_at_a_time = self.scim_writes.lock().await;
        let before = self.scim_group(id).await?;
        if !self.store().delete_scim_group(id).await? {
            return Err(ScimError::not_found("group", id));
        }
        self.sync_members(sso, &before.members).await?;
        let event = Event::new("scim.group.delete")
            .on("scim_group", before.id.clone())
            .with(json!({ "display_name": before.display_name, "members": before.members.len() }));
        self.audit(origin, event).await?;
        Ok(())
    }

    async fn write_group(
        &self,
        origin: &Origin,
        sso: &OidcSettings,
        action: &'static str,
        before: Option<&ScimGroup>,
        mut group: ScimGroup,
    ) -> Result<ScimGroup, ScimError> {
        let groups = self.scim_groups().await?;
        if groups
            .iter()
            .any(|g| g.id != group.id && g.display_name.eq_ignore_ascii_case(&group.display_name))
        {
            return Err(ScimError::new(
                409,
                Some("uniqueness"),
                format!("a group named {:?} exists", group.display_name),
            ));
        }
        let users = self.scim_users().await?;
        if let Some(unknown) = group.members.iter().find(|m| !users.iter().any(|u| &u.id == *m)) {
            return Err(ScimError::invalid_value(format!(
                "attribute `members`: no user {unknown}"
            )));
        }
        group.members.sort_unstable();
        group.members.dedup();
        self.store().put_scim_group(&group).await?;
        let affected: BTreeSet<String> = group
            .members
            .iter()
            .chain(before.map(|b| b.members.iter()).into_iter().flatten())
            .cloned()
            .collect();
        self.sync_members(sso, &affected.into_iter().collect::<Vec<_>>())
            .await?;
        let event = Event::new(action)
            .on("scim_group", group.id.clone())
            .with(json!({ "display_name": group.display_name, "members": group.members.len() }));
        self.audit(origin, event).await?;
        Ok(group)
    }

    async fn unique_user_name(&self, user: &ScimUser) -> Result<(), ScimError> {
        let users = self.scim_users().await?;
        if users
            .iter()
            .any(|u| u.id != user.id && u.user_name.eq_ignore_ascii_case(&user.user_name))
        {
            return Err(ScimError::new(
                409,
                Some("uniqueness"),
                format!("a user named {:?} exists", user.user_name),
            ));
        }
        Ok(())
    }

    async fn audit_user(
        &self,
        origin: &Origin,
        sso: &OidcSettings,
        action: &'static str,
        user: &ScimUser,
        offboarded: &Offboarded,
    ) -> Result<(), ScimError> {
        let event = Event::new(action).on("scim_user", user.id.clone()).with(json!({
            "user_name": user.user_name,
            "user": Self::scim_person(sso, user),
            "active": user.active,
            "revoked_sessions": offboarded.sessions,
            "revoked_keys": offboarded.keys,
            "revoked_tokens": offboarded.tokens,
        }));
        Ok(self.audit(origin, event).await?)
    }

    /// Recomputes the directory rows of the users `ids` (the users and groups read once).
    async fn sync_members(&self, sso: &OidcSettings, ids: &[String]) -> Result<(), ScimError> {
        let (users, groups) = (self.scim_users().await?, self.scim_groups().await?);
        for user in users.iter().filter(|u| ids.contains(&u.id)) {
            self.sync_person(sso, Some(user), Some(user), &groups).await?;
        }
        Ok(())
    }

    /// Brings the directory in line with a person's change from `before` to `after` (none:
    /// not there), offboarding them when they stop being active.
    async fn sync_person(
        &self,
        sso: &OidcSettings,
        before: Option<&ScimUser>,
        after: Option<&ScimUser>,
        groups: &[ScimGroup],
    ) -> Result<Offboarded, ScimError> {
        let old = before.map(|u| Self::scim_person(sso, u));
        let new = after.filter(|u| u.active).map(|u| Self::scim_person(sso, u));
        if let Some(old) = &old
            && new.as_ref() != Some(old)
        {
            self.store().forget_member(old).await?;
        }
        if let (Some(user), Some(person)) = (after, &new) {
            let names: Vec<String> = groups
                .iter()
                .filter(|g| g.members.contains(&user.id))
                .map(|g| g.display_name.clone())
                .collect();
            let member = Member {
                user: person.clone(),
                team: sso.home_team(&names),
                email: user.email.clone(),
                issuer: ISSUER.to_owned(),
                subject: user.id.clone(),
                updated_at: self.now(),
            };
            self.store().record_member(&member).await?;
        }
        let was_active = before.is_none_or(|u| u.active);
        match (was_active, new.is_none(), before.or(after)) {
            (true, true, Some(user)) => self.offboard(sso, user).await,
            _ => Ok(Offboarded::default()),
        }
    }

    /// Revokes what a person who left holds: live sessions (by email), their own virtual keys
    /// and personal tokens.
    async fn offboard(&self, sso: &OidcSettings, user: &ScimUser) -> Result<Offboarded, ScimError> {
        let person = Self::scim_person(sso, user);
        let now = self.now();
        let mut done = Offboarded::default();
        let addresses: Vec<&str> = user
            .email
            .iter()
            .map(String::as_str)
            .chain([user.user_name.as_str()])
            .collect();
        for session in self.store().live_sessions(now).await? {
            let email = session.email.as_deref();
            let theirs = email.is_some_and(|e| addresses.iter().any(|a| a.eq_ignore_ascii_case(e)))
                || sso.usage_user(email, &session.subject) == person;
            if theirs && self.store().revoke_session(&session.id, now).await? {
                done.sessions.push(session.id);
            }
        }
        for key in self.store().keys().await? {
            if key.scope.user == person && key.revoked_at.is_none() && self.store().revoke_key(&key.id, now).await? {
                done.keys.push(key.id);
            }
        }
        if !done.keys.is_empty() {
            self.forget_keys();
        }
        for token in self.store().viewers().await? {
            let personal = matches!(token.role, TokenRole::Ingest | TokenRole::Engineer);
            if personal
                && token.user.as_deref() == Some(person.as_str())
                && token.revoked_at.is_none()
                && self.store().revoke_viewer(&token.id, now).await?
            {
                done.tokens.push(token.id);
            }
        }
        Ok(done)
    }

    /// Whether a SCIM user for the person signing in is deactivated (their sign-in is refused).
    pub async fn deactivated_by_scim(&self, sso: &OidcSettings, identity: &Identity) -> Result<bool, AppError> {
        let person = sso.usage_user(identity.email.as_deref(), &identity.subject);
        let users = self.store().scim_users().await?;
        Ok(users.iter().any(|u| {
            !u.active
                && (Self::scim_person(sso, u) == person
                    || identity.email.as_deref().is_some_and(|e| {
                        u.email.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(e))
                            || u.user_name.eq_ignore_ascii_case(e)
                    }))
        }))
    }
}

/// When `at` was, as SCIM's `meta` says it.
pub fn timestamp(at: Micros) -> String {
    at.rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_eq_on_known_attributes_ignoring_case() {
        let filter = Filter::parse(r#"userName Eq "ana@example.com""#, &["username"]).unwrap();
        assert_eq!(filter.attribute, "username");
        assert_eq!(filter.value, "ana@example.com");
        let filter = Filter::parse(r#"emails.value eq "a \"b\"""#, &["emails.value"]).unwrap();
        assert_eq!(filter.value, "a \"b\"");
        for bad in [
            r#"userName co "ana""#,
            r#"title eq "x""#,
            "userName eq ana",
            r#"userName eq "a" and active eq true"#,
        ] {
            let error = Filter::parse(bad, &["username"]).unwrap_err();
            assert_eq!((error.status, error.scim_type), (400, Some("invalidFilter")), "{bad}");
        }
    }

    #[test]
    fn entra_patches_replace_with_capitals_and_string_booleans() {
        let mut user = ScimUser {
            id: "u".into(),
            user_name: "ana@example.com".into(),
            external_id: None,
            display_name: None,
            given_name: None,
            family_name: None,
            email: None,
            active: true,
            created_at: Micros(0),
            updated_at: Micros(0),
        };
        let body = json!({"schemas": [PATCH_SCHEMA], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ana@corp.example"},
            {"op": "replace", "value": {"displayName": "Ana", "name.familyName": "Lopez"}},
        ]});
        patch_user(&mut user, &body).unwrap();
        assert!(!user.active);
        assert_eq!(user.email.as_deref(), Some("ana@corp.example"));
        assert_eq!(user.display_name.as_deref(), Some("Ana"));
        assert_eq!(user.family_name.as_deref(), Some("Lopez"));
        let ignored = json!({"Operations": [
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "ana@home.example"},
            {"op": "replace", "path": "title", "value": "Engineer"},
        ]});
        patch_user(&mut user, &ignored).unwrap();
        assert_eq!(
            user.email.as_deref(),
            Some("ana@corp.example"),
            "the work email is kept"
        );
        let read_only = json!({"Operations": [{"op": "replace", "path": "id", "value": "x"}]});
        assert_eq!(
            patch_user(&mut user, &read_only).unwrap_err().scim_type,
            Some("mutability")
        );
        let broken = json!({"Operations": [{"op": "add", "path": "emails[type co \"w\"].value", "value": "x"}]});
        assert_eq!(
            patch_user(&mut user, &broken).unwrap_err().scim_type,
            Some("invalidPath")
        );
    }
}
