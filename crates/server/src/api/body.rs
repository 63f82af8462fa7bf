//! Reading request bodies: bounded (by `Content-Length` and while reading, compressed or not),
//! gzip-decoded on request, and parsed item by item from a JSON array or NDJSON with the line
//! and the field of the first error named — a JSON syntax error too (`NaN`, a number out of
//! range, a broken escape), not just a wrong type. Every endpoint that takes a body reads it
//! here.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use goodhart_core::Micros;
use http_body_util::BodyExt;
use serde_json::value::RawValue;

use super::error::ApiError;
use crate::app::usage::MAX_FUTURE_SKEW_MICROS;

pub fn is_ndjson(headers: &HeaderMap, text: &str) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("ndjson") || content_type.contains("jsonl") || content_type.contains("json-seq") {
        return true;
    }
    if content_type.starts_with("application/json") {
        return false;
    }
    !text.trim_start().starts_with('[')
}

/// Reads the whole body, gunzipping it if asked, never holding more than `limit` bytes.
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge { limit };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let collected = http_body_util::Limited::new(body, limit).collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            too_large()
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })?;
    let raw = collected.to_bytes();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => {
            let mut decoded = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
            // Read one byte past the limit to tell "exactly at the limit" from "over it".
            flate2::read::MultiGzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut decoded)
                .map_err(|e| ApiError::BadRequest(format!("body is not valid gzip: {e}")))?;
            if decoded.len() > limit {
                return Err(too_large());
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(ApiError::UnsupportedEncoding(other.to_owned())),
    }
}

/// The body as UTF-8 text.
pub fn text(raw: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(raw).map_err(|e| ApiError::BadRequest(format!("body is not UTF-8: {e}")))
}

/// Parses each item of a JSON array or NDJSON body with `parse`, which gets the item's line.
pub fn parse_items<T>(
    text: &str,
    ndjson: bool,
    what: &str,
    parse: impl FnMut(usize, &str) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let items: Vec<(usize, &str)> = if ndjson {
        text.split('\n')
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty())
            .collect()
    } else {
        let values: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
            // The path of the value being read, `[1].input_tokens`, less the item's index.
            let field = error_path(text.as_bytes())
                .and_then(|path| Some(path.split_once("].")?.1.to_owned()))
                .filter(|field| !field.is_empty());
            let line = e.line();
            let message = match &field {
                Some(f) => format!("line {line}: field `{f}`: the body is not a JSON array of {what}: {e}"),
                None => format!("line {line}: the body is not a JSON array of {what}: {e}"),
            };
            ApiError::InvalidEvent { line, field, message }
        })?;
        values.into_iter().map(|v| (line_of(text, v.get()), v.get())).collect()
    };
    let mut parse = parse;
    items.into_iter().map(|(line, item)| parse(line, item)).collect()
}

/// Deserialises one item strictly, naming the field (and line) of any error.
pub fn deserialize_item<T: serde::de::DeserializeOwned>(line: usize, item: &str) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_str(item);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        let inner = e.into_inner();
        // serde names unknown and missing fields in its message; lift them into `field` too.
        let field = field.or_else(|| quoted_field(&inner.to_string()));
        let message = match &field {
            Some(f) => format!("line {line}: field `{f}`: {inner}"),
            None => format!("line {line}: {inner}"),
        };
        ApiError::InvalidEvent { line, field, message }
    })
}

/// A JSON body read into `T`, strictly: an error names the field (`thresholds[0]`) and why.
pub fn deserialize_body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let path = if path == "." {
            // A syntax error stops the typed reader before it names a field; plain values go on
            // to where the error is.
            error_path(raw).unwrap_or(path)
        } else {
            path
        };
        match path.as_str() {
            "." => ApiError::BadRequest(format!("request body: {inner}")),
            _ => ApiError::BadRequest(format!("request body: field `{path}`: {inner}")),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("request body: {e}")))?;
    Ok(value)
}

/// Where in a JSON document that fails to parse the failure is: the path of the value being
/// read (`[1].input_tokens`), or `None` at the top.
pub fn error_path(raw: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    match serde_path_to_error::deserialize::<_, serde_json::Value>(&mut deserializer) {
        // `?` stands for a key the error came before: the path stops short of it.
        Err(e) => {
            let path = e.path().to_string();
            let known = path.split('?').next().unwrap_or_default().trim_end_matches('.');
            Some(known.to_owned()).filter(|path| !path.is_empty())
        }
        Ok(_) => None,
    }
}

/// Refuses timestamps before 1970 or more than a day ahead.
pub fn check_timestamp(line: usize, at: Micros, now: Micros) -> Result<(), ApiError> {
    if at.0 < 0 || at.0 > now.0 + MAX_FUTURE_SKEW_MICROS {
        return Err(ApiError::InvalidEvent {
            line,
            field: Some("timestamp".into()),
            message: format!(
                "line {line}: field `timestamp`: {} is before 1970 or more than a day in the future",
                at.rfc3339()
            ),
        });
    }
    Ok(())
}

/// The 1-based line of `text` on which `slice` (a sub-slice of it) starts.
fn line_of(text: &str, slice: &str) -> usize {
    let offset = (slice.as_ptr() as usize)
        .saturating_sub(text.as_ptr() as usize)
        .min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The first backquoted name in a serde message such as "unknown field `tokens`, expected …".
fn quoted_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_field_they_are_in() {
        assert_eq!(
            error_path(br#"[{"a": 1}, {"user": "x", "input_tokens": NaN}]"#).as_deref(),
            Some("[1].input_tokens")
        );
        assert_eq!(
            error_path(br#"{"limits": {"rpm": 1e400}}"#).as_deref(),
            Some("limits.rpm")
        );
        assert_eq!(error_path(b"{not json"), None);
        let error = deserialize_body::<std::collections::BTreeMap<String, u64>>(br#"{"rpm": -1}"#).unwrap_err();
        assert!(error.to_string().contains("field `rpm`"), "{error}");
        let error = deserialize_body::<std::collections::BTreeMap<String, u64>>(br#"{"rpm": 1} {}"#).unwrap_err();
        assert!(error.to_string().contains("trailing characters"), "{error}");
    }

    #[test]
    fn format_is_sniffed_without_a_content_type() {
        let headers = HeaderMap::new();
        assert!(!is_ndjson(&headers, "  [ {} ]"));
        assert!(is_ndjson(&headers, "{}\n{}"));
    }
}
