//! The pages' view models, built from a [`Snapshot`] of cached objects: pure
//! (data and the current time in, view model out), so that every decision the
//! pages show is table-tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;

use crate::api::{Channel, CommitInfo, ReleasePhase, ReleaseRecord, RevertOutcome, TestOutcome};
use crate::rollout::DRAINED_ANNOTATION;
use crate::source::{redact_url, short_sha};

/// What the pages are built from: the caches' contents at one moment.
#[derive(Default)]
pub struct Snapshot<'a> {
    /// Channels the viewer may read.
    pub channels: Vec<&'a Channel>,
    /// ReplicaSets minted by kubemint.
    pub replica_sets: Vec<&'a ReplicaSet>,
    /// Events about channels.
    pub events: Vec<&'a Event>,
    /// The current time, for ages.
    pub now: Option<Timestamp>,
}

/// How a channel stands, worst first when sorting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Its newest release failed (traffic stayed on the one before).
    Failed,
    /// Held: the prune guard or a signature check stops its commit.
    Held,
    /// Stalled for another reason (invalid commit, refused, ...).
    Stalled,
    /// A rollout is in progress.
    Progressing,
    /// Reconciling is turned off.
    Suspended,
    /// Ready, serving its newest release.
    Ready,
    /// Not reported yet.
    Unknown,
}

impl Health {
    /// The word shown for it.
    pub fn label(self) -> &'static str {
        match self {
            Health::Failed => "Failed",
            Health::Held => "Held",
            Health::Stalled => "Stalled",
            Health::Progressing => "Rolling out",
            Health::Suspended => "Suspended",
            Health::Ready => "Ready",
            Health::Unknown => "Unknown",
        }
    }

    /// Whether it should stand out on the overview.
    pub fn alarming(self) -> bool {
        matches!(self, Health::Failed | Health::Held | Health::Stalled)
    }
}

/// A commit as the pages show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitView {
    /// Full sha.
    pub sha: String,
    /// First line of the message.
    pub subject: String,
    /// `Name <email>`.
    pub author: String,
    /// Commit time, RFC 3339.
    pub time: String,
    /// The commit on its forge (GitHub, GitLab), when the URL is one.
    pub url: Option<String>,
}

impl CommitView {
    fn new(commit: &CommitInfo, forge: Option<&Forge>) -> Self {
        CommitView {
            sha: commit.sha.clone(),
            subject: commit.subject.clone(),
            author: commit.author.clone(),
            time: commit.time.clone(),
            url: forge.and_then(|f| f.commit_url(&commit.sha)),
        }
    }

    /// The first 12 characters of the sha.
    pub fn short(&self) -> &str {
        short_sha(&self.sha)
    }
}

/// Ready pods out of wanted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pods {
    /// Ready pods.
    pub ready: i32,
    /// Wanted pods.
    pub wanted: i32,
}

/// One channel on the overview (and the head of its timeline).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSummary {
    /// Namespace of the channel.
    pub namespace: String,
    /// Name of the channel.
    pub name: String,
    /// How it stands.
    pub health: Health,
    /// The Ready condition's reason and message, or the Stalled one's when stalled.
    pub reason: String,
    /// The condition's message.
    pub message: String,
    /// The serving release: id, commit, and how long ago it was promoted.
    pub serving: Option<(String, CommitView, String)>,
    /// The newest release's pods while it rolls out.
    pub rollout: Option<Pods>,
    /// Repository URL without credentials, and path.
    pub source: String,
    /// The commit the prune guard holds, awaiting approval.
    pub held_commit: Option<String>,
}

/// The overview: channels grouped by namespace, in name order.
pub type Overview = Vec<(String, Vec<ChannelSummary>)>;

/// A known forge, for links to commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forge {
    base: String,
    gitlab: bool,
}

impl Forge {
    /// The forge of a repository URL: `https://github.com/o/r(.git)`,
    /// `git@github.com:o/r.git`, `ssh://git@gitlab.com/g/r.git`, or any host
    /// whose name starts with `gitlab.`. Credentials are never kept.
    pub fn of(url: &str) -> Option<Forge> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .or_else(|| url.strip_prefix("ssh://"))
            .or_else(|| url.strip_prefix("git@"))?;
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once(['/', ':'])?;
        let host = host.to_ascii_lowercase();
        let gitlab = host == "gitlab.com" || host.starts_with("gitlab.");
        if host != "github.com" && !gitlab {
            return None;
        }
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let safe = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
        if path.is_empty() || !path.chars().all(safe) || path.contains("..") {
            return None;
        }
        Some(Forge {
            base: format!("https://{host}/{path}"),
            gitlab,
        })
    }

    /// The page of commit `sha` (hex only, else none).
    pub fn commit_url(&self, sha: &str) -> Option<String> {
        if sha.is_empty() || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let sep = if self.gitlab {
            "/-/commit/"
        } else {
            "/commit/"
        };
        Some(format!("{}{sep}{sha}", self.base))
    }
}

/// How long ago `time` was, in the largest whole unit ("3m ago"), to the minute.
pub fn age(time: &str, now: Option<Timestamp>) -> String {
    let (Ok(then), Some(now)) = (time.parse::<Timestamp>(), now) else {
        return String::new();
    };
    let secs = now.as_second() - then.as_second();
    match secs {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

fn condition<'a>(
    channel: &'a Channel,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    channel
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Reasons of a Stalled condition that mean "held" rather than broken.
const HELD_REASONS: &[&str] = &["PruneHeld", "SignatureVerificationFailed"];

/// How a channel stands, from its conditions and newest release.
pub fn health(channel: &Channel) -> (Health, String, String) {
    let newest = channel.status.as_ref().and_then(|s| s.releases.first());
    let text = |c: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>| {
        c.map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_default()
    };
    if channel.spec.suspend {
        let (r, m) = text(condition(channel, "Ready"));
        return (Health::Suspended, r, m);
    }
    let stalled = condition(channel, "Stalled").filter(|c| c.status == "True");
    if let Some(c) = stalled {
        let held = HELD_REASONS.contains(&c.reason.as_str());
        let (r, m) = text(Some(c));
        if newest.is_some_and(|r| r.phase == ReleasePhase::Failed) && !held {
            return (Health::Failed, r, m);
        }
        return (if held { Health::Held } else { Health::Stalled }, r, m);
    }
    let ready = condition(channel, "Ready");
    let (r, m) = text(ready);
    if newest.is_some_and(|r| r.phase == ReleasePhase::Failed) {
        return (Health::Failed, r, m);
    }
    if newest.is_some_and(|r| r.phase == ReleasePhase::Progressing) {
        return (Health::Progressing, r, m);
    }
    match ready.map(|c| c.status.as_str()) {
        Some("True") => (Health::Ready, r, m),
        Some(_) if condition(channel, "Reconciling").is_some_and(|c| c.status == "True") => {
            (Health::Progressing, r, m)
        }
        Some(_) => (Health::Stalled, r, m),
        None => (Health::Unknown, r, m),
    }
}

/// The minted ReplicaSets of a snapshot by `(namespace, name)`.
pub struct Revisions<'a> {
    by_name: BTreeMap<(&'a str, &'a str), &'a ReplicaSet>,
}

impl<'a> Revisions<'a> {
    /// Indexes `replica_sets`.
    pub fn new(replica_sets: &[&'a ReplicaSet]) -> Self {
        let by_name = replica_sets
            .iter()
            .filter_map(|rs| {
                Some((
                    (
                        rs.metadata.namespace.as_deref()?,
                        rs.metadata.name.as_deref()?,
                    ),
                    *rs,
                ))
            })
            .collect();
        Revisions { by_name }
    }

    /// The ReplicaSet of `workload` at `revision` in `namespace`.
    pub fn get(&self, namespace: &str, workload: &str, revision: &str) -> Option<&'a ReplicaSet> {
        let name = format!("{workload}-{revision}");
        self.by_name.get(&(namespace, name.as_str())).copied()
    }
}

/// Ready and wanted pods of a ReplicaSet.
pub fn pods(rs: &ReplicaSet) -> Pods {
    Pods {
        ready: rs
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        wanted: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
    }
}

/// The images of a ReplicaSet's containers, in order.
pub fn images(rs: &ReplicaSet) -> Vec<String> {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn target_namespace(channel: &Channel) -> String {
    channel
        .spec
        .target_namespace
        .clone()
        .or_else(|| channel.metadata.namespace.clone())
        .unwrap_or_default()
}

/// The pods of a release's revisions, summed.
fn release_pods(channel: &Channel, release: &ReleaseRecord, revisions: &Revisions) -> Pods {
    let ns = target_namespace(channel);
    release
        .revisions
        .iter()
        .filter_map(|r| {
            revisions.get(
                r.namespace.as_deref().unwrap_or(&ns),
                &r.workload,
                &r.revision,
            )
        })
        .map(pods)
        .fold(Pods::default(), |a, p| Pods {
            ready: a.ready + p.ready,
            wanted: a.wanted + p.wanted,
        })
}

/// A channel's line on the overview.
pub fn summary(channel: &Channel, revisions: &Revisions, now: Option<Timestamp>) -> ChannelSummary {
    let status = channel.status.clone().unwrap_or_default();
    let forge = Forge::of(&channel.spec.git.url);
    let (health, reason, message) = health(channel);
    let serving = status.active_release.as_ref().and_then(|id| {
        let record = status
            .releases
            .iter()
            .find(|r| &r.id == id && r.phase == ReleasePhase::Active)
            .or_else(|| status.releases.iter().find(|r| &r.id == id))?;
        let since = record
            .promoted_at
            .as_deref()
            .or(record.applied_at.as_deref());
        Some((
            id.clone(),
            CommitView::new(&record.commit, forge.as_ref()),
            since.map(|t| age(t, now)).unwrap_or_default(),
        ))
    });
    let rollout = status
        .releases
        .first()
        .filter(|r| r.phase == ReleasePhase::Progressing)
        .map(|r| release_pods(channel, r, revisions));
    let held_commit = status
        .last_attempted_commit
        .as_ref()
        .filter(|_| health == Health::Held && reason == "PruneHeld")
        .map(|c| c.sha.clone());
    ChannelSummary {
        held_commit,
        namespace: channel.metadata.namespace.clone().unwrap_or_default(),
        name: channel.metadata.name.clone().unwrap_or_default(),
        health,
        reason,
        message,
        serving,
        rollout,
        source: format!(
            "{} ({})",
            redact_url(&channel.spec.git.url),
            channel.spec.git.path
        ),
    }
}

/// The overview of every channel in the snapshot.
pub fn overview(snapshot: &Snapshot) -> Overview {
    let revisions = Revisions::new(&snapshot.replica_sets);
    let mut groups: BTreeMap<String, Vec<ChannelSummary>> = BTreeMap::new();
    for channel in &snapshot.channels {
        let s = summary(channel, &revisions, snapshot.now);
        groups.entry(s.namespace.clone()).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(ns, mut list)| {
            list.sort_by(|a, b| a.name.cmp(&b.name));
            (ns, list)
        })
        .collect()
}

/// An event as the pages show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventView {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// The reason, e.g. `DriftCorrected`.
    pub reason: String,
    /// The message.
    pub message: String,
    /// When it last happened, RFC 3339.
    pub time: String,
    /// How many times.
    pub count: i32,
    /// The object it is about besides the channel (`kind`, `name`): a
    /// release's ReplicaSet or test Job.
    pub related: Option<(String, String)>,
}

fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The events about `channel`, oldest first.
pub fn channel_events(channel: &Channel, events: &[&Event]) -> Vec<EventView> {
    let ns = channel.metadata.namespace.as_deref();
    let name = channel.metadata.name.as_deref();
    let mut list: Vec<(Option<Timestamp>, EventView)> = events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Channel")
                && e.involved_object.name.as_deref() == name
                && e.metadata.namespace.as_deref() == ns
        })
        .map(|e| {
            let time = event_time(e);
            (
                time,
                EventView {
                    type_: e.type_.clone().unwrap_or_default(),
                    reason: e.reason.clone().unwrap_or_default(),
                    message: e.message.clone().unwrap_or_default(),
                    time: time.map(|t| t.to_string()).unwrap_or_default(),
                    count: e.count.unwrap_or(1),
                    related: e
                        .related
                        .as_ref()
                        .and_then(|r| Some((r.kind.clone()?, r.name.clone()?))),
                },
            )
        })
        .collect();
    list.sort_by_key(|(time, _)| *time);
    list.into_iter().map(|(_, e)| e).collect()
}

/// What a revert commit's subject says it reverts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reverts {
    /// `Revert release <id> (...)` or `Revert failed release <id> (...)`.
    Release(String),
    /// `Revert "<subject>"`, as git and `kubemint revert --commit` write it.
    Subject(String),
}

/// What a subject reverts, if it is a revert's subject (see `revert::revert_message`
/// and the automatic revert's subject).
pub fn reverts(subject: &str) -> Option<Reverts> {
    let rest = subject.strip_prefix("Revert ")?;
    if let Some(quoted) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Some(Reverts::Subject(quoted.to_string()));
    }
    let rest = rest.strip_prefix("failed ").unwrap_or(rest);
    let id = rest.strip_prefix("release ")?.split([' ', ':']).next()?;
    (!id.is_empty()).then(|| Reverts::Release(id.to_string()))
}

/// A workload whose revision changed from the release before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadChange {
    /// The workload.
    pub workload: String,
    /// Its revision before (`None`: new workload).
    pub from: Option<String>,
    /// Its revision now (`None`: removed).
    pub to: Option<String>,
    /// Images before, when that revision is still kept.
    pub images_from: Vec<String>,
    /// Images now, when this revision is still kept.
    pub images_to: Vec<String>,
}

/// A link to another entry of the same timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRef {
    /// Its commit's short sha (the entry's anchor and page).
    pub short: String,
    /// Its commit's subject.
    pub subject: String,
}

/// The automatic revert that followed a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoRevertView {
    /// How it went.
    pub outcome: RevertOutcome,
    /// What happened.
    pub message: String,
    /// The revert commit's short sha, when pushed.
    pub commit: Option<String>,
}

/// A revision of a release and its pods, for the release page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionView {
    /// Namespace of the workload.
    pub namespace: String,
    /// The workload.
    pub workload: String,
    /// Revision hash.
    pub revision: String,
    /// Its pods, when the ReplicaSet is still kept.
    pub pods: Option<Pods>,
    /// Its images, when kept.
    pub images: Vec<String>,
    /// When it was scaled to zero.
    pub drained_at: Option<String>,
}

/// The pre-promotion test of a release, as its record holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestView {
    /// The test Job.
    pub job: String,
    /// Whether it passed.
    pub passed: bool,
    /// Its last log lines, as the operator read them.
    pub logs: Option<String>,
}

impl TestView {
    /// The test of `record`, once it passed or failed.
    pub fn of(record: &ReleaseRecord) -> Option<TestView> {
        record.test.as_ref().map(|t| TestView {
            job: t.job.clone(),
            passed: t.outcome == TestOutcome::Passed,
            logs: t.logs.clone(),
        })
    }
}

/// One release in a timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Release id.
    pub id: String,
    /// Its phase.
    pub phase: ReleasePhase,
    /// Its commit.
    pub commit: CommitView,
    /// When applied, promoted, failed (the ReleaseFailed event) and drained.
    pub applied_at: Option<String>,
    /// When promoted.
    pub promoted_at: Option<String>,
    /// When it failed.
    pub failed_at: Option<String>,
    /// When its revisions were scaled to zero.
    pub drained_at: Option<String>,
    /// Why it failed (the test's log lines are in `test`).
    pub failure: Option<String>,
    /// The pre-promotion test's outcome, when the release had one.
    pub test: Option<TestView>,
    /// The commit of the release before it (the one it is compared with).
    pub before: Option<String>,
    /// Workloads that changed from the release before.
    pub changes: Vec<WorkloadChange>,
    /// Its revisions.
    pub revisions: Vec<RevisionView>,
    /// Pods of its revisions while it rolls out.
    pub rollout: Option<Pods>,
    /// The automatic revert that followed its failure.
    pub auto_revert: Option<AutoRevertView>,
    /// The entry this one reverts.
    pub reverts: Option<EntryRef>,
    /// The entry that reverted this one.
    pub reverted_by: Option<EntryRef>,
    /// Events during its time (drift corrections, prune holds, ...).
    pub events: Vec<EventView>,
}

/// A channel's page: its summary and its releases, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// How the channel stands.
    pub summary: ChannelSummary,
    /// Releases, newest first.
    pub entries: Vec<Entry>,
    /// Events older than every release.
    pub earlier_events: Vec<EventView>,
}

/// Event reasons that belong to the channel's story; the rest (Minted,
/// Applied) repeat what the entry already says.
const TOLD_REASONS: &[&str] = &["Minted"];

/// The timeline of `channel`.
pub fn timeline(channel: &Channel, snapshot: &Snapshot) -> Timeline {
    let revisions = Revisions::new(&snapshot.replica_sets);
    let summary = summary(channel, &revisions, snapshot.now);
    let status = channel.status.clone().unwrap_or_default();
    let forge = Forge::of(&channel.spec.git.url);
    let ns = target_namespace(channel);
    let records = &status.releases;
    let mut entries: Vec<Entry> = records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let before = records[i + 1..]
                .iter()
                .find(|r| r.phase != ReleasePhase::Failed);
            entry(record, before, &ns, &revisions, forge.as_ref())
        })
        .collect();
    link_reverts(&mut entries);
    if let Some(auto) = &status.auto_revert {
        let target = entries
            .iter_mut()
            .find(|e| e.id == auto.release && e.commit.sha == auto.commit);
        if let Some(e) = target {
            e.auto_revert = Some(AutoRevertView {
                outcome: auto.outcome,
                message: auto.message.clone(),
                commit: auto
                    .revert_commit
                    .as_deref()
                    .map(|s| short_sha(s).to_string()),
            });
        }
    }
    let earlier_events = place_events(&mut entries, channel_events(channel, &snapshot.events));
    Timeline {
        summary,
        entries,
        earlier_events,
    }
}

fn entry(
    record: &ReleaseRecord,
    before: Option<&ReleaseRecord>,
    ns: &str,
    revisions: &Revisions,
    forge: Option<&Forge>,
) -> Entry {
    let rs_of = |w: &crate::api::WorkloadRevision| {
        revisions.get(
            w.namespace.as_deref().unwrap_or(ns),
            &w.workload,
            &w.revision,
        )
    };
    let views: Vec<RevisionView> = record
        .revisions
        .iter()
        .map(|w| {
            let rs = rs_of(w);
            RevisionView {
                namespace: w.namespace.clone().unwrap_or_else(|| ns.to_string()),
                workload: w.workload.clone(),
                revision: w.revision.clone(),
                pods: rs.map(pods),
                images: rs.map(images).unwrap_or_default(),
                drained_at: rs.and_then(|rs| {
                    rs.metadata
                        .annotations
                        .as_ref()?
                        .get(DRAINED_ANNOTATION)
                        .cloned()
                }),
            }
        })
        .collect();
    let mut changes = Vec::new();
    let previous: &[crate::api::WorkloadRevision] = before.map_or(&[], |b| &b.revisions);
    for w in &record.revisions {
        let old = previous
            .iter()
            .find(|p| p.workload == w.workload && p.namespace == w.namespace);
        if old.map(|o| &o.revision) != Some(&w.revision) {
            changes.push(WorkloadChange {
                workload: w.workload.clone(),
                from: old.map(|o| o.revision.clone()),
                to: Some(w.revision.clone()),
                images_from: old.and_then(rs_of).map(images).unwrap_or_default(),
                images_to: rs_of(w).map(images).unwrap_or_default(),
            });
        }
    }
    for old in previous {
        if !record
            .revisions
            .iter()
            .any(|w| w.workload == old.workload && w.namespace == old.namespace)
        {
            changes.push(WorkloadChange {
                workload: old.workload.clone(),
                from: Some(old.revision.clone()),
                to: None,
                images_from: rs_of(old).map(images).unwrap_or_default(),
                images_to: Vec::new(),
            });
        }
    }
    let drained_at = (record.phase == ReleasePhase::Superseded)
        .then(|| views.iter().filter_map(|v| v.drained_at.clone()).max())
        .flatten();
    let failure = record
        .message
        .clone()
        .filter(|_| record.phase == ReleasePhase::Failed);
    let rollout = (record.phase == ReleasePhase::Progressing).then(|| {
        views
            .iter()
            .filter_map(|v| v.pods)
            .fold(Pods::default(), |a, p| Pods {
                ready: a.ready + p.ready,
                wanted: a.wanted + p.wanted,
            })
    });
    Entry {
        id: record.id.clone(),
        phase: record.phase,
        commit: CommitView::new(&record.commit, forge),
        applied_at: record.applied_at.clone(),
        promoted_at: record.promoted_at.clone(),
        failed_at: record.failed_at.clone(),
        drained_at,
        failure,
        test: TestView::of(record),
        before: before.map(|b| b.commit.sha.clone()),
        changes,
        revisions: views,
        rollout,
        auto_revert: None,
        reverts: None,
        reverted_by: None,
        events: Vec::new(),
    }
}

/// Links each revert entry to the older entry it reverts, both ways.
fn link_reverts(entries: &mut [Entry]) {
    for i in 0..entries.len() {
        let Some(what) = reverts(&entries[i].commit.subject) else {
            continue;
        };
        let target = (i + 1..entries.len()).find(|&j| match &what {
            Reverts::Release(id) => {
                entries[j].id.starts_with(id.as_str())
                    && entries[j].commit.sha != entries[i].commit.sha
            }
            Reverts::Subject(s) => &entries[j].commit.subject == s,
        });
        if let Some(j) = target {
            let of = |e: &Entry| EntryRef {
                short: e.commit.short().to_string(),
                subject: e.commit.subject.clone(),
            };
            entries[i].reverts = Some(of(&entries[j]));
            if entries[j].reverted_by.is_none() {
                entries[j].reverted_by = Some(of(&entries[i]));
            }
        }
    }
}

/// Puts each event on the entry of the object it relates to (a release's
/// ReplicaSet or test Job), else on the newest entry applied before it;
/// returns those older than every entry.
fn place_events(entries: &mut [Entry], events: Vec<EventView>) -> Vec<EventView> {
    let mut earlier = Vec::new();
    for event in events {
        if TOLD_REASONS.contains(&event.reason.as_str()) {
            continue;
        }
        let at: Option<Timestamp> = event.time.parse().ok();
        let before_event = |e: &Entry| {
            let applied: Option<Timestamp> = e.applied_at.as_deref().and_then(|t| t.parse().ok());
            matches!((applied, at), (Some(a), Some(t)) if a <= t)
        };
        // A ReplicaSet can be several entries' (a revert renders to the
        // release it restores): the newest applied before the event.
        let relates = |e: &Entry| match event.related.as_ref() {
            Some((kind, name)) if kind == "ReplicaSet" => e
                .revisions
                .iter()
                .any(|r| format!("{}-{}", r.workload, r.revision) == *name),
            Some((kind, name)) if kind == "Job" => e.test.as_ref().is_some_and(|t| t.job == *name),
            _ => false,
        };
        let by_object = || entries.iter().position(|e| relates(e) && before_event(e));
        let by_time = || entries.iter().position(before_event);
        match by_object().or_else(by_time) {
            Some(i) => entries[i].events.push(event),
            None => earlier.push(event),
        }
    }
    for e in entries.iter_mut() {
        e.events.reverse();
    }
    earlier.reverse();
    earlier
}

/// The entry of `channel`'s timeline whose commit starts with `short`.
pub fn find_entry<'t>(timeline: &'t Timeline, short: &str) -> Option<&'t Entry> {
    timeline
        .entries
        .iter()
        .find(|e| !short.is_empty() && e.commit.sha.starts_with(short))
}

/// How a commit ended on another cluster (or channel), from its deployment notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RanView {
    /// The cluster (its notes ref).
    pub cluster: String,
    /// `<namespace>/<name>` of the channel there.
    pub channel: String,
    /// The release's phase after the latest note (`Active`, `Failed`, `Superseded`).
    pub phase: String,
    /// When the latest note's event happened, RFC 3339.
    pub time: String,
    /// Why it failed there, when it did.
    pub message: Option<String>,
    /// The revert pushed for it there.
    pub revert_commit: Option<String>,
}

/// Where else `commit` ran, from every cluster's notes: the latest note of
/// each (cluster, channel), leaving out this channel on this cluster (`own`;
/// without a cluster name, every cluster is shown). Sorted by cluster, then channel.
pub fn where_it_ran(
    notes: &[crate::source::notes::NoteRecord],
    commit: &str,
    own: (Option<&str>, &str),
) -> Vec<RanView> {
    use crate::source::notes::latest_time;
    let mut latest: BTreeMap<(&str, &str), &crate::source::notes::DeploymentNote> = BTreeMap::new();
    for r in notes.iter().filter(|r| r.commit == commit) {
        let cluster = r.cluster_ref.as_str();
        if own.0 == Some(cluster) && r.note.channel == own.1 {
            continue;
        }
        let slot = latest
            .entry((cluster, r.note.channel.as_str()))
            .or_insert(&r.note);
        // Notes are appended in order: a later one of the same time wins too.
        if latest_time(&r.note) >= latest_time(slot) {
            *slot = &r.note;
        }
    }
    latest
        .into_iter()
        .map(|((cluster, channel), n)| RanView {
            cluster: cluster.to_string(),
            channel: channel.to_string(),
            phase: n.phase.clone(),
            time: latest_time(n).to_string(),
            message: n.message.clone(),
            revert_commit: n.revert_commit.as_deref().map(|s| short_sha(s).to_string()),
        })
        .collect()
}
