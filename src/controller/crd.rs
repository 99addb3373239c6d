//! The `Channel` custom resource: what a user creates to deliver a git path.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of kubemint's resources.
pub const GROUP: &str = "kubemint.io";
/// Annotation whose new value asks for an immediate sync (like Flux's `requestedAt`).
pub const RECONCILE_ANNOTATION: &str = "kubemint.io/reconcile";
/// Finalizer that deletes what a channel delivered when it is deleted with `prune: true`.
pub const FINALIZER: &str = "kubemint.io/finalizer";

/// A channel delivers one path of one git repository into the cluster.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kubemint.io",
    version = "v1alpha1",
    kind = "Channel",
    namespaced,
    status = "ChannelStatus",
    shortname = "chan",
    category = "kubemint",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Commit","type":"string","jsonPath":".status.lastAppliedCommit.sha"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSpec {
    /// Where the release repository lives.
    pub git: GitSpec,
    /// Namespace for namespaced objects that do not name one. Defaults to the channel's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Delete objects that the applied commit no longer declares (and everything on channel deletion).
    #[serde(default = "default_true")]
    pub prune: bool,
    /// Stop reconciling without deleting anything.
    #[serde(default)]
    pub suspend: bool,
}

fn default_true() -> bool {
    true
}

/// The git side of a channel.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSpec {
    /// Repository URL: `https://`, `ssh://`, `git@host:path`, `file://` or a local path.
    pub url: String,
    /// Which commit to deliver.
    #[serde(default, rename = "ref")]
    pub reference: GitRef,
    /// Directory inside the repository that holds the manifests.
    #[serde(default = "default_path")]
    pub path: String,
    /// How often the remote is polled, as a duration such as `30s`, `1m` or `1h`.
    #[serde(default = "default_interval")]
    pub interval: String,
}

fn default_path() -> String {
    ".".to_string()
}

fn default_interval() -> String {
    "1m".to_string()
}

/// A git reference. Exactly one field is used; `branch` defaults to `main`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRef {
    /// Branch to follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

impl GitRef {
    /// The branch this ref follows.
    pub fn branch(&self) -> &str {
        self.branch.as_deref().unwrap_or("main")
    }
}

/// What the operator observed and did; kstatus-style conditions.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    /// `Ready`, `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec that the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The commit of the most recent attempt, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_commit: Option<CommitInfo>,
    /// The commit whose objects are in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_commit: Option<CommitInfo>,
    /// Id of the release of the last applied commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_release: Option<String>,
    /// The last value of the reconcile annotation that was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Objects this channel manages, as of the last applied commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
}

/// A commit as shown in status: enough to audit without opening git.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    /// Full commit id.
    pub sha: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// First line of the message.
    pub subject: String,
    /// Commit time, RFC 3339.
    pub time: String,
}

/// The objects a channel manages.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Inventory {
    /// One entry per object, sorted.
    pub entries: Vec<InventoryEntry>,
}

/// One managed object, with the version it was applied as (needed to delete it).
#[derive(
    Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// API group, absent for the core group.
    // Left out when empty: kube-apiserver 1.20 reads "" inside a list item back as null.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version the object was applied with.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace; absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for InventoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.group.is_empty() {
            write!(f, "{}/", self.group)?;
        }
        write!(f, "{}/", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(&self.name)
    }
}

impl Channel {
    /// The value of the `kubemint.io/channel` label: `<namespace>.<name>`.
    pub fn label_value(&self) -> String {
        format!(
            "{}.{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// Namespace for namespaced objects that do not name one.
    pub fn target_namespace(&self) -> String {
        self.spec
            .target_namespace
            .clone()
            .or_else(|| self.metadata.namespace.clone())
            .unwrap_or_else(|| "default".to_string())
    }
}
