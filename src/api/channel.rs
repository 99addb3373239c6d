//! The `Channel` custom resource: what a user creates to deliver a git path.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of kubemint's resources.
pub const GROUP: &str = "kubemint.io";
/// Annotation whose new value asks for an immediate sync (like Flux's `requestedAt`).
pub const RECONCILE_ANNOTATION: &str = "kubemint.io/reconcile";
/// Annotation whose new value retries a failed release of the same commit.
pub const RETRY_ANNOTATION: &str = "kubemint.io/retry";
/// Annotation approving a commit that the prune guard holds: its value is the
/// commit's full sha.
pub const APPROVE_PRUNE_ANNOTATION: &str = "kubemint.io/approve-prune";
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
    /// ServiceAccount of the channel's namespace that every read and write of the
    /// channel's objects impersonates (dry runs, applies, prunes, watches). Unset:
    /// the operator's `--default-service-account`, or the operator itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Namespace for namespaced objects that do not name one. Defaults to the channel's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Delete objects that the applied commit no longer declares (and everything on channel deletion).
    #[serde(default = "default_true")]
    pub prune: bool,
    /// Holds a commit that would prune a large part of what the channel delivered.
    #[serde(default)]
    pub prune_guard: PruneGuardSpec,
    /// Stop reconciling without deleting anything.
    #[serde(default)]
    pub suspend: bool,
    /// How often the cluster is compared with the applied commit and hand edits are
    /// put back, when the ref has not moved (a poll that finds no new commit is
    /// otherwise one round trip to git and no API requests).
    #[serde(default = "default_drift_interval")]
    pub drift_interval: String,
    /// How new revisions are promoted and old ones drained.
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// Webhook receiver that triggers an immediate sync on a push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
    /// What kubemint writes back into git as the audit trail.
    #[serde(default)]
    pub audit: AuditSpec,
    /// The forge the repository lives on: the release diff as a comment and a
    /// commit status on every open pull request targeting the branch
    /// (docs/forges.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<ForgeSpec>,
}

/// The forge of a channel's repository.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForgeSpec {
    /// Which forge: `gitea` (Gitea and Forgejo), `github` or `gitlab`.
    #[serde(rename = "type")]
    pub kind: ForgeType,
    /// Base URL of its API: the forge's own URL for Gitea and GitLab
    /// (`https://gitea.example`), `https://api.github.com` (the default for
    /// `github`) or `https://HOST/api/v3` for GitHub Enterprise. Unset for
    /// Gitea and GitLab: the scheme and host of `spec.git.url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `owner/name` (GitLab: the project's full path). Unset: the path of `spec.git.url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Secret in the channel's namespace whose `token` key is the forge's access token.
    pub secret_ref: SecretRef,
    /// Base URL of kubemint's web UI (`https://kubemint.example`): the status of a
    /// promoted commit links to its release page there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_url: Option<String>,
    /// Open pull requests previewed, newest first.
    #[serde(default = "default_max_pull_requests")]
    #[schemars(range(min = 0, max = 100))]
    pub max_pull_requests: u32,
}

/// A forge kubemint speaks to.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForgeType {
    /// Gitea or Forgejo.
    Gitea,
    /// GitHub or GitHub Enterprise.
    GitHub,
    /// GitLab.
    GitLab,
}

fn default_max_pull_requests() -> u32 {
    10
}

/// The prune guard: a commit that would delete more than `maxFraction` of the
/// channel's inventory is held until `kubemint.io/approve-prune` names it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneGuardSpec {
    /// Largest fraction of the inventory (0 to 1) a commit may prune without
    /// approval; 1 turns the guard off.
    #[serde(default = "default_max_prune_fraction")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_fraction: f64,
}

impl Default for PruneGuardSpec {
    fn default() -> Self {
        PruneGuardSpec {
            max_fraction: default_max_prune_fraction(),
        }
    }
}

fn default_max_prune_fraction() -> f64 {
    0.5
}

/// The audit trail kubemint writes into the channel's repository.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditSpec {
    /// Add a git note under `refs/notes/kubemint/<cluster>` to a commit each time
    /// its release is promoted, fails or is superseded, and push it with the
    /// channel's credentials (which then need write access).
    #[serde(default)]
    pub git_notes: bool,
}

/// What a release that fails its readiness gate leads to.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Traffic stays on the previous release; the failed commit is held.
    #[default]
    Hold,
    /// As `hold`, and kubemint pushes the revert of the failing commits to the branch.
    Revert,
}

/// Blue/green rollout settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Seconds between promotion and scaling the previous revisions to zero.
    // Kubernetes knows no "uint32" format (1.37 warns on every CRD apply);
    // int64 holds every u32, and the minimum of 0 stays.
    #[serde(default = "default_drain_seconds")]
    #[schemars(extend("format" = "int64"))]
    pub drain_seconds: u32,
    /// Scaled-down revisions kept per workload for fast rollback.
    #[serde(default = "default_keep_releases")]
    #[schemars(extend("format" = "int64"))]
    pub keep_releases: u32,
    /// How long new revisions may take to become ready, as a duration (`10m`).
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: String,
    /// `hold` (default) or `revert`: push the revert of the failing commits when a
    /// release fails its readiness gate (the channel must follow a branch).
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Give each Service of the release a companion `<name>-preview` that
    /// selects the newest revision as soon as it exists (the serving one otherwise).
    #[serde(default)]
    pub preview: bool,
    /// How long the pre-promotion test Job (`kubemint.io/hook: pre-promotion`) may run.
    #[serde(default = "default_test_timeout")]
    pub test_timeout: String,
    /// Sign the automatic reverts of `onFailure: revert` with the SSH key in this
    /// Secret's `signing_key` (an unencrypted OpenSSH private key), so that a
    /// channel verifying signatures accepts its own rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_signing: Option<RevertSigningSpec>,
}

/// Where the automatic revert's signing key is.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevertSigningSpec {
    /// Secret in the channel's namespace whose `signing_key` is the key.
    pub secret_ref: SecretRef,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            drain_seconds: default_drain_seconds(),
            keep_releases: default_keep_releases(),
            ready_timeout: default_ready_timeout(),
            on_failure: OnFailure::default(),
            preview: false,
            test_timeout: default_test_timeout(),
            revert_signing: None,
        }
    }
}

fn default_drain_seconds() -> u32 {
    30
}

fn default_keep_releases() -> u32 {
    3
}

fn default_ready_timeout() -> String {
    "10m".to_string()
}

fn default_test_timeout() -> String {
    "10m".to_string()
}

/// A webhook receiver at `/hooks/<namespace>/<name>`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// Secret in the channel's namespace whose `token` key signs (GitHub, generic HMAC) or authenticates (GitLab) requests.
    pub secret_ref: SecretRef,
}

/// A Secret in the channel's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
}

fn default_drift_interval() -> String {
    "5m".to_string()
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
    /// Credentials: `identity`, `passphrase`, `known_hosts` (SSH); `username`/`password` or
    /// `bearerToken` (HTTPS); `ca.crt` (custom CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Require commits signed by trusted keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
}

/// Signature verification of commits.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    /// `HEAD`: the tip must be signed; `AllCommits`: every commit since the last applied one
    /// (on a first delivery: since `since`, or the whole history).
    #[serde(default)]
    pub mode: VerifyMode,
    /// Trust anchor of `AllCommits`: a commit id. It and its ancestors are trusted (history
    /// from before signing began); every commit after it must be signed, and the tip must
    /// descend from it. Ignored with `HEAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Secret with trusted keys: OpenPGP public keys (`*.asc`/`*.gpg` keys) and/or an SSH `allowed_signers` key.
    pub secret_ref: SecretRef,
}

/// Which commits must be signed.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum VerifyMode {
    /// Only the commit being applied.
    #[default]
    #[serde(rename = "HEAD")]
    Head,
    /// Every commit between the last applied commit (or `since`) and the new tip.
    AllCommits,
}

fn default_path() -> String {
    ".".to_string()
}

fn default_interval() -> String {
    "1m".to_string()
}

/// A git reference. The most specific field wins: `commit`, then `semver`, `tag`, `branch`;
/// with none set, branch `main`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRef {
    /// Branch to follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Tag to deliver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Semver range (e.g. `>=1.2.0, <2`): the highest matching tag is delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// A pinned commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
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
    /// The most recent releases, newest first (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseRecord>,
    /// The last value of the `kubemint.io/retry` annotation that was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_retry: Option<String>,
    /// The last automatic revert (`spec.rollout.onFailure: revert`) and how it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_revert: Option<AutoRevertStatus>,
}

/// What became of an automatic revert.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoRevertStatus {
    /// The failed release.
    pub release: String,
    /// The failing commit.
    pub commit: String,
    /// How it went.
    pub outcome: RevertOutcome,
    /// The revert commit, when one was pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_commit: Option<String>,
    /// What happened, in words.
    pub message: String,
    /// When, RFC 3339.
    pub time: String,
}

/// What became of an automatic revert, as `status.autoRevert.outcome` names it.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RevertOutcome {
    /// The revert commit was pushed.
    Pushed,
    /// The revert did not apply cleanly on the branch's head: a person must revert.
    Conflict,
    /// Not reverted: the loop guard (the failing commit is itself an automatic revert).
    Skipped,
    /// Git could not be reached: tried again a minute later.
    Retrying,
    /// Any other failure; the message says what to do.
    #[default]
    #[serde(other)]
    Failed,
}

impl std::fmt::Display for RevertOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RevertOutcome::Pushed => "Pushed",
            RevertOutcome::Conflict => "Conflict",
            RevertOutcome::Skipped => "Skipped",
            RevertOutcome::Retrying => "Retrying",
            RevertOutcome::Failed => "Failed",
        })
    }
}

/// The pre-promotion test of a release and how it went.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// The test Job (the first one, when the release has several).
    pub job: String,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `Passed` or `Failed`.
    pub outcome: TestOutcome,
    /// The last log lines of its newest pod, or why there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
}

/// How a pre-promotion test went.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TestOutcome {
    /// It completed: the release could be promoted.
    #[default]
    Passed,
    /// It failed, or did not finish within `spec.rollout.testTimeout`.
    Failed,
}

/// One release of a channel, as history.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    /// Release id (hash of the rendered content).
    pub id: String,
    /// The commit it was rendered from.
    pub commit: CommitInfo,
    /// When kubemint first applied it, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    /// When its Services were switched to it, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<String>,
    /// When it failed its gates, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<String>,
    /// `Progressing`, `Active`, `Superseded` or `Failed`.
    pub phase: ReleasePhase,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Revision hash of each minted workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<WorkloadRevision>,
    /// Its pre-promotion test, once it passed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestResult>,
}

/// Phase of a release.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReleasePhase {
    /// New revisions are being created and waited for.
    #[default]
    Progressing,
    /// Its revisions serve traffic.
    Active,
    /// A newer release took over.
    Superseded,
    /// Its revisions did not become ready in time; traffic stayed where it was.
    Failed,
}

/// The revision of one workload in a release.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct WorkloadRevision {
    /// Namespace of the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Workload (Deployment) name.
    pub workload: String,
    /// Revision hash.
    pub revision: String,
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
    /// The ref it was resolved from, e.g. `refs/heads/main` or `refs/tags/v1.2.0`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
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
    /// API group, empty for the core group.
    #[serde(default)]
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

impl ChannelStatus {
    /// The inventory's entries (none before the first apply).
    pub fn inventory_entries(&self) -> Vec<InventoryEntry> {
        self.inventory
            .as_ref()
            .map(|i| i.entries.clone())
            .unwrap_or_default()
    }
}

impl InventoryEntry {
    /// The object's identity (version left out).
    pub fn id(&self) -> ObjectId {
        ObjectId {
            group: self.group.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

impl std::fmt::Display for InventoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.id().fmt(f)
    }
}

/// The identity of an object, without its API version (a `v1beta1` -> `v1`
/// move is the same object).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    /// API group, empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectId {
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

/// The merge patch that asks for an immediate sync of a channel at `now`:
/// a new value of [`RECONCILE_ANNOTATION`], which the channel's own operator
/// (whatever its shard) sees on its watch. The UI's "sync now" and webhooks
/// received by another replica send it.
pub fn sync_request_patch(now: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {RECONCILE_ANNOTATION: now}}})
}

/// The key of channel `name` in `namespace`: `<namespace>/<name>` (see [`Channel::key`]).
pub fn channel_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Channel {
    /// The channel's key in memos, logs and messages: `<namespace>/<name>`.
    pub fn key(&self) -> String {
        channel_key(
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// The value of the `kubemint.io/channel` label: `<namespace>.<name>`.
    pub fn label_value(&self) -> String {
        format!(
            "{}.{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// The objects it manages now, from its status (none before the first apply).
    pub fn inventory_entries(&self) -> Vec<InventoryEntry> {
        self.status
            .as_ref()
            .map(ChannelStatus::inventory_entries)
            .unwrap_or_default()
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
