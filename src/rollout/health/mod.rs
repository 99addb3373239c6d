//! The health of one live object: current, in progress or failed, with a reason.
//!
//! Pure functions of the live object, following kstatus (sigs.k8s.io/cli-utils):
//! first the properties every object shares (deletion, `observedGeneration`, the
//! `Reconciling` and `Stalled` conditions), then the rule of its kind, one file
//! per kind. An object of any other kind is judged by the conventions
//! (`observedGeneration` and the `Ready`/`Stalled`/`Reconciling` conditions), and
//! one with neither is current, "not checked". Not wired into the gate yet; the
//! kinds and rules are listed in docs/health.md.

mod apiservice;
mod conventions;
mod crd;
mod cronjob;
mod daemonset;
mod deployment;
mod hpa;
mod ingress;
mod job;
mod namespace;
mod pdb;
mod pod;
mod pvc;
mod replicaset;
mod service;
mod statefulset;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

/// What an object's health says about the release that declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// It is what its spec asks for.
    Current,
    /// It is getting there (or waiting on something that may still come).
    InProgress,
    /// It will not get there without a change.
    Failed,
}

/// Which rule judged an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The built-in rule of a kind, named by it (`StatefulSet`, `Job`, ...).
    BuiltIn(&'static str),
    /// The conventions: `observedGeneration` and the `Ready`, `Stalled` and
    /// `Reconciling` conditions.
    Conventions,
    /// No rule and no conditions: current once applied, but not checked.
    NotChecked,
}

/// The health of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Current, in progress or failed.
    pub verdict: Verdict,
    /// Why, in a few words (counts, the condition's reason and message).
    pub reason: String,
    /// The rule that judged it.
    pub rule: Rule,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Current => "Current",
            Verdict::InProgress => "InProgress",
            Verdict::Failed => "Failed",
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::BuiltIn(kind) => write!(f, "built-in {kind}"),
            Rule::Conventions => f.write_str("conventions"),
            Rule::NotChecked => f.write_str("not checked"),
        }
    }
}

/// A verdict and its reason, before the rule is attached.
pub(crate) type Judgement = (Verdict, String);

pub(crate) fn current(reason: impl Into<String>) -> Judgement {
    (Verdict::Current, reason.into())
}

pub(crate) fn in_progress(reason: impl Into<String>) -> Judgement {
    (Verdict::InProgress, reason.into())
}

pub(crate) fn failed(reason: impl Into<String>) -> Judgement {
    (Verdict::Failed, reason.into())
}

/// The rule of a built-in kind: a pure function of the live object.
type KindRule = fn(&Value) -> Judgement;

/// The built-in rule for a group and kind, with the kind's name for [`Rule::BuiltIn`].
fn built_in(group: &str, kind: &str) -> Option<(&'static str, KindRule)> {
    let found: (&'static str, KindRule) = match (group, kind) {
        ("apps", "StatefulSet") => ("StatefulSet", statefulset::health),
        ("apps", "DaemonSet") => ("DaemonSet", daemonset::health),
        ("apps", "Deployment") => ("Deployment", deployment::health),
        ("apps", "ReplicaSet") => ("ReplicaSet", replicaset::health),
        ("", "Pod") => ("Pod", pod::health),
        ("batch", "Job") => ("Job", job::health),
        ("batch", "CronJob") => ("CronJob", cronjob::health),
        ("", "PersistentVolumeClaim") => ("PersistentVolumeClaim", pvc::health),
        ("", "Service") => ("Service", service::health),
        ("networking.k8s.io", "Ingress") => ("Ingress", ingress::health),
        ("policy", "PodDisruptionBudget") => ("PodDisruptionBudget", pdb::health),
        ("autoscaling", "HorizontalPodAutoscaler") => ("HorizontalPodAutoscaler", hpa::health),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            ("CustomResourceDefinition", crd::health)
        }
        ("apiregistration.k8s.io", "APIService") => ("APIService", apiservice::health),
        ("", "Namespace") => ("Namespace", namespace::health),
        _ => return None,
    };
    Some(found)
}

/// The health of a live object, by the rule of its group and kind, else by the conventions.
pub fn health(object: &Value) -> Health {
    let api_version = str_at(object, &["apiVersion"]).unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = str_at(object, &["kind"]).unwrap_or_default();
    match built_in(group, kind) {
        Some((name, rule)) => {
            let (verdict, reason) = generic(object).unwrap_or_else(|| rule(object));
            Health {
                verdict,
                reason,
                rule: Rule::BuiltIn(name),
            }
        }
        None => conventions::health(object),
    }
}

/// Whether a kind has a built-in rule (for `plan` and `diff` to say which rule applies).
pub fn has_built_in_rule(group: &str, kind: &str) -> bool {
    built_in(group, kind).is_some()
}

/// What every object shares, as kstatus checks it before the kind's rule: an object
/// being deleted is in progress, so is one whose controller has not yet observed its
/// latest generation, and `Reconciling=True` / `Stalled=True` decide at once.
pub(crate) fn generic(object: &Value) -> Option<Judgement> {
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Some(in_progress("being deleted"));
    }
    if let Some(stale) = generation_not_observed(object) {
        return Some(stale);
    }
    if let Some(c) = condition(object, "Reconciling").filter(|c| c.status == "True") {
        return Some(in_progress(c.describe("Reconciling")));
    }
    if let Some(c) = condition(object, "Stalled").filter(|c| c.status == "True") {
        return Some(failed(c.describe("Stalled")));
    }
    None
}

/// In progress when `status.observedGeneration` is behind `metadata.generation`.
fn generation_not_observed(object: &Value) -> Option<Judgement> {
    let observed = int_at(object, &["status", "observedGeneration"])?;
    let generation = int_at(object, &["metadata", "generation"])?;
    (observed < generation).then(|| {
        in_progress(format!(
            "generation {generation} not yet observed (observed {observed})"
        ))
    })
}

/// One entry of `status.conditions`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Condition {
    pub(crate) status: String,
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) observed_generation: Option<i64>,
}

impl Condition {
    /// `Ready=False (Reason): message`, the parts that are there.
    pub(crate) fn describe(&self, kind: &str) -> String {
        let mut s = format!("{kind}={}", self.status);
        if !self.reason.is_empty() {
            s.push_str(&format!(" ({})", self.reason));
        }
        if !self.message.is_empty() {
            s.push_str(&format!(": {}", self.message));
        }
        s
    }
}

/// The condition of a type in `status.conditions`, if any.
pub(crate) fn condition(object: &Value, kind: &str) -> Option<Condition> {
    let all = object.pointer("/status/conditions")?.as_array()?;
    let c = all
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?;
    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Some(Condition {
        status: text("status"),
        reason: text("reason"),
        message: text("message"),
        observed_generation: c.get("observedGeneration").and_then(Value::as_i64),
    })
}

/// The value at a path of keys.
pub(crate) fn at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

/// A string at a path, if it is one.
pub(crate) fn str_at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(object, path)?.as_str()
}

/// An integer at a path, if it is one.
pub(crate) fn int_at(object: &Value, path: &[&str]) -> Option<i64> {
    at(object, path)?.as_i64()
}

/// A count in `status`: absent means zero, as the controllers omit zero counts.
pub(crate) fn count(object: &Value, field: &str) -> i64 {
    int_at(object, &["status", field]).unwrap_or(0)
}

/// `spec.replicas`, 1 when unset (the controllers' default).
pub(crate) fn spec_replicas(object: &Value) -> i64 {
    int_at(object, &["spec", "replicas"]).unwrap_or(1)
}
