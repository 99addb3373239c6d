//! Canonical JSON and the hashes built on it (release id, workload revision).
//!
//! Keys are sorted here explicitly rather than trusting `serde_json::Map`'s
//! order: the `preserve_order` feature may be switched on by any crate in the
//! build, and then key order in the YAML would change every hash.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` as compact JSON with object keys sorted.
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// First `len` hex characters of the sha256 of `parts`, each followed by a newline
/// (so part boundaries cannot shift content from one part to the next unnoticed).
pub(crate) fn short_sha256<'a>(parts: impl IntoIterator<Item = &'a str>, len: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    let mut hex = hex::encode(hasher.finalize());
    hex.truncate(len);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": "q\"", "x": null}], "c": true}});
        assert_eq!(
            canonical(&v),
            r#"{"a":{"c":true,"z":[3,{"x":null,"y":"q\""}]},"b":1}"#
        );
    }

    #[test]
    fn short_sha256_has_requested_length() {
        let h = short_sha256(["a", "b"], 12);
        assert_eq!(h.len(), 12);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(h, short_sha256(["ab"], 12));
    }
}
