//! The audit trail in git: which deployment notes a pass writes (pure), and
//! the automatic revert of a release that failed (`spec.rollout.onFailure:
//! revert`). The git work itself is in `source::notes` and `revert`.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::context::Context;
use crate::api::{
    AutoRevertStatus, Channel, ChannelStatus, ReleasePhase, ReleaseRecord, RevertOutcome,
};
use crate::revert::{ChannelRevert, ChannelReverted, InMemoryKey, RevertError, Target, Workdir};
use crate::rollout::{DesiredRevision, Phase};
use crate::source::notes::{
    write_note, DeploymentNote, NoteEvent, NoteTimes, NoteWorkload, NoteWrite,
};
use crate::source::{short_sha, GitCredentials};

/// How many pushes a note gets before it is given up (and reported).
pub const NOTE_PUSH_ATTEMPTS: u32 = 8;

/// Author of automatic reverts and notes.
pub const BOT_NAME: &str = "kubemint";
/// Author email of automatic reverts.
pub const BOT_EMAIL: &str = "kubemint@localhost";

/// The operator as notes name it.
pub fn operator_version() -> String {
    format!("kubemint {}", env!("CARGO_PKG_VERSION"))
}

/// What a pass knows that notes are made of.
pub struct PassFacts<'a> {
    /// `--cluster-name`.
    pub cluster: &'a str,
    /// `<namespace>/<name>` of the channel.
    pub channel: &'a str,
    /// The status before the pass (as the channel was read).
    pub before: Option<&'a ChannelStatus>,
    /// The status the pass reports.
    pub after: &'a ChannelStatus,
    /// The release of the pass.
    pub release: &'a str,
    /// Its commit.
    pub commit: &'a str,
    /// Its revisions.
    pub revisions: &'a [DesiredRevision],
    /// Where it stands.
    pub phase: &'a Phase,
    /// ReplicaSets scaled to zero in this pass.
    pub drained: &'a [String],
    /// Now, RFC 3339.
    pub now: &'a str,
    /// The automatic revert pushed in this pass for a failed release.
    pub revert_commit: Option<&'a str>,
}

/// Whether the release of the pass was already the one serving before it.
fn was_active(before: Option<&ChannelStatus>, release: &str, commit: &str) -> bool {
    before.is_some_and(|s| {
        s.active_release.as_deref() == Some(release)
            && s.last_applied_commit.as_ref().map(|c| c.sha.as_str()) == Some(commit)
    })
}

/// The notes a pass writes, each to be attached to `note.commit`: the release
/// promoted (the first pass where it serves), failed (the pass where it failed
/// its gate) and the release it superseded.
pub fn notes_of_pass(f: &PassFacts) -> Vec<DeploymentNote> {
    let record = f
        .after
        .releases
        .iter()
        .find(|r| r.id == f.release && r.commit.sha == f.commit);
    let workloads: Vec<NoteWorkload> = f
        .revisions
        .iter()
        .map(|r| NoteWorkload {
            namespace: r.workload.0.clone(),
            name: r.workload.1.clone(),
            revision: r.hash.clone(),
            images: images(&r.manifest),
        })
        .collect();
    let base = |event: NoteEvent, phase: &str| DeploymentNote {
        cluster: f.cluster.to_string(),
        channel: f.channel.to_string(),
        release: f.release.to_string(),
        event: Some(event),
        phase: phase.to_string(),
        commit: f.commit.to_string(),
        subject: record.map(|r| r.commit.subject.clone()),
        times: NoteTimes {
            applied: record.and_then(|r| r.applied_at.clone()),
            ..Default::default()
        },
        workloads: workloads.clone(),
        message: None,
        revert_commit: None,
        operator: operator_version(),
    };
    // Failed now, or found failed (the operator was down when it failed) and not yet recorded so.
    let recorded_failed = f.before.is_some_and(|s| {
        s.releases.iter().any(|r| {
            r.id == f.release && r.commit.sha == f.commit && r.phase == ReleasePhase::Failed
        })
    });
    let mut notes = Vec::new();
    match f.phase {
        Phase::Failed { now, .. } if *now || !recorded_failed => {
            let mut note = base(NoteEvent::Failed, "Failed");
            note.times.failed = Some(f.now.to_string());
            // Only the message: a test Job's log lines (`record.test`) stay in
            // the cluster, as notes are pushed to the repository.
            note.message = record.and_then(|r| r.message.clone());
            note.revert_commit = f.revert_commit.map(str::to_string);
            notes.push(note);
        }
        Phase::Active | Phase::Draining if !was_active(f.before, f.release, f.commit) => {
            let mut note = base(NoteEvent::Promoted, "Active");
            note.times.promoted = Some(
                record
                    .and_then(|r| r.promoted_at.clone())
                    .unwrap_or_else(|| f.now.to_string()),
            );
            notes.push(note);
            if let Some(old) = superseded(f.before, f.release, f.commit) {
                notes.push(superseded_note(f, old));
            }
        }
        _ => {}
    }
    notes
}

/// The release that served before, when another one is promoted over it.
fn superseded<'a>(
    before: Option<&'a ChannelStatus>,
    release: &str,
    commit: &str,
) -> Option<&'a ReleaseRecord> {
    let before = before?;
    let active = before.active_release.as_deref()?;
    let sha = before.last_applied_commit.as_ref()?.sha.as_str();
    if active == release && sha == commit {
        return None;
    }
    before
        .releases
        .iter()
        .find(|r| r.id == active && r.commit.sha == sha)
        .or_else(|| {
            before
                .releases
                .iter()
                .find(|r| r.id == active && r.phase == ReleasePhase::Active)
        })
}

fn superseded_note(f: &PassFacts, old: &ReleaseRecord) -> DeploymentNote {
    let drained = old.revisions.iter().any(|w| {
        let name = format!("{}-{}", w.workload, w.revision);
        f.drained.contains(&name)
    });
    DeploymentNote {
        cluster: f.cluster.to_string(),
        channel: f.channel.to_string(),
        release: old.id.clone(),
        event: Some(NoteEvent::Superseded),
        phase: "Superseded".into(),
        commit: old.commit.sha.clone(),
        subject: Some(old.commit.subject.clone()),
        times: NoteTimes {
            applied: old.applied_at.clone(),
            promoted: old.promoted_at.clone(),
            superseded: Some(f.now.to_string()),
            drained: drained.then(|| f.now.to_string()),
            failed: None,
        },
        workloads: old
            .revisions
            .iter()
            .map(|w| NoteWorkload {
                namespace: w.namespace.clone(),
                name: w.workload.clone(),
                revision: w.revision.clone(),
                images: Vec::new(),
            })
            .collect(),
        message: Some(format!("superseded by release {}", f.release)),
        revert_commit: None,
        operator: operator_version(),
    }
}

/// The images of a minted ReplicaSet's pod template, init containers first.
fn images(manifest: &serde_json::Value) -> Vec<String> {
    let spec = &manifest["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

/// Writes `notes` in order in the background: the pass does not wait. A note
/// that cannot be pushed is a Warning event and a metric, never a failed pass.
pub fn spawn_notes(
    ctx: &Arc<Context>,
    channel: &Channel,
    credentials: GitCredentials,
    notes: Vec<DeploymentNote>,
) {
    if notes.is_empty() {
        return;
    }
    let ctx = ctx.clone();
    let channel = channel.clone();
    let url = channel.spec.git.url.clone();
    let cluster = ctx.cluster_name.clone();
    tokio::spawn(async move {
        for note in notes {
            let write = NoteWrite {
                url: url.clone(),
                credentials: credentials.clone(),
                cluster: cluster.clone(),
                commit: note.commit.clone(),
                document: note.to_document(),
                attempts: NOTE_PUSH_ATTEMPTS,
            };
            match write_note(write).await {
                Ok(attempts) => {
                    ctx.metrics.count_note("pushed");
                    tracing::info!(channel = %channel.label_value(), commit = %short_sha(&note.commit), release = %note.release, event = ?note.event, attempts, "deployment note pushed");
                }
                Err(e) => {
                    ctx.metrics.count_note(e.reason());
                    tracing::warn!(channel = %channel.label_value(), reason = e.reason(), error = %e, "deployment note not pushed");
                    let message = format!(
                        "note for release {} ({:?}) on commit {} not pushed to refs/notes/kubemint/{cluster}: {e}",
                        note.release,
                        note.event.unwrap_or(NoteEvent::Promoted),
                        short_sha(&note.commit)
                    );
                    ctx.publish(&channel, EventType::Warning, "NotesPushFailed", message)
                        .await;
                }
            }
        }
    });
}

/// The subject of an automatic revert: the release, and the failed workloads
/// with their ready counts (or the pre-promotion test Job that failed).
pub fn auto_revert_subject(
    release: &str,
    commit: &str,
    pending: &[(String, String)],
    hook: Option<&str>,
    timeout: &str,
) -> String {
    if let Some(job) = hook {
        return format!(
            "Revert failed release {release} (commit {}): pre-promotion test Job {job} failed",
            short_sha(commit)
        );
    }
    let detail: Vec<String> = pending
        .iter()
        .map(|(w, ready)| format!("{w} {ready} ready"))
        .collect();
    format!(
        "Revert failed release {release} (commit {}): {} after {timeout}",
        short_sha(commit),
        if detail.is_empty() {
            "not ready".to_string()
        } else {
            detail.join(", ")
        }
    )
}

/// What the automatic revert pushes and signs with.
pub struct RevertKeys {
    /// The channel's git credentials.
    pub credentials: GitCredentials,
    /// The key of `spec.rollout.revertSigning`, or why it could not be had.
    pub signing_key: Result<Option<InMemoryKey>, RevertError>,
}

/// Writes and pushes the revert of a release that failed now, with the
/// channel's credentials; returns what the status and the event say.
pub async fn auto_revert(
    channel: &Channel,
    status: &ChannelStatus,
    keys: RevertKeys,
    release: &str,
    commit: &str,
    pending: &[(String, String)],
    hook: Option<&str>,
) -> AutoRevertStatus {
    let RevertKeys {
        credentials,
        signing_key,
    } = keys;
    let outcome = async {
        let signing_key = signing_key?;
        ChannelRevert::of(channel, status, &Target::Release(release.into()))?
            .message(Some(auto_revert_subject(
                release,
                commit,
                pending,
                hook,
                &channel.spec.rollout.ready_timeout,
            )))
            .author(Some((BOT_NAME.into(), BOT_EMAIL.into())))
            .workdir(Workdir::Scratch("kubemint-autorevert-"))
            .push(true)
            .automatic(release.to_string())
            .signing_key(signing_key)
            .run(credentials)
            .await
    }
    .await;
    let time = Timestamp::now().to_string();
    let base = AutoRevertStatus {
        release: release.to_string(),
        commit: commit.to_string(),
        time,
        ..Default::default()
    };
    match outcome {
        Ok(ChannelReverted {
            reverted, branch, ..
        }) => AutoRevertStatus {
            outcome: RevertOutcome::Pushed,
            message: format!(
                "pushed {} \"{}\" to branch {branch}",
                short_sha(&reverted.sha),
                reverted.subject
            ),
            revert_commit: Some(reverted.sha),
            ..base
        },
        Err(e) => AutoRevertStatus {
            outcome: match &e {
                RevertError::Conflict { .. } => RevertOutcome::Conflict,
                RevertError::RevertOfRevert { .. } | RevertError::AlreadyReverted { .. } => {
                    RevertOutcome::Skipped
                }
                // The remote or the network may answer later: tried again.
                RevertError::Git { .. } | RevertError::Task(_) => RevertOutcome::Retrying,
                _ => RevertOutcome::Failed,
            },
            message: format!("{}: {e}", e.reason()),
            ..base
        },
    }
}

/// How long after a failed attempt an automatic revert is tried again.
pub const AUTO_REVERT_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The key that signs `channel`'s automatic reverts, from the `signing_key` of
/// the Secret `spec.rollout.revertSigning` names (none without it).
pub async fn revert_signing_key(
    client: &kube::Client,
    channel: &Channel,
) -> Result<Option<InMemoryKey>, RevertError> {
    let Some(spec) = &channel.spec.rollout.revert_signing else {
        return Ok(None);
    };
    let name = &spec.secret_ref.name;
    let namespace = channel.namespace().unwrap_or_default();
    let data = crate::cluster::secret_data(client, &namespace, name)
        .await
        .map_err(|e| RevertError::Signing {
            message: format!("reading the Secret {name} of spec.rollout.revertSigning: {e}"),
        })?;
    let key = data
        .get("signing_key")
        .ok_or_else(|| RevertError::Signing {
            message: format!(
                "the Secret {name} of spec.rollout.revertSigning has no key signing_key"
            ),
        })?;
    InMemoryKey::from_openssh(key)
        .map(Some)
        .map_err(|e| match e {
            RevertError::Signing { message } => RevertError::Signing {
                message: format!("Secret {name}, signing_key: {message}"),
            },
            other => other,
        })
}

/// The automatic revert's event: reason, type and message.
pub fn auto_revert_event(s: &AutoRevertStatus) -> (EventType, &'static str, String) {
    match s.outcome {
        RevertOutcome::Pushed => (
            EventType::Normal,
            "AutoReverted",
            format!("Release {} failed: {}", s.release, s.message),
        ),
        RevertOutcome::Skipped => (
            EventType::Normal,
            "AutoRevertSkipped",
            format!("Release {} failed; not reverted: {}", s.release, s.message),
        ),
        RevertOutcome::Retrying => (
            EventType::Warning,
            "AutoRevertFailed",
            format!(
                "Release {} failed; its revert was not pushed, trying again in {}s: {}",
                s.release,
                AUTO_REVERT_RETRY.as_secs(),
                s.message
            ),
        ),
        RevertOutcome::Conflict | RevertOutcome::Failed => (
            EventType::Warning,
            "AutoRevertFailed",
            format!(
                "Release {} failed; its revert was not pushed: {}",
                s.release, s.message
            ),
        ),
    }
}

/// Whether the pass should revert the failed release: the channel asks for it
/// and no revert of this release and commit was tried yet. A release that
/// failed while the operator was down (held ever since) is reverted too. The
/// status only saves a clone: whether the release was reverted already is for
/// the loop guard to say, from git. An attempt that failed for a reason that
/// may pass ([`RevertOutcome::Retrying`]) is made again once [`AUTO_REVERT_RETRY`] is over.
pub fn should_revert(
    channel: &Channel,
    phase: &Phase,
    before: Option<&ChannelStatus>,
    release: &str,
    commit: &str,
    now: Timestamp,
) -> bool {
    let retry_due = |a: &AutoRevertStatus| {
        a.outcome == RevertOutcome::Retrying
            && a.time.parse::<Timestamp>().is_ok_and(|t| {
                now.duration_since(t).as_secs_f64() >= AUTO_REVERT_RETRY.as_secs_f64()
            })
    };
    let tried = before
        .and_then(|s| s.auto_revert.as_ref())
        .is_some_and(|a| a.release == release && a.commit == commit && !retry_due(a));
    channel.spec.rollout.on_failure == crate::api::OnFailure::Revert
        && matches!(phase, Phase::Failed { .. })
        && !tried
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_read_back_from_the_status_by_its_name() {
        use RevertOutcome::*;
        for outcome in [Pushed, Conflict, Skipped, Retrying, Failed] {
            let status = json!({"release": "r", "commit": "c", "outcome": outcome.to_string(),
                                "message": "m", "time": "t"});
            let status: AutoRevertStatus = serde_json::from_value(status).unwrap();
            assert_eq!(status.outcome, outcome);
        }
        let unknown = json!({"release": "r", "commit": "c", "outcome": "Exploded",
                             "message": "m", "time": "t"});
        let unknown: AutoRevertStatus = serde_json::from_value(unknown).unwrap();
        assert_eq!(unknown.outcome, Failed);
    }
    use crate::api::{CommitInfo, WorkloadRevision};
    use serde_json::json;

    fn record(id: &str, sha: &str, phase: ReleasePhase) -> ReleaseRecord {
        ReleaseRecord {
            id: id.into(),
            commit: CommitInfo {
                sha: sha.into(),
                subject: format!("subject {sha}"),
                ..Default::default()
            },
            applied_at: Some("2026-11-22T10:00:00Z".into()),
            promoted_at: (phase == ReleasePhase::Active).then(|| "2026-11-22T10:01:00Z".into()),
            failed_at: None,
            phase,
            message: (phase == ReleasePhase::Failed).then(|| "web has 0/2 pods ready".into()),
            revisions: vec![WorkloadRevision {
                namespace: Some("shop".into()),
                workload: "web".into(),
                revision: format!("h{id}"),
            }],
            test: None,
        }
    }

    fn status(active: Option<(&str, &str)>, releases: Vec<ReleaseRecord>) -> ChannelStatus {
        ChannelStatus {
            active_release: active.map(|a| a.0.to_string()),
            last_applied_commit: active.map(|a| CommitInfo {
                sha: a.1.into(),
                ..Default::default()
            }),
            releases,
            ..Default::default()
        }
    }

    fn revision() -> DesiredRevision {
        DesiredRevision {
            workload: (Some("shop".into()), "web".into()),
            namespace: "shop".into(),
            name: "web-hnew".into(),
            hash: "hnew".into(),
            replicas: 2,
            autoscale: None,
            manifest: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "ghcr.io/acme/web:1.5.0"},
                {"name": "proxy", "image": "envoy:1"}]}}}}),
            file: "web/deployment.yaml".into(),
        }
    }

    fn facts<'a>(
        before: &'a ChannelStatus,
        after: &'a ChannelStatus,
        phase: &'a Phase,
        revisions: &'a [DesiredRevision],
        drained: &'a [String],
    ) -> PassFacts<'a> {
        PassFacts {
            cluster: "prod",
            channel: "shop/web",
            before: Some(before),
            after,
            release: "new",
            commit: "c2",
            revisions,
            phase,
            drained,
            now: "2026-11-22T11:00:00Z",
            revert_commit: None,
        }
    }

    #[test]
    fn a_promotion_notes_the_release_and_the_one_it_superseded() {
        let before = status(
            Some(("old", "c1")),
            vec![
                record("new", "c2", ReleasePhase::Progressing),
                record("old", "c1", ReleasePhase::Active),
            ],
        );
        let after = status(
            Some(("new", "c2")),
            vec![
                record("new", "c2", ReleasePhase::Active),
                record("old", "c1", ReleasePhase::Superseded),
            ],
        );
        let revisions = [revision()];
        let drained = ["web-hold".to_string()];
        let notes = notes_of_pass(&facts(
            &before,
            &after,
            &Phase::Active,
            &revisions,
            &drained,
        ));
        assert_eq!(notes.len(), 2);
        let (promoted, superseded) = (&notes[0], &notes[1]);
        assert_eq!(promoted.event, Some(NoteEvent::Promoted));
        assert_eq!(
            (promoted.commit.as_str(), promoted.cluster.as_str()),
            ("c2", "prod")
        );
        assert_eq!(
            promoted.times.promoted.as_deref(),
            Some("2026-11-22T10:01:00Z")
        );
        assert_eq!(
            promoted.workloads[0].images,
            ["ghcr.io/acme/web:1.5.0", "envoy:1"]
        );
        assert!(promoted.operator.starts_with("kubemint "));
        assert_eq!(superseded.event, Some(NoteEvent::Superseded));
        assert_eq!(
            (superseded.release.as_str(), superseded.commit.as_str()),
            ("old", "c1")
        );
        assert_eq!(
            superseded.times.superseded.as_deref(),
            Some("2026-11-22T11:00:00Z")
        );
        assert_eq!(
            superseded.times.drained.as_deref(),
            Some("2026-11-22T11:00:00Z")
        );

        // The next pass (still active, draining or not) writes nothing.
        let notes = notes_of_pass(&facts(&after, &after, &Phase::Draining, &revisions, &[]));
        assert!(notes.is_empty());
    }

    #[test]
    fn a_failure_is_noted_once_with_its_revert() {
        let before = status(
            Some(("old", "c1")),
            vec![
                record("new", "c2", ReleasePhase::Progressing),
                record("old", "c1", ReleasePhase::Active),
            ],
        );
        let after = status(
            Some(("old", "c1")),
            vec![
                record("new", "c2", ReleasePhase::Failed),
                record("old", "c1", ReleasePhase::Active),
            ],
        );
        let revisions = [revision()];
        let now = Phase::Failed {
            pending: vec![("web".into(), "0/2".into())],
            now: true,
            hook: None,
        };
        let mut f = facts(&before, &after, &now, &revisions, &[]);
        f.revert_commit = Some("r1");
        let notes = notes_of_pass(&f);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].event, Some(NoteEvent::Failed));
        assert_eq!(
            notes[0].times.failed.as_deref(),
            Some("2026-11-22T11:00:00Z")
        );
        assert_eq!(notes[0].message.as_deref(), Some("web has 0/2 pods ready"));
        assert_eq!(notes[0].revert_commit.as_deref(), Some("r1"));
        let held = Phase::Failed {
            pending: vec![("web".into(), "0/2".into())],
            now: false,
            hook: None,
        };
        assert!(notes_of_pass(&facts(&after, &after, &held, &revisions, &[])).is_empty());
        // Failed while the operator was down: noted when it is found.
        let notes = notes_of_pass(&facts(&before, &after, &held, &revisions, &[]));
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].event, Some(NoteEvent::Failed));
    }

    #[test]
    fn the_first_release_of_a_channel_supersedes_nothing() {
        let before = ChannelStatus::default();
        let after = status(
            Some(("new", "c2")),
            vec![record("new", "c2", ReleasePhase::Active)],
        );
        let notes = notes_of_pass(&facts(&before, &after, &Phase::Active, &[], &[]));
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].event, Some(NoteEvent::Promoted));
    }

    #[test]
    fn a_failed_release_is_reverted_once_per_commit_held_or_not() {
        let mut channel: Channel = serde_json::from_value(json!({
            "apiVersion": "kubemint.io/v1alpha1", "kind": "Channel",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"git": {"url": "https://git.example.com/shop.git"},
                     "rollout": {"onFailure": "revert"}}
        }))
        .unwrap();
        let failed = |now| Phase::Failed {
            pending: vec![],
            now,
            hook: None,
        };
        let mut before = ChannelStatus::default();
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        assert!(should_revert(
            &channel,
            &failed(true),
            Some(&before),
            "r",
            "c",
            now
        ));
        assert!(
            should_revert(&channel, &failed(false), Some(&before), "r", "c", now),
            "failed while the operator was down"
        );
        assert!(!should_revert(
            &channel,
            &Phase::Active,
            Some(&before),
            "r",
            "c",
            now
        ));
        before.auto_revert = Some(AutoRevertStatus {
            release: "r".into(),
            commit: "c".into(),
            outcome: RevertOutcome::Conflict,
            ..Default::default()
        });
        assert!(!should_revert(
            &channel,
            &failed(true),
            Some(&before),
            "r",
            "c",
            now
        ));
        assert!(should_revert(
            &channel,
            &failed(true),
            Some(&before),
            "r",
            "c2",
            now
        ));
        // Git was unreachable: tried again, once the retry delay is over.
        before.auto_revert = Some(AutoRevertStatus {
            release: "r".into(),
            commit: "c".into(),
            outcome: RevertOutcome::Retrying,
            time: "2026-12-01T09:59:30Z".into(),
            ..Default::default()
        });
        let later: Timestamp = "2026-12-01T10:00:31Z".parse().unwrap();
        assert!(!should_revert(
            &channel,
            &failed(false),
            Some(&before),
            "r",
            "c",
            now
        ));
        assert!(should_revert(
            &channel,
            &failed(false),
            Some(&before),
            "r",
            "c",
            later
        ));
        channel.spec.rollout.on_failure = crate::api::OnFailure::Hold;
        assert!(!should_revert(&channel, &failed(true), None, "r", "c", now));
    }

    #[test]
    fn the_revert_subject_names_release_workloads_and_counts() {
        let s = auto_revert_subject(
            "3f2a9c",
            "1a2b3c4d5e6f7a8b",
            &[
                ("web".into(), "1/3".into()),
                ("worker".into(), "0/1".into()),
            ],
            None,
            "5s",
        );
        assert_eq!(
            s,
            "Revert failed release 3f2a9c (commit 1a2b3c4d5e6f): web 1/3 ready, worker 0/1 ready after 5s"
        );
        let s = auto_revert_subject(
            "3f2a9c",
            "1a2b3c4d5e6f7a8b",
            &[],
            Some("web-test-1a2b"),
            "5s",
        );
        assert_eq!(
            s,
            "Revert failed release 3f2a9c (commit 1a2b3c4d5e6f): pre-promotion test Job web-test-1a2b failed"
        );
    }
}
