//! Parsing manifest files (multi-document YAML or JSON) into JSON values.

use serde::Deserialize;
use serde_json::Value;

use super::Problem;

/// One non-empty document of a file.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// Where the document starts, when known (for problems about its content).
    pub line: Option<usize>,
    pub value: Value,
}

/// Decodes a file as UTF-8, or says where it stops being UTF-8.
pub(crate) fn decode<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Problem> {
    match std::str::from_utf8(bytes) {
        // A BOM is legal UTF-8 but trips the parsers.
        Ok(text) => Ok(text.strip_prefix('\u{feff}').unwrap_or(text)),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            Err(Problem::at(
                file,
                Some(line),
                Some(column),
                "file is not valid UTF-8; save it as UTF-8 (binary data belongs in a Secret's base64 `data`)",
            ))
        }
    }
}

/// Parses a `.json` file or a (multi-document) YAML file. Empty documents are dropped.
/// A syntax error is reported at its line and column, and stops that file.
pub(crate) fn parse(file: &str, text: &str) -> Result<Vec<Document>, Problem> {
    if file.ends_with(".json") {
        parse_json(file, text)
    } else {
        parse_yaml(file, text)
    }
}

fn parse_json(file: &str, text: &str) -> Result<Vec<Document>, Problem> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(value) => Ok(vec![Document {
            line: Some(1),
            value,
        }]),
        Err(e) => Err(Problem::at(
            file,
            Some(e.line()),
            Some(e.column()),
            format!("invalid JSON: {}", strip_position(&e.to_string())),
        )),
    }
}

fn parse_yaml(file: &str, text: &str) -> Result<Vec<Document>, Problem> {
    let starts = document_starts(text);
    let mut docs = Vec::new();
    let mut count = 0;
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        count = i + 1;
        let value = serde_yaml::Value::deserialize(de).map_err(|e| {
            let loc = e.location();
            Problem::at(
                file,
                loc.as_ref().map(|l| l.line()),
                loc.as_ref().map(|l| l.column()),
                format!("invalid YAML: {}", strip_position(&e.to_string())),
            )
        })?;
        let value = yaml_to_json(value);
        if !value.is_null() {
            docs.push((i, value));
        }
    }
    // Document lines are only trusted when our split agrees with the parser's.
    let trusted = starts.len() == count;
    Ok(docs
        .into_iter()
        .map(|(i, value)| Document {
            line: if trusted { starts[i] } else { None },
            value,
        })
        .collect())
}

/// Drops the " at line X column Y" the parsers put in messages; the position is
/// reported separately.
pub(crate) fn strip_position(message: &str) -> String {
    let mut out = message.to_string();
    while let Some(start) = out.find(" at line ") {
        let rest = &out[start + " at line ".len()..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let line_len = digits(rest);
        let Some(after_col) = rest[line_len..].strip_prefix(" column ") else {
            break;
        };
        let col_len = digits(after_col);
        if line_len == 0 || col_len == 0 {
            break;
        }
        let end = start + " at line ".len() + line_len + " column ".len() + col_len;
        out.replace_range(start..end, "");
    }
    out
}

/// First content line of each document, splitting at `---` lines. A part with
/// no content before the first `---` is not a document.
fn document_starts(text: &str) -> Vec<Option<usize>> {
    let mut starts: Vec<Option<usize>> = vec![None];
    for (n, line) in text.lines().enumerate() {
        let rest = line
            .strip_prefix("---")
            .filter(|r| r.is_empty() || r.starts_with([' ', '\t']));
        let content = match rest {
            Some(rest) => {
                starts.push(None);
                rest.trim()
            }
            None => line.trim(),
        };
        if !content.is_empty() && !content.starts_with('#') && !content.starts_with('%') {
            let last = starts.last_mut().expect("never empty");
            last.get_or_insert(n + 1);
        }
    }
    if starts.len() > 1 && starts[0].is_none() {
        starts.remove(0);
    }
    starts
}

/// Converts YAML to JSON the way Kubernetes does: keys become strings, tags are dropped.
fn yaml_to_json(value: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map_or_else(|| Value::String(n.to_string()), Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (key_string(k), yaml_to_json(v)))
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

fn key_string(key: serde_yaml::Value) -> String {
    match key {
        serde_yaml::Value::String(s) => s,
        serde_yaml::Value::Null => "null".to_string(),
        other => match yaml_to_json(other) {
            Value::String(s) => s,
            v => v.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_document_yaml_skips_empty_documents_and_knows_lines() {
        let text = "# header\n---\na: 1\n---\n---\n# only a comment\n---\nb: 2\nc: [1, 2]\n";
        let docs = parse("f.yaml", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, json!({"a": 1}));
        assert_eq!(docs[0].line, Some(3));
        assert_eq!(docs[1].value, json!({"b": 2, "c": [1, 2]}));
        assert_eq!(docs[1].line, Some(8));
    }

    #[test]
    fn empty_files_have_no_documents() {
        assert!(parse("f.yaml", "").unwrap().is_empty());
        assert!(parse("f.yaml", "# nothing\n").unwrap().is_empty());
        assert!(parse("f.json", "  \n").unwrap().is_empty());
    }

    #[test]
    fn yaml_syntax_error_has_line_and_column() {
        let text = "a: 1\n---\nkind: Service\nmetadata:\n  name: [x\n";
        let p = parse("deploy/web/svc.yaml", text).unwrap_err();
        assert_eq!(p.file, "deploy/web/svc.yaml");
        assert_eq!(p.line, Some(6));
        assert!(p.column.is_some());
        assert!(p.message.starts_with("invalid YAML"), "{}", p.message);
        assert!(!p.message.contains(" at line "), "{}", p.message);
        assert!(
            p.message.ends_with(", while parsing a flow sequence"),
            "{}",
            p.message
        );

        let p = parse("x.yaml", "a: 1\n  b: 2\n").unwrap_err();
        assert_eq!((p.line, p.column), (Some(2), Some(4)));
    }

    #[test]
    fn json_syntax_error_has_line_and_column() {
        let p = parse("x.json", "{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err();
        assert_eq!((p.line, p.column), (Some(3), Some(7)));
        assert!(p.message.starts_with("invalid JSON"), "{}", p.message);
    }

    #[test]
    fn non_string_keys_become_strings() {
        let docs = parse("f.yaml", "data:\n  1: one\n  true: yes\n").unwrap();
        assert_eq!(docs[0].value, json!({"data": {"1": "one", "true": "yes"}}));
    }

    #[test]
    fn non_utf8_is_reported_with_position() {
        let p = decode("bin.yaml", b"a: 1\nb: \xff\xfe").unwrap_err();
        assert_eq!(p.file, "bin.yaml");
        assert_eq!((p.line, p.column), (Some(2), Some(4)));
        assert!(p.message.contains("UTF-8"));
        assert_eq!(decode("x", "\u{feff}a".as_bytes()).unwrap(), "a");
    }
}
