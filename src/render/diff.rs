//! Object diffs as people read them: unified YAML diffs, with every Secret
//! value masked. Shared by `kubemint diff` (live object -> what applying
//! would store) and the UI's release page (the release before -> this one),
//! so both mask Secrets the same way. Pure.

use serde_json::Value;
use similar::TextDiff;

use super::{Object, Release};

/// Where `kubectl apply` (client-side) keeps the object it last applied; on a
/// Secret it holds the values in clear.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The fields of a Secret that hold values.
const SECRET_VALUES: [&str; 2] = ["data", "stringData"];

/// Whether `group`/`kind` is the core Secret.
pub fn is_secret(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Secret"
}

/// Replaces a Secret's values so a diff says which keys change but never
/// shows a value: `***` when equal (or only on one side), `*** (before)` /
/// `*** (after)` when not. Both `data` and `stringData` are masked, and
/// kubectl's last-applied copy (values in clear) is dropped.
pub fn mask_secrets(mut before: Option<&mut Value>, mut after: Option<&mut Value>) {
    for field in SECRET_VALUES {
        let old = before
            .as_deref()
            .and_then(|b| b.get(field))
            .cloned()
            .unwrap_or(Value::Null);
        let new = after
            .as_deref()
            .and_then(|a| a.get(field))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(a) = after.as_deref_mut() {
            mask(a.get_mut(field), &old, "after");
        }
        if let Some(b) = before.as_deref_mut() {
            mask(b.get_mut(field), &new, "before");
        }
    }
    for object in [before, after].into_iter().flatten() {
        let annotations = object
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut);
        if let Some(annotations) = annotations {
            annotations.remove(LAST_APPLIED_ANNOTATION);
        }
    }
}

fn mask(data: Option<&mut Value>, other: &Value, suffix: &str) {
    let Some(data) = data else { return };
    let Some(map) = data.as_object_mut() else {
        // Not a map of values (invalid, but never shown either).
        *data = Value::String("***".into());
        return;
    };
    for (key, value) in map.iter_mut() {
        let same = other.get(key).is_none_or(|o| o == value);
        *value = Value::String(if same {
            "***".into()
        } else {
            format!("*** ({suffix})")
        });
    }
}

/// A unified diff of two objects as YAML, headed `old_label` and `new_label`
/// (a missing side is empty).
pub fn unified(
    before: Option<&Value>,
    after: Option<&Value>,
    (old_label, new_label): (&str, &str),
) -> String {
    let yaml = |v: &Value| serde_yaml::to_string(v).unwrap_or_default();
    let old = before.map(yaml).unwrap_or_default();
    let new = after.map(yaml).unwrap_or_default();
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// How an object differs from the release before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// New in this release.
    Added,
    /// Declared in both, changed.
    Changed,
    /// No longer declared.
    Removed,
}

/// One object that differs between two releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDiff {
    /// How.
    pub difference: Difference,
    /// `Kind namespace/name` (`Kind name` without a namespace).
    pub object: String,
    /// The file it is declared in (this release's, or the one before's when removed).
    pub file: String,
    /// Unified YAML diff, Secret values masked.
    pub diff: String,
}

fn label(o: &Object) -> String {
    match &o.namespace {
        Some(ns) => format!("{} {ns}/{}", o.kind, o.name),
        None => format!("{} {}", o.kind, o.name),
    }
}

/// The manifest of the object in `objects` that is `o` (same group, kind, namespace, name).
fn find<'a>(objects: &'a [Object], o: &Object) -> Option<&'a Value> {
    let key = o.key();
    objects.iter().find(|x| x.key() == key).map(|x| &x.manifest)
}

/// What changed from release `before` (none: the first release) to `after`,
/// object by object in `after`'s order, then the removed ones; unchanged
/// objects are left out. Secret values never appear, only which keys changed.
pub fn release_diff(before: Option<&Release>, after: &Release) -> Vec<ObjectDiff> {
    let old: &[Object] = before.map_or(&[], |b| &b.objects);
    let one = |o: &Object, before: Option<&Value>, after: Option<&Value>| {
        let (mut before, mut after) = (before.cloned(), after.cloned());
        if is_secret(o.group(), &o.kind) {
            mask_secrets(before.as_mut(), after.as_mut());
        }
        (before.as_ref() != after.as_ref()).then(|| {
            let difference = match (&before, &after) {
                (None, _) => Difference::Added,
                (_, None) => Difference::Removed,
                _ => Difference::Changed,
            };
            ObjectDiff {
                difference,
                object: label(o),
                file: o.file.clone(),
                diff: unified(before.as_ref(), after.as_ref(), ("before", "this release")),
            }
        })
    };
    let mut diffs: Vec<ObjectDiff> = after
        .objects
        .iter()
        .filter_map(|o| one(o, find(old, o), Some(&o.manifest)))
        .collect();
    diffs.extend(
        old.iter()
            .filter(|o| find(&after.objects, o).is_none())
            .filter_map(|o| one(o, Some(&o.manifest), None)),
    );
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(kind: &str, name: &str, manifest: Value) -> Object {
        Object {
            file: format!("{name}.yaml"),
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            namespace: Some("shop".into()),
            manifest,
        }
    }

    fn release(objects: Vec<Object>) -> Release {
        Release {
            id: "r".into(),
            objects,
            workloads: Vec::new(),
            kustomize: None,
            inputs: Vec::new(),
        }
    }

    fn secret(token: &str, plain: &str) -> Object {
        object(
            "Secret",
            "creds",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                   "data": {"token": token, "same": "c2FtZQ=="},
                   "stringData": {"password": plain}}),
        )
    }

    #[test]
    fn masking_tells_which_keys_changed_and_never_a_value() {
        // (before, after, expected after-mask of `token` in after, in before)
        let table = [
            (
                Some("czNjcjN0"),
                "bjN3",
                "*** (after)",
                Some("*** (before)"),
            ),
            (Some("czNjcjN0"), "czNjcjN0", "***", Some("***")),
            (None, "bjN3", "***", None),
        ];
        for (old, new, want_after, want_before) in table {
            let mut before = old.map(|t| json!({"data": {"token": t}}));
            let mut after = json!({"data": {"token": new}, "stringData": {"p": "hunter2"}});
            mask_secrets(before.as_mut(), Some(&mut after));
            assert_eq!(after["data"]["token"], want_after, "{old:?} -> {new}");
            assert_eq!(after["stringData"]["p"], "***");
            assert_eq!(
                before.as_ref().map(|b| b["data"]["token"].clone()),
                want_before.map(Value::from)
            );
        }
        let mut odd = json!({"data": "not a map", "metadata": {"annotations": {
            LAST_APPLIED_ANNOTATION: "{\"data\":{\"token\":\"czNjcjN0\"}}", "keep": "x"}}});
        mask_secrets(None, Some(&mut odd));
        assert_eq!(odd["data"], "***");
        assert_eq!(odd["metadata"]["annotations"], json!({"keep": "x"}));
    }

    #[test]
    fn a_release_diff_lists_added_changed_and_removed_objects_with_secrets_masked() {
        let cm = |v: &str| {
            object(
                "ConfigMap",
                "web",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"},
                       "data": {"GREETING": v}}),
            )
        };
        let gone = object("Service", "old", json!({"kind": "Service"}));
        let before = release(vec![cm("hello"), secret("czNjcjN0", "hunter2"), gone]);
        let after = release(vec![
            cm("bonjour"),
            secret("bjN3czNjcmV0", "hunter3"),
            object("ConfigMap", "new", json!({"kind": "ConfigMap"})),
        ]);
        let diffs = release_diff(Some(&before), &after);
        let shape: Vec<(Difference, &str)> = diffs
            .iter()
            .map(|d| (d.difference, d.object.as_str()))
            .collect();
        assert_eq!(
            shape,
            [
                (Difference::Changed, "ConfigMap shop/web"),
                (Difference::Changed, "Secret shop/creds"),
                (Difference::Added, "ConfigMap shop/new"),
                (Difference::Removed, "Service shop/old"),
            ]
        );
        assert!(
            diffs[0].diff.contains("-  GREETING: hello"),
            "{}",
            diffs[0].diff
        );
        assert!(
            diffs[0].diff.contains("+  GREETING: bonjour"),
            "{}",
            diffs[0].diff
        );
        let all: String = diffs.iter().map(|d| d.diff.as_str()).collect();
        for value in ["czNjcjN0", "bjN3czNjcmV0", "c2FtZQ==", "hunter2", "hunter3"] {
            assert!(!all.contains(value), "{value} leaked:\n{all}");
        }
        assert!(all.contains("+  token: '*** (after)'"), "{all}");
        assert!(all.contains("-  password: '*** (before)'"), "{all}");

        assert!(
            release_diff(Some(&after), &after).is_empty(),
            "nothing changed"
        );
        let first = release_diff(None, &after);
        assert!(first.iter().all(|d| d.difference == Difference::Added));
        assert!(!first[1].diff.contains("bjN3czNjcmV0"), "{}", first[1].diff);
    }
}
