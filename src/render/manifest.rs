//! Turning parsed documents into objects: `List` expansion and required fields.

use serde_json::Value;

use super::{Object, Problem};

/// Expands a `v1` `List` into its items; any other document is itself.
pub(crate) fn expand_list(
    file: &str,
    line: Option<usize>,
    value: Value,
) -> Result<Vec<Value>, Problem> {
    let is_list = value.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && value.get("kind").and_then(Value::as_str) == Some("List");
    if !is_list {
        return Ok(vec![value]);
    }
    match value.get("items") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(Problem::at(
            file,
            line,
            None,
            "`items` of a List must be a list of objects",
        )),
    }
}

/// Checks the fields every object needs and builds the [`Object`].
pub(crate) fn to_object(
    file: &str,
    line: Option<usize>,
    manifest: Value,
) -> Result<Object, Problem> {
    let Some(map) = manifest.as_object() else {
        return Err(Problem::at(
            file,
            line,
            None,
            format!(
                "expected a Kubernetes object (a mapping with apiVersion, kind, metadata), found {}",
                type_name(&manifest)
            ),
        ));
    };
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut field = |name: &'static str, value: Option<&Value>| -> String {
        match value {
            None | Some(Value::Null) => {
                missing.push(name);
                String::new()
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                missing.push(name);
                String::new()
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                wrong.push(name);
                String::new()
            }
        }
    };
    let api_version = field("apiVersion", map.get("apiVersion"));
    let kind = field("kind", map.get("kind"));
    let metadata = map.get("metadata");
    let name = field("metadata.name", metadata.and_then(|m| m.get("name")));
    let namespace = match metadata.and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            wrong.push("metadata.namespace");
            None
        }
    };
    let mut messages = Vec::new();
    if !missing.is_empty() {
        let mut msg = format!(
            "object{} is missing {}; every manifest needs apiVersion, kind and metadata.name",
            describe(&kind, &name),
            missing.join(", ")
        );
        if missing.contains(&"metadata.name")
            && metadata.and_then(|m| m.get("generateName")).is_some()
        {
            msg.push_str(
                " (metadata.generateName is not supported: names must be stable to be pruned)",
            );
        }
        messages.push(msg);
    }
    if !wrong.is_empty() {
        messages.push(format!("{} must be a string", wrong.join(", ")));
    }
    if !messages.is_empty() {
        return Err(Problem::at(file, line, None, messages.join("; ")));
    }
    Ok(Object {
        file: file.to_string(),
        api_version,
        kind,
        name,
        namespace,
        manifest,
    })
}

/// " Deployment web" with what is known, for naming a half-written object.
fn describe(kind: &str, name: &str) -> String {
    [kind, name]
        .iter()
        .filter(|s| !s.is_empty())
        .fold(String::new(), |acc, s| format!("{acc} {s}"))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_are_named() {
        let p = to_object(
            "a.yaml",
            Some(4),
            json!({"kind": "Service", "metadata": {}}),
        )
        .unwrap_err();
        assert_eq!((p.file.as_str(), p.line), ("a.yaml", Some(4)));
        assert!(
            p.message
                .starts_with("object Service is missing apiVersion, metadata.name;"),
            "{}",
            p.message
        );
        let p = to_object(
            "a.yaml",
            None,
            json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
        )
        .unwrap_err();
        assert!(
            p.message.starts_with("object x is missing kind;"),
            "{}",
            p.message
        );
        let p = to_object(
            "a.yaml",
            None,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "x-"}}),
        )
        .unwrap_err();
        assert!(
            p.message.contains("generateName is not supported"),
            "{}",
            p.message
        );
        let p = to_object("a.yaml", None, json!(["a"])).unwrap_err();
        assert!(p.message.contains("found a list"), "{}", p.message);
        let p = to_object(
            "a.yaml",
            None,
            json!({"apiVersion": 1, "kind": "Pod", "metadata": {"name": "x"}}),
        )
        .unwrap_err();
        assert!(
            p.message.contains("apiVersion must be a string"),
            "{}",
            p.message
        );
    }

    #[test]
    fn namespace_is_kept_as_written() {
        let o = to_object("a.yaml", None, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "shop"}}))
            .unwrap();
        assert_eq!(o.namespace.as_deref(), Some("shop"));
        let o = to_object(
            "a.yaml",
            None,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}),
        )
        .unwrap();
        assert_eq!(o.namespace, None);
    }

    #[test]
    fn lists_expand() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [{"a": 1}, {"b": 2}]});
        assert_eq!(expand_list("f", None, list).unwrap().len(), 2);
        let other = json!({"apiVersion": "example.com/v1", "kind": "List", "items": 3});
        assert_eq!(expand_list("f", None, other).unwrap().len(), 1);
        assert!(expand_list(
            "f",
            None,
            json!({"apiVersion": "v1", "kind": "List", "items": 3})
        )
        .is_err());
    }
}
