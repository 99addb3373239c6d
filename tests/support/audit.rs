//! The API server's audit log (`tests/cluster/up.sh`: level `Metadata` for
//! every request, stage `RequestReceived` omitted, JSON lines of
//! `audit.k8s.io/v1` events): how many requests one client made in a window.
//!
//! ```ignore
//! let from = Timestamp::now();
//! // ... kubemint delivers a commit ...
//! let kubemint = audit::count(&cluster.audit_log(), kubemint::cluster::USER_AGENT, from, Timestamp::now());
//! assert_eq!(kubemint.writes, 0);
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// One request as the audit log records it (one per `auditID`, whatever the
/// number of stages logged for it).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub audit_id: String,
    pub user_agent: String,
    pub verb: String,
    pub request_uri: String,
    /// `objectRef.resource` (`services`, `replicasets`...), with
    /// `/<subresource>` when there is one.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// When the API server received it (`requestReceivedTimestamp`, else
    /// the first logged `stageTimestamp`).
    pub at: Timestamp,
}

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// get, list, watch.
    Read,
    /// create, update, patch, delete, deletecollection that persist.
    Write,
    /// A write with `dryRun=All`: validated and admitted, never persisted.
    DryRun,
    /// Anything else (e.g. a non-resource URL such as `/version`).
    Other,
}

impl Request {
    pub fn class(&self) -> Class {
        match self.verb.as_str() {
            "get" | "list" | "watch" => Class::Read,
            "create" | "update" | "patch" | "delete" | "deletecollection" => {
                if self.request_uri.contains("dryRun=All") {
                    Class::DryRun
                } else {
                    Class::Write
                }
            }
            _ => Class::Other,
        }
    }

    /// `verb resource namespace/name`, for reports.
    pub fn describe(&self) -> String {
        let object = match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name.clone(),
            (Some(ns), None) => format!("{ns}/*"),
            (None, None) => self.request_uri.clone(),
        };
        format!("{} {} {object}", self.verb, self.resource)
    }
}

/// Parses one line of the log; `None` for lines that are no complete event
/// (the line being written right now, say).
pub fn parse_line(line: &str) -> Option<(Request, String)> {
    let event: Value = serde_json::from_str(line).ok()?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let stage = text(&event["stage"])?;
    let at = text(&event["requestReceivedTimestamp"])
        .or_else(|| text(&event["stageTimestamp"]))?
        .parse()
        .ok()?;
    let object = &event["objectRef"];
    let mut resource = text(&object["resource"]).unwrap_or_default();
    if let Some(sub) = text(&object["subresource"]) {
        resource = format!("{resource}/{sub}");
    }
    let request = Request {
        audit_id: text(&event["auditID"])?,
        user_agent: text(&event["userAgent"]).unwrap_or_default(),
        verb: text(&event["verb"])?,
        request_uri: text(&event["requestURI"]).unwrap_or_default(),
        resource,
        namespace: text(&object["namespace"]),
        name: text(&object["name"]),
        at,
    };
    Some((request, stage))
}

/// Every request in the log, in the order the API server logged them.
pub fn read(path: &Path) -> Vec<Request> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading the audit log {}: {e}", path.display()));
    let mut seen = HashSet::new();
    text.lines()
        .filter_map(parse_line)
        .filter_map(|(request, _stage)| seen.insert(request.audit_id.clone()).then_some(request))
        .collect()
}

/// The requests of clients whose User-Agent starts with `agent` (e.g.
/// `kubemint/`, `kubectl/`), received in `[from, to)`.
pub fn requests(path: &Path, agent: &str, from: Timestamp, to: Timestamp) -> Vec<Request> {
    read(path)
        .into_iter()
        .filter(|r| r.user_agent.starts_with(agent) && r.at >= from && r.at < to)
        .collect()
}

/// Requests counted by [`Class`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub reads: usize,
    pub writes: usize,
    pub dry_runs: usize,
    pub other: usize,
}

impl Counts {
    pub fn of(requests: &[Request]) -> Counts {
        let mut counts = Counts::default();
        for request in requests {
            match request.class() {
                Class::Read => counts.reads += 1,
                Class::Write => counts.writes += 1,
                Class::DryRun => counts.dry_runs += 1,
                Class::Other => counts.other += 1,
            }
        }
        counts
    }

    pub fn total(&self) -> usize {
        self.reads + self.writes + self.dry_runs + self.other
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} reads / {} writes / {} dry-runs",
            self.reads, self.writes, self.dry_runs
        )?;
        if self.other > 0 {
            write!(f, " / {} other", self.other)?;
        }
        Ok(())
    }
}

/// [`Counts`] of the requests of `agent` received in `[from, to)`.
pub fn count(path: &Path, agent: &str, from: Timestamp, to: Timestamp) -> Counts {
    Counts::of(&requests(path, agent, from, to))
}
