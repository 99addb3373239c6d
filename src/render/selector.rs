//! The checks the API server makes of a workload's selector, made at render.
//!
//! A Deployment is never sent as declared: its minted ReplicaSet is (with a
//! revision label added to selector and pods), so the server's own validation
//! of the Deployment never runs. Without these checks a Deployment the API
//! server would refuse (no selector, one that selects none of its pods) would
//! be delivered.

use serde_json::{Map, Value};

use super::{Object, Problem};

/// Kinds whose `spec.selector` must select `spec.template`'s labels.
const SELECTING_KINDS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"];

/// The problems of `obj`'s selector, as the API server words them where it can.
pub(crate) fn check(file: &str, line: Option<usize>, obj: &Object) -> Vec<Problem> {
    if obj.group() != "apps" || !SELECTING_KINDS.contains(&obj.kind.as_str()) {
        return Vec::new();
    }
    let what = format!("{} {}", obj.kind, obj.name);
    let problem = |message: String| vec![Problem::at(file, line, None, message)];
    let Some(selector) = obj.manifest.pointer("/spec/selector") else {
        return problem(format!(
            "{what}: spec.selector is required; set spec.selector.matchLabels to the labels of spec.template"
        ));
    };
    let Some(selector) = selector.as_object() else {
        return problem(format!(
            "{what}: spec.selector must be a mapping (matchLabels, matchExpressions)"
        ));
    };
    let labels = obj
        .manifest
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    match matches(selector, &labels) {
        Err(why) => problem(format!("{what}: spec.selector: {why}")),
        Ok(false) => problem(format!(
            "{what}: spec.selector does not match spec.template.metadata.labels; \
             the workload would select none of its own pods"
        )),
        Ok(true) => Vec::new(),
    }
}

/// Whether a label selector selects `labels`; `Err` if the selector is invalid.
fn matches(selector: &Map<String, Value>, labels: &Map<String, Value>) -> Result<bool, String> {
    let match_labels = match selector.get("matchLabels") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("matchLabels must be a mapping of label to value".into()),
    };
    let expressions = match selector.get("matchExpressions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(e)) => e.clone(),
        Some(_) => return Err("matchExpressions must be a list".into()),
    };
    if match_labels.is_empty() && expressions.is_empty() {
        return Err("an empty selector is invalid: it would select every pod".into());
    }
    let mut selected = true;
    for (key, want) in &match_labels {
        let Some(want) = want.as_str() else {
            return Err(format!("matchLabels.{key} must be a string"));
        };
        selected &= labels.get(key).and_then(Value::as_str) == Some(want);
    }
    for (i, e) in expressions.iter().enumerate() {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() {
            return Err(format!("matchExpressions[{i}].key is required"));
        }
        let values: Vec<&str> = match e.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(format!("matchExpressions[{i}].values must be a list")),
        };
        let have = labels.get(key).and_then(Value::as_str);
        let operator = e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        selected &= match operator {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "matchExpressions[{i}]: values must be non-empty for operator {operator}"
                ))
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!(
                    "matchExpressions[{i}]: values must be empty for operator {operator}"
                ))
            }
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => !have.is_some_and(|h| values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(format!(
                    "matchExpressions[{i}].operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                ))
            }
        };
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(yaml: &str) -> Object {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        super::super::manifest::to_object("d.yaml", Some(1), value).unwrap()
    }

    fn deployment(selector: &str) -> Object {
        object(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n{selector}\n  template:\n    metadata: {{labels: {{app: web, tier: front}}}}\n    spec: {{containers: [{{name: web, image: web:1}}]}}\n"
        ))
    }

    fn messages(obj: &Object) -> Vec<String> {
        check("d.yaml", Some(1), obj)
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn a_deployment_without_a_selector_is_refused() {
        let m = messages(&deployment(""));
        assert_eq!(m.len(), 1);
        assert!(
            m[0].contains("Deployment web: spec.selector is required"),
            "{m:?}"
        );
    }

    #[test]
    fn a_selector_must_select_the_template_labels() {
        assert!(messages(&deployment("  selector: {matchLabels: {app: web}}")).is_empty());
        let m = messages(&deployment("  selector: {matchLabels: {app: api}}"));
        assert!(
            m[0].contains("does not match spec.template.metadata.labels"),
            "{m:?}"
        );
        assert!(messages(&deployment("  selector: {}"))[0].contains("empty selector"));
    }

    #[test]
    fn match_expressions_are_evaluated_and_checked() {
        let ok = "  selector:\n    matchExpressions:\n    - {key: app, operator: In, values: [web, api]}\n    - {key: tier, operator: Exists}\n    - {key: canary, operator: DoesNotExist}\n    - {key: tier, operator: NotIn, values: [back]}";
        assert!(messages(&deployment(ok)).is_empty());
        let miss =
            "  selector:\n    matchExpressions: [{key: app, operator: NotIn, values: [web]}]";
        assert!(messages(&deployment(miss))[0].contains("does not match"));
        let bad = "  selector:\n    matchExpressions: [{key: app, operator: In}]";
        assert!(messages(&deployment(bad))[0].contains("values must be non-empty"));
        let op = "  selector:\n    matchExpressions: [{key: app, operator: Like, values: [w]}]";
        assert!(messages(&deployment(op))[0].contains("is not one of"));
    }

    #[test]
    fn other_kinds_are_not_checked() {
        let svc = object(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
        );
        assert!(messages(&svc).is_empty());
    }
}
