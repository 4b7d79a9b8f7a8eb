//! Request extraction at the boundary: JSON bodies with a size limit and with *every*
//! structural problem (wrong type, unknown field, missing field) listed, not only the first.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, FieldProblem};
use crate::state::AppState;

/// A JSON body parsed into `T`; the raw bytes are kept for idempotency hashing.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: bytes_like::Bytes,
}

pub mod bytes_like {
    pub type Bytes = axum::body::Bytes;
}

/// How many structural problems one response lists at most.
const MAX_PROBLEMS: usize = 50;

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.max_body_bytes;
        if let Some(len) = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            && len > limit
        {
            return Err(ApiError::PayloadTooLarge);
        }
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/json") {
            return Err(ApiError::BadQuery(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let body: Body = req.into_body();
        let raw = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        let value = parse_json(&raw)?;
        Ok(JsonBody { value, raw })
    }
}

pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let tree: Value = serde_json::from_slice(raw).map_err(|e| {
        ApiError::MalformedJson(format!(
            "line {} column {}: {}",
            e.line(),
            e.column(),
            short(&e)
        ))
    })?;
    deserialize_all_problems(tree)
}

fn short(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Deserialises `tree` into `T`. On failure, records the problem at its path, removes the
/// offending node and tries again, so the caller learns every structural problem at once.
pub fn deserialize_all_problems<T: DeserializeOwned>(mut tree: Value) -> Result<T, ApiError> {
    let mut problems: Vec<FieldProblem> = Vec::new();
    loop {
        match serde_path_to_error::deserialize::<_, T>(&tree) {
            Ok(v) if problems.is_empty() => return Ok(v),
            Ok(_) => return Err(ApiError::Validation(problems)),
            Err(err) => {
                let path = err.path().clone();
                let inner = err.into_inner();
                let msg = inner.to_string();
                let (pointer, code, message) = describe(&path, &msg);
                let removed = remove_at(&mut tree, &pointer, code == "unknown_field", &msg);
                if problems
                    .iter()
                    .any(|p| p.field == pointer && p.code == code)
                    || !removed
                {
                    problems.push(FieldProblem {
                        field: pointer,
                        code: code.into(),
                        message,
                    });
                    return Err(ApiError::Validation(dedup(problems)));
                }
                problems.push(FieldProblem {
                    field: pointer,
                    code: code.into(),
                    message,
                });
                if problems.len() >= MAX_PROBLEMS {
                    return Err(ApiError::Validation(problems));
                }
            }
        }
    }
}

fn dedup(mut v: Vec<FieldProblem>) -> Vec<FieldProblem> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|p| seen.insert((p.field.clone(), p.code.clone())));
    v
}

fn segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

fn to_pointer(segs: &[String]) -> String {
    segs.iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Turns serde's message into (pointer, code, message).
fn describe(path: &serde_path_to_error::Path, msg: &str) -> (String, &'static str, String) {
    let mut segs = segments(path);
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        // serde_path_to_error's path ends at the object; the unknown key is in the message.
        if segs.last().map(String::as_str) != Some(name) {
            segs.push(name.to_string());
        }
        return (
            to_pointer(&segs),
            "unknown_field",
            format!("unknown field `{name}`; it is not part of this request"),
        );
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        segs.push(name.to_string());
        return (
            to_pointer(&segs),
            "required",
            format!("`{name}` is required"),
        );
    }
    if msg.starts_with("invalid type") {
        return (to_pointer(&segs), "invalid_type", msg.to_string());
    }
    (to_pointer(&segs), "invalid_value", msg.to_string())
}

/// Removes the node at `pointer` (or, for a missing field, fills it with a placeholder that
/// will not trip the same error) so deserialisation can go on. Returns false when the tree
/// could not be changed (then retrying would loop).
fn remove_at(tree: &mut Value, pointer: &str, _unknown: bool, msg: &str) -> bool {
    let (parent_ptr, last) = match pointer.rfind('/') {
        Some(i) => (&pointer[..i], &pointer[i + 1..]),
        None => return false,
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let Some(parent) = tree.pointer_mut(parent_ptr) else {
        return false;
    };
    if msg.starts_with("missing field") {
        // A missing field: stop here; every other problem found so far is reported.
        return false;
    }
    if let Some(placeholder) = placeholder_for(msg) {
        // A value of the wrong type: put in one of the expected type so the rest of the
        // document is still checked (the problem is already recorded).
        return match parent {
            Value::Object(map) => map.insert(last, placeholder).is_some(),
            Value::Array(items) => match last.parse::<usize>() {
                Ok(i) if i < items.len() => {
                    items[i] = placeholder;
                    true
                }
                _ => false,
            },
            _ => false,
        };
    }
    match parent {
        Value::Object(map) => map.remove(&last).is_some(),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

fn placeholder_for(msg: &str) -> Option<Value> {
    let expected = msg.split(", expected ").nth(1)?;
    if expected.starts_with("a string") || expected.starts_with("string") {
        Some(Value::String("?".into()))
    } else if expected.starts_with("a sequence") {
        Some(Value::Array(Vec::new()))
    } else if expected.starts_with("struct") || expected.starts_with("a map") {
        Some(Value::Object(serde_json::Map::new()))
    } else if expected.starts_with("f64")
        || expected.starts_with("i64")
        || expected.starts_with("u")
    {
        Some(Value::from(0))
    } else if expected.starts_with("a boolean") {
        Some(Value::Bool(false))
    } else if expected.starts_with("UUID") {
        Some(Value::String("00000000-0000-0000-0000-000000000000".into()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::dto::CustomerIn;

    fn problems(json: &str) -> Vec<(String, String)> {
        match parse_json::<CustomerIn>(json.as_bytes()) {
            Err(ApiError::Validation(p)) => p.into_iter().map(|p| (p.field, p.code)).collect(),
            Err(other) => panic!("expected validation problems, got {other:?}"),
            Ok(_) => panic!("expected validation problems, got success"),
        }
    }

    #[test]
    fn every_structural_problem_is_listed() {
        let p = problems(
            r#"{"kind": 5, "identity": {"names": [{"full": 7}], "emails": "x", "shoe": 1}, "colour": "red"}"#,
        );
        for want in [
            ("/kind", "invalid_type"),
            ("/identity/names/0/full", "invalid_type"),
            ("/identity/emails", "invalid_type"),
            ("/identity/shoe", "unknown_field"),
            ("/colour", "unknown_field"),
        ] {
            assert!(
                p.contains(&(want.0.to_string(), want.1.to_string())),
                "missing {want:?} in {p:?}"
            );
        }
    }

    #[test]
    fn malformed_json_is_a_400_with_position() {
        match parse_json::<CustomerIn>(b"{\"kind\": ") {
            Err(ApiError::MalformedJson(m)) => assert!(m.contains("line 1"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_field_is_named() {
        let p = problems(r#"{"identity": {"names": []}}"#);
        assert!(
            p.contains(&("/kind".to_string(), "required".to_string())),
            "{p:?}"
        );
    }
}
