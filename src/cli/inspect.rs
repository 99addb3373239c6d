//! `kubemint status` and `kubemint history`: a channel's state and its releases,
//! formatted for a terminal from the Channel object alone (no git access).

use std::fmt::Write as _;

use super::offline::write_table;
use crate::api::Channel;
use crate::api::{CommitInfo, ReleaseRecord};
use crate::source::notes::{latest_time, NoteRecord};
use crate::source::{redact_url, short_sha};

/// An RFC 3339 time to the second: the fraction only widens tables.
fn to_second(time: &str) -> String {
    match (time.find('.'), time.rfind(['Z', '+'])) {
        (Some(dot), Some(zone)) if dot < zone => format!("{}{}", &time[..dot], &time[zone..]),
        _ => time.to_string(),
    }
}

fn commit_line(c: &CommitInfo) -> String {
    let mut line = format!(
        "{} {} ({}, {})",
        short_sha(&c.sha),
        c.subject,
        c.author,
        c.time
    );
    if let Some(r) = &c.reference {
        let _ = write!(line, " from {r}");
    }
    line
}

/// Where a channel stands: source, applied commit, active release, conditions.
pub fn describe_status(channel: &Channel) -> String {
    let spec = &channel.spec;
    let status = channel.status.clone().unwrap_or_default();
    let mut out = String::new();
    let name = channel.key();
    let _ = writeln!(
        out,
        "Channel   {name}{}",
        if spec.suspend { " (suspended)" } else { "" }
    );
    let reference = crate::source::RefRequest::from_spec(&spec.git.reference)
        .map(|r| r.describe())
        .unwrap_or_else(|e| e.to_string());
    let _ = writeln!(
        out,
        "Source    {} {reference}, path {}, every {}",
        redact_url(&spec.git.url),
        spec.git.path,
        spec.git.interval
    );
    match &status.last_applied_commit {
        Some(c) => {
            let _ = writeln!(out, "Applied   {}", commit_line(c));
        }
        None => out.push_str("Applied   nothing yet\n"),
    }
    let applied_sha = status.last_applied_commit.as_ref().map(|c| &c.sha);
    if let Some(attempted) = status
        .last_attempted_commit
        .as_ref()
        .filter(|c| Some(&c.sha) != applied_sha)
    {
        let _ = writeln!(out, "Attempted {}", commit_line(attempted));
    }
    if let Some(active) = &status.active_release {
        let since = status
            .releases
            .iter()
            .find(|r| &r.id == active)
            .and_then(|r| r.promoted_at.as_deref().or(r.applied_at.as_deref()))
            .map(|t| format!(", since {}", to_second(t)))
            .unwrap_or_default();
        let _ = writeln!(out, "Release   {active}{since}");
    }
    if let Some(current) = status.releases.first() {
        if let Some(t) = &current.test {
            let _ = writeln!(
                out,
                "Test      Job {} of release {}: {:?}",
                t.job, current.id, t.outcome
            );
        }
        if !current.revisions.is_empty() {
            out.push_str("\nRevisions of the newest release:\n");
            for r in &current.revisions {
                let _ = writeln!(out, "  {}  {}", r.workload, r.revision);
            }
        }
    }
    if !status.conditions.is_empty() {
        out.push_str("\nConditions:\n");
        let rows: Vec<[String; 4]> = status
            .conditions
            .iter()
            .map(|c| {
                [
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                ]
            })
            .collect();
        write_table(&mut out, ["TYPE", "STATUS", "REASON", "MESSAGE"], &rows);
    }
    let objects = status.inventory.map_or(0, |i| i.entries.len());
    let _ = writeln!(out, "\nInventory: {objects} objects");
    out
}

/// The channel's releases, newest first: id, phase, commit, author, times,
/// pre-promotion test, subject; then each test's last log lines.
pub fn describe_history(channel: &Channel) -> String {
    let releases: &[ReleaseRecord] = channel
        .status
        .as_ref()
        .map(|s| s.releases.as_slice())
        .unwrap_or_default();
    if releases.is_empty() {
        return "no releases yet\n".to_string();
    }
    let rows: Vec<[String; 8]> = releases
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                format!("{:?}", r.phase),
                short_sha(&r.commit.sha).to_string(),
                r.commit.author.clone(),
                r.applied_at.as_deref().map_or("-".into(), to_second),
                r.promoted_at.as_deref().map_or("-".into(), to_second),
                r.test
                    .as_ref()
                    .map_or("-".into(), |t| format!("{} {:?}", t.job, t.outcome)),
                match &r.message {
                    Some(m) => format!("{} ({m})", r.commit.subject),
                    None => r.commit.subject.clone(),
                },
            ]
        })
        .collect();
    let mut out = String::new();
    write_table(
        &mut out,
        [
            "RELEASE", "PHASE", "COMMIT", "AUTHOR", "APPLIED", "PROMOTED", "TEST", "SUBJECT",
        ],
        &rows,
    );
    // The log lines of each test, below the table: they would not fit in a row.
    for r in releases {
        if let Some((test, logs)) = r.test.as_ref().and_then(|t| Some((t, t.logs.as_ref()?))) {
            let _ = writeln!(
                out,
                "\nTest Job {} of release {} ({:?}), its last log lines:",
                test.job, r.id, test.outcome
            );
            for line in logs.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

/// Deployment notes read from git (`history --from-git`), newest first; only
/// those of `cluster` and of channels named `channel` (`name` or
/// `namespace/name`) when given.
pub fn describe_notes(
    records: &[NoteRecord],
    cluster: Option<&str>,
    channel: Option<&str>,
) -> String {
    let mut shown: Vec<&NoteRecord> = records
        .iter()
        .filter(|r| cluster.is_none_or(|c| r.note.cluster == c || r.cluster_ref == c))
        .filter(|r| {
            channel
                .is_none_or(|c| r.note.channel == c || r.note.channel.rsplit('/').next() == Some(c))
        })
        .collect();
    if shown.is_empty() {
        return "no deployment notes under refs/notes/kubemint/\n".to_string();
    }
    shown.sort_by(|a, b| {
        latest_time(&b.note)
            .cmp(latest_time(&a.note))
            .then_with(|| a.note.cluster.cmp(&b.note.cluster))
    });
    let rows: Vec<[String; 8]> = shown
        .iter()
        .map(|r| {
            let n = &r.note;
            let workloads: Vec<String> = n
                .workloads
                .iter()
                .map(|w| match w.images.first() {
                    Some(image) => format!("{}={}", w.name, image),
                    None => format!("{}@{}", w.name, w.revision),
                })
                .collect();
            [
                n.cluster.clone(),
                n.channel.clone(),
                n.release.clone(),
                n.event.map_or("-".into(), |e| format!("{e:?}")),
                short_sha(&r.commit).to_string(),
                to_second(latest_time(n)),
                if workloads.is_empty() {
                    "-".into()
                } else {
                    workloads.join(",")
                },
                n.subject.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = String::new();
    write_table(
        &mut out,
        [
            "CLUSTER",
            "CHANNEL",
            "RELEASE",
            "EVENT",
            "COMMIT",
            "TIME",
            "WORKLOADS",
            "SUBJECT",
        ],
        &rows,
    );
    out
}

/// Why the deployment notes of a repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NotesFromGitError {
    /// `$KUBEMINT_GIT_CA_FILE` could not be read.
    #[error("reading {path}: {source}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The credentials from the environment are not usable.
    #[error(transparent)]
    Credentials(#[from] crate::source::SourceError),
    /// Reading the notes failed.
    #[error(transparent)]
    Notes(#[from] crate::source::notes::NotesError),
}

/// `kubemint history --from-git`: the deployment notes of repository `url`
/// (credentials from `$KUBEMINT_GIT_USERNAME`, `$KUBEMINT_GIT_PASSWORD` or
/// `$KUBEMINT_GIT_BEARER_TOKEN`, `$KUBEMINT_GIT_CA_FILE`), described; only
/// those of `cluster` and of channel `name` (in `namespace`) when given.
pub fn notes_from_git(
    url: &str,
    cluster: Option<&str>,
    name: Option<String>,
    namespace: Option<String>,
) -> Result<String, NotesFromGitError> {
    let mut data = std::collections::BTreeMap::new();
    for (var, key) in [
        ("KUBEMINT_GIT_USERNAME", "username"),
        ("KUBEMINT_GIT_PASSWORD", "password"),
        ("KUBEMINT_GIT_BEARER_TOKEN", "bearerToken"),
    ] {
        if let Ok(value) = std::env::var(var) {
            data.insert(key.to_string(), value.into_bytes());
        }
    }
    if let Ok(path) = std::env::var("KUBEMINT_GIT_CA_FILE") {
        let ca = std::fs::read(&path).map_err(|source| NotesFromGitError::CaFile {
            path: path.clone(),
            source,
        })?;
        data.insert("ca.crt".to_string(), ca);
    }
    let credentials = if data.is_empty() {
        crate::source::GitCredentials::none()
    } else {
        crate::source::GitCredentials::from_secret_data(&data)?
    };
    let channel = match (name, namespace) {
        (Some(name), Some(ns)) => Some(crate::api::channel_key(&ns, &name)),
        (name, _) => name,
    };
    let records = crate::source::notes::read_notes_blocking(url, &credentials)?;
    Ok(describe_notes(&records, cluster, channel.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ChannelStatus, ReleasePhase, WorkloadRevision};
    use serde_json::json;

    fn channel(status: ChannelStatus) -> Channel {
        let mut ch: Channel = serde_json::from_value(json!({
            "apiVersion": "kubemint.io/v1alpha1", "kind": "Channel",
            "metadata": {"name": "shop", "namespace": "prod"},
            "spec": {"git": {"url": "https://bot:s3cret@git.example.com/shop.git", "path": "deploy"}}
        }))
        .unwrap();
        ch.status = Some(status);
        ch
    }

    fn release(id: &str, sha: &str, subject: &str, phase: ReleasePhase) -> ReleaseRecord {
        ReleaseRecord {
            id: id.into(),
            commit: CommitInfo {
                sha: sha.into(),
                author: "Ada <ada@example.com>".into(),
                subject: subject.into(),
                time: "2026-11-22T10:00:00Z".into(),
                reference: Some("refs/heads/main".into()),
            },
            applied_at: Some("2026-11-22T10:01:00Z".into()),
            promoted_at: (phase != ReleasePhase::Failed).then(|| "2026-11-22T10:02:00Z".into()),
            failed_at: None,
            phase,
            message: (phase == ReleasePhase::Failed).then(|| "web: 0/2 ready".into()),
            revisions: vec![WorkloadRevision {
                namespace: None,
                workload: "web".into(),
                revision: "5d8c7f9b".into(),
            }],
            test: None,
        }
    }

    #[test]
    fn times_are_shown_to_the_second() {
        assert_eq!(
            to_second("2026-11-22T14:18:00.723527184Z"),
            "2026-11-22T14:18:00Z"
        );
        assert_eq!(
            to_second("2026-11-22T14:18:00.5+01:00"),
            "2026-11-22T14:18:00+01:00"
        );
        assert_eq!(to_second("2026-11-22T14:18:00Z"), "2026-11-22T14:18:00Z");
    }

    #[test]
    fn history_lists_releases_newest_first_with_failures_explained() {
        let status = ChannelStatus {
            releases: vec![
                release("r3", &"c".repeat(40), "web 1.6.0", ReleasePhase::Failed),
                release("r2", &"b".repeat(40), "web 1.5.0", ReleasePhase::Active),
                release("r1", &"a".repeat(40), "web 1.4.2", ReleasePhase::Superseded),
            ],
            ..Default::default()
        };
        let text = describe_history(&channel(status));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("  RELEASE  PHASE"), "{text}");
        assert!(
            lines[1].contains("r3") && lines[1].contains("Failed"),
            "{text}"
        );
        assert!(lines[1].contains("web 1.6.0 (web: 0/2 ready)"), "{text}");
        assert!(lines[2].contains("Active") && lines[2].contains(&"b".repeat(12)));
        assert!(lines[3].contains("Superseded"));
        assert_eq!(
            describe_history(&channel(ChannelStatus::default())),
            "no releases yet\n"
        );
    }

    #[test]
    fn history_and_status_show_each_release_s_test_and_its_log_lines() {
        use crate::api::{TestOutcome, TestResult};
        let tested = |mut r: ReleaseRecord, outcome, logs: Option<&str>| {
            r.test = Some(TestResult {
                job: format!("smoke-{}", r.id),
                namespace: None,
                outcome,
                logs: logs.map(str::to_string),
            });
            r
        };
        let status = ChannelStatus {
            releases: vec![
                tested(
                    release("r3", &"c".repeat(40), "web 1.6.0", ReleasePhase::Failed),
                    TestOutcome::Failed,
                    Some("connection refused\nexit 7"),
                ),
                tested(
                    release("r2", &"b".repeat(40), "web 1.5.0", ReleasePhase::Active),
                    TestOutcome::Passed,
                    None,
                ),
                release("r1", &"a".repeat(40), "web 1.4.2", ReleasePhase::Superseded),
            ],
            ..Default::default()
        };
        let ch = channel(status);
        let text = describe_history(&ch);
        let lines: Vec<&str> = text.lines().collect();
        let column = |name: &str| lines[0].find(name).unwrap_or_default();
        assert!(
            column("PROMOTED") < column("TEST") && column("TEST") < column("SUBJECT"),
            "{text}"
        );
        assert!(lines[1].contains("smoke-r3 Failed"), "{text}");
        assert!(lines[2].contains("smoke-r2 Passed"), "{text}");
        assert!(lines[3].contains(" - "), "{text}");
        assert_eq!(
            lines[4..],
            [
                "",
                "Test Job smoke-r3 of release r3 (Failed), its last log lines:",
                "    connection refused",
                "    exit 7",
            ],
            "{text}"
        );
        let status = describe_status(&ch);
        assert!(
            status.contains("Test      Job smoke-r3 of release r3: Failed\n"),
            "{status}"
        );
    }

    #[test]
    fn status_shows_source_applied_and_failed_attempt_without_secrets() {
        let mut applied = release("r2", &"b".repeat(40), "web 1.5.0", ReleasePhase::Active).commit;
        applied.reference = Some("refs/heads/main".into());
        let status = ChannelStatus {
            last_applied_commit: Some(applied),
            last_attempted_commit: Some(
                release("r3", &"c".repeat(40), "web 1.6.0", ReleasePhase::Failed).commit,
            ),
            active_release: Some("r2".into()),
            releases: vec![
                release("r3", &"c".repeat(40), "web 1.6.0", ReleasePhase::Failed),
                release("r2", &"b".repeat(40), "web 1.5.0", ReleasePhase::Active),
            ],
            ..Default::default()
        };
        let text = describe_status(&channel(status));
        assert!(text.contains("Channel   prod/shop\n"), "{text}");
        assert!(
            text.contains("https://***@git.example.com/shop.git branch 'main', path deploy"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains(&format!("Applied   {} web 1.5.0", "b".repeat(12))),
            "{text}"
        );
        assert!(
            text.contains(&format!("Attempted {} web 1.6.0", "c".repeat(12))),
            "{text}"
        );
        assert!(
            text.contains("Release   r2, since 2026-11-22T10:02:00Z"),
            "{text}"
        );
        assert!(text.contains("  web  5d8c7f9b"), "{text}");
    }

    #[test]
    fn notes_from_git_are_listed_newest_first_and_filtered() {
        use crate::source::notes::{DeploymentNote, NoteEvent, NoteRecord, NoteTimes};
        let record = |cluster: &str, channel: &str, event: NoteEvent, at: &str| NoteRecord {
            cluster_ref: cluster.into(),
            commit: "1a2b3c4d5e6f7a8b9c0d".into(),
            note: DeploymentNote {
                cluster: cluster.into(),
                channel: channel.into(),
                release: "3f2a9c1b0d4e".into(),
                event: Some(event),
                phase: "Active".into(),
                commit: "1a2b3c4d5e6f7a8b9c0d".into(),
                subject: Some("web 1.5.0".into()),
                times: NoteTimes {
                    promoted: Some(at.into()),
                    ..Default::default()
                },
                operator: "kubemint 0.1.0".into(),
                ..Default::default()
            },
        };
        let records = [
            record(
                "prod",
                "shop/web",
                NoteEvent::Promoted,
                "2026-11-22T10:00:00.5Z",
            ),
            record("dev", "shop/web", NoteEvent::Failed, "2026-11-22T11:00:00Z"),
            record(
                "prod",
                "other/api",
                NoteEvent::Superseded,
                "2026-11-22T09:00:00Z",
            ),
        ];
        let all = describe_notes(&records, None, None);
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 4, "{all}");
        assert!(
            lines[1].contains("dev") && lines[1].contains("Failed"),
            "{all}"
        );
        assert!(
            lines[2].contains("2026-11-22T10:00:00Z") && lines[2].contains("1a2b3c4d5e6f"),
            "{all}"
        );
        let prod_web = describe_notes(&records, Some("prod"), Some("web"));
        assert_eq!(prod_web.lines().count(), 2, "{prod_web}");
        assert!(describe_notes(&records, Some("staging"), None).starts_with("no deployment notes"));
    }
}
