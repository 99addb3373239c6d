//! Deployment notes: one YAML document per event (promoted, failed,
//! superseded) attached with `git notes` to the commit a release came from,
//! under `refs/notes/kubemint/<cluster>`, pushed to the channel's repository.
//!
//! Writing is fetch, merge, push: the remote notes ref is fetched into a
//! scratch bare repository, the new document is appended to whatever note the
//! commit already has there (entries are concatenated, never replaced), and the
//! result is pushed as a fast-forward. A push that loses a race with another
//! writer (another cluster's operator, another channel on the same repository)
//! is tried again from a fresh fetch, a bounded number of times.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use git2::{Oid, Repository, Signature};
use serde::{Deserialize, Serialize};

use super::auth::fetch_options;
use super::{push_refspec, redact_url, sanitize, GitCredentials};

/// Where kubemint's notes live: `refs/notes/kubemint/<cluster>`.
pub const NOTES_PREFIX: &str = "refs/notes/kubemint/";

/// The notes ref of a cluster.
pub fn notes_ref(cluster: &str) -> String {
    format!("{NOTES_PREFIX}{cluster}")
}

/// Whether `name` can be a cluster name in a ref (`git check-ref-format` rules, simplified).
pub fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.ends_with(".lock")
}

/// What happened to a release.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteEvent {
    /// Its Services switched to it (or, without workloads, it was applied).
    Promoted,
    /// It failed its readiness gate; traffic stayed where it was.
    Failed,
    /// Another release of the channel was promoted over it.
    Superseded,
}

/// When things happened to the release, RFC 3339.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NoteTimes {
    /// First applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// Promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<String>,
    /// Failed its readiness gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Superseded by another release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<String>,
    /// Its revisions were scaled to zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained: Option<String>,
}

/// One workload of the release.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NoteWorkload {
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Workload (Deployment) name.
    pub name: String,
    /// Revision hash.
    pub revision: String,
    /// Container images, as delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// One deployment record: what ran, where and when. Never holds a secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentNote {
    /// `--cluster-name` of the operator that wrote it.
    pub cluster: String,
    /// `<namespace>/<name>` of the channel.
    pub channel: String,
    /// Release id.
    pub release: String,
    /// What happened (`Promoted`, `Failed`, `Superseded`).
    pub event: Option<NoteEvent>,
    /// The release's phase after it (`Active`, `Failed`, `Superseded`).
    pub phase: String,
    /// The commit the release was rendered from.
    pub commit: String,
    /// Its subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The times.
    #[serde(default)]
    pub times: NoteTimes,
    /// Each workload's revision and images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<NoteWorkload>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The revert kubemint pushed for it (`spec.rollout.onFailure: revert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_commit: Option<String>,
    /// `kubemint <version>`.
    pub operator: String,
}

impl DeploymentNote {
    /// The note as one YAML document, starting with `---`.
    pub fn to_document(&self) -> String {
        let body = serde_yaml::to_string(self).unwrap_or_default();
        format!("---\n{body}")
    }
}

/// The YAML documents of a note's text, each starting with `---`, blank ones left out.
pub fn documents(text: &str) -> Vec<String> {
    let mut docs: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_end() == "---" {
            if !current.trim().is_empty() {
                docs.push(format!("---\n{current}"));
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        docs.push(format!("---\n{current}"));
    }
    docs
}

/// Merges two notes of the same commit: every entry of `ours` followed by the
/// entries of `theirs` it does not already have. Nothing is lost or reordered.
pub fn merge(ours: &str, theirs: &str) -> String {
    let mut docs = documents(ours);
    for doc in documents(theirs) {
        if !docs.contains(&doc) {
            docs.push(doc);
        }
    }
    docs.concat()
}

/// The deployment records in a note's text; documents that are not ones are skipped.
pub fn parse(text: &str) -> Vec<DeploymentNote> {
    documents(text)
        .iter()
        .filter_map(|d| serde_yaml::from_str::<DeploymentNote>(d).ok())
        .collect()
}

/// Errors of writing and reading notes. Messages name the repository and what to do.
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    /// A git operation failed.
    #[error("{action} {url}: {message}")]
    Git {
        /// What was being done.
        action: &'static str,
        /// Redacted URL.
        url: String,
        /// What git said, scrubbed of secrets.
        message: String,
    },
    /// Every push lost a race or was refused.
    #[error("{url} refused the notes push to {reference} (attempt {attempts}): {message}; the credentials need write access to refs/notes/kubemint/* (allow the bot to push notes refs on the forge)")]
    PushRejected {
        /// Redacted URL.
        url: String,
        /// The notes ref.
        reference: String,
        /// How many pushes were tried.
        attempts: u32,
        /// The last reason.
        message: String,
    },
    /// A scratch directory could not be made.
    #[error("scratch directory for notes of {url}: {message}")]
    Scratch {
        /// Redacted URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The background git task failed.
    #[error("git task failed: {0}")]
    Task(String),
}

impl NotesError {
    /// CamelCase reason for events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            NotesError::Git { .. } => "NotesGitFailed",
            NotesError::PushRejected { .. } => "NotesPushRejected",
            NotesError::Scratch { .. } => "NotesScratchFailed",
            NotesError::Task(_) => "NotesTaskFailed",
        }
    }
}

/// A note to add and push.
#[derive(Clone)]
pub struct NoteWrite {
    /// Repository URL.
    pub url: String,
    /// The channel's credentials.
    pub credentials: GitCredentials,
    /// `--cluster-name`: the note goes to `refs/notes/kubemint/<cluster>`.
    pub cluster: String,
    /// The commit to annotate.
    pub commit: String,
    /// The YAML document to add.
    pub document: String,
    /// Pushes tried before giving up.
    pub attempts: u32,
}

/// One lock per repository and notes ref: writers in this process take turns
/// (libgit2's push to a local path does not check that the ref is unchanged);
/// writers in other processes are dealt with by fetch, merge and push again.
fn writer_lock(url: &str, reference: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    locks
        .entry(format!("{url} {reference}"))
        .or_default()
        .clone()
}

/// Fetches, merges and pushes one note; returns how many pushes it took
/// (0 when the note was already there). Blocking.
pub fn write_note_blocking(write: &NoteWrite) -> Result<u32, NotesError> {
    let lock = writer_lock(&write.url, &notes_ref(&write.cluster));
    let _turn = lock.lock().unwrap_or_else(|p| p.into_inner());
    let url = &write.url;
    let creds = &write.credentials;
    let git = |action: &'static str| git_error(action, url, creds);
    let (_scratch, repo) = scratch_repo(url, creds)?;
    let reference = notes_ref(&write.cluster);
    let target = Oid::from_str(&write.commit).map_err(git("reading the commit id for"))?;
    let signature =
        Signature::now("kubemint", "kubemint@localhost").map_err(git("signing notes for"))?;
    let mut last = String::new();
    let mut tried = 0;
    for attempt in 1..=write.attempts.max(1) {
        if let Ok(mut r) = repo.find_reference(&reference) {
            let _ = r.delete();
        }
        fetch_notes(&repo, url, creds, &format!("+{reference}:{reference}"))
            .map_err(git("fetching notes from"))?;
        let existing = repo
            .find_note(Some(&reference), target)
            .ok()
            .and_then(|n| n.message().ok().map(str::to_string))
            .unwrap_or_default();
        let merged = merge(&existing, &write.document);
        if merged == existing {
            return Ok(0);
        }
        repo.note(
            &signature,
            &signature,
            Some(&reference),
            target,
            &merged,
            true,
        )
        .map_err(git("writing a note for"))?;
        match push_ref(&repo, url, creds, &reference) {
            Ok(()) => return Ok(attempt),
            Err(message) => {
                let race = lost_race(&message);
                last = message;
                tried = attempt;
                if !race {
                    break; // refused for good (credentials, permissions): no point in retrying
                }
                // Another writer won the race: fetch its notes and merge again.
                std::thread::sleep(jitter(attempt));
            }
        }
    }
    Err(NotesError::PushRejected {
        url: redact_url(url),
        reference,
        attempts: tried,
        message: last,
    })
}

/// Adds and pushes a note off the async workers.
pub async fn write_note(write: NoteWrite) -> Result<u32, NotesError> {
    tokio::task::spawn_blocking(move || write_note_blocking(&write))
        .await
        .map_err(|e| NotesError::Task(e.to_string()))?
}

/// Whether a refused push lost a race with another writer (the ref moved
/// since it was fetched), as libgit2 and git's receive-pack word it.
pub fn lost_race(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "non-fast-forward",
        "non-fastforward",
        "fetch first",
        "not present locally",
        "failed to update ref",
        "failed to lock",
        "cannot lock ref",
        "incorrect old value",
        "stale info",
        // Local and libgit2 transports: the ref was created or moved meanwhile.
        "already exists",
        "does not match",
        "old reference value",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// A growing, slightly random pause between push attempts, so that writers that
/// raced do not race again in lockstep.
fn jitter(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    Duration::from_millis(50 * u64::from(attempt) + u64::from(nanos % 150))
}

fn fetch_notes(
    repo: &Repository,
    url: &str,
    creds: &GitCredentials,
    refspec: &str,
) -> Result<(), git2::Error> {
    let mut remote = repo.remote_anonymous(url)?;
    let mut options = fetch_options(creds, url);
    remote.fetch(&[refspec], Some(&mut options), None)
}

/// Pushes `reference` as a fast-forward; the remote's reason when it is refused.
fn push_ref(
    repo: &Repository,
    url: &str,
    creds: &GitCredentials,
    reference: &str,
) -> Result<(), String> {
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(|e| sanitize(e.message(), url, creds))?;
    let refspec = format!("{reference}:{reference}");
    push_refspec(&mut remote, &refspec, creds, url).map_err(|e| sanitize(e.message(), url, creds))
}

/// The error of a git2 call on `url`, its message cleaned of credentials.
fn git_error<'a>(
    action: &'static str,
    url: &'a str,
    creds: &'a GitCredentials,
) -> impl Fn(git2::Error) -> NotesError + 'a {
    move |e| NotesError::Git {
        action,
        url: redact_url(url),
        message: sanitize(e.message(), url, creds),
    }
}

/// A private bare repository to fetch notes into (gone with the returned directory).
fn scratch_repo(
    url: &str,
    creds: &GitCredentials,
) -> Result<(tempfile::TempDir, Repository), NotesError> {
    let scratch = tempfile::Builder::new()
        .prefix("kubemint-notes-")
        .tempdir()
        .map_err(|e| NotesError::Scratch {
            url: redact_url(url),
            message: e.to_string(),
        })?;
    let repo = Repository::init_bare(scratch.path()).map_err(git_error(
        "preparing notes for",
        url,
        creds,
    ))?;
    Ok((scratch, repo))
}

/// One record read back from git: the commit it annotates and the cluster's ref it is under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteRecord {
    /// The cluster (the last part of the notes ref).
    pub cluster_ref: String,
    /// The annotated commit.
    pub commit: String,
    /// The record.
    pub note: DeploymentNote,
}

/// Reads every kubemint note of a repository (URL or path), all clusters. Blocking.
pub fn read_notes_blocking(
    url: &str,
    creds: &GitCredentials,
) -> Result<Vec<NoteRecord>, NotesError> {
    let git = |action: &'static str| git_error(action, url, creds);
    let (_scratch, repo) = scratch_repo(url, creds)?;
    let location = if Path::new(url).exists() {
        std::fs::canonicalize(url)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| url.to_string())
    } else {
        url.to_string()
    };
    fetch_notes(
        &repo,
        &location,
        creds,
        &format!("+{NOTES_PREFIX}*:{NOTES_PREFIX}*"),
    )
    .map_err(git("fetching notes from"))?;
    read_local(&repo).map_err(git("reading notes of"))
}

fn read_local(repo: &Repository) -> Result<Vec<NoteRecord>, git2::Error> {
    let mut records = Vec::new();
    let names: Vec<String> = repo
        .references_glob(&format!("{NOTES_PREFIX}*"))?
        .filter_map(Result::ok)
        .filter_map(|r| r.name().ok().map(str::to_string))
        .collect();
    for name in names {
        let cluster_ref = name.trim_start_matches(NOTES_PREFIX).to_string();
        for pair in repo.notes(Some(&name))? {
            let (blob, annotated) = pair?;
            let blob = repo.find_blob(blob)?;
            let text = String::from_utf8_lossy(blob.content());
            for note in parse(&text) {
                records.push(NoteRecord {
                    cluster_ref: cluster_ref.clone(),
                    commit: annotated.to_string(),
                    note,
                });
            }
        }
    }
    Ok(records)
}

/// Reads every kubemint note off the async workers.
pub async fn read_notes(url: String, creds: GitCredentials) -> Result<Vec<NoteRecord>, NotesError> {
    tokio::task::spawn_blocking(move || read_notes_blocking(&url, &creds))
        .await
        .map_err(|e| NotesError::Task(e.to_string()))?
}

/// The newest time a record names (the order `history --from-git` prints in).
pub fn latest_time(note: &DeploymentNote) -> &str {
    let t = &note.times;
    [
        &t.drained,
        &t.superseded,
        &t.failed,
        &t.promoted,
        &t.applied,
    ]
    .into_iter()
    .filter_map(|t| t.as_deref())
    .max()
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(event: NoteEvent, cluster: &str) -> DeploymentNote {
        DeploymentNote {
            cluster: cluster.into(),
            channel: "shop/web".into(),
            release: "3f2a9c1b0d4e".into(),
            event: Some(event),
            phase: "Active".into(),
            commit: "1a2b3c".into(),
            subject: Some("web 1.5.0".into()),
            times: NoteTimes {
                applied: Some("2026-11-22T10:00:00Z".into()),
                promoted: Some("2026-11-22T10:01:00Z".into()),
                ..Default::default()
            },
            workloads: vec![NoteWorkload {
                namespace: Some("shop".into()),
                name: "web".into(),
                revision: "ab12".into(),
                images: vec!["ghcr.io/acme/web:1.5.0".into()],
            }],
            message: None,
            revert_commit: None,
            operator: "kubemint 0.1.0".into(),
        }
    }

    #[test]
    fn a_note_is_one_yaml_document_that_reads_back() {
        let n = note(NoteEvent::Promoted, "prod");
        let doc = n.to_document();
        assert!(doc.starts_with("---\n"), "{doc}");
        assert!(doc.contains("event: Promoted") && doc.contains("ghcr.io/acme/web:1.5.0"));
        assert_eq!(parse(&doc), vec![n]);
    }

    #[test]
    fn merging_concatenates_entries_and_drops_exact_repeats() {
        let a = note(NoteEvent::Promoted, "prod").to_document();
        let b = note(NoteEvent::Superseded, "prod").to_document();
        let c = note(NoteEvent::Failed, "prod").to_document();
        let ours = format!("{a}{b}");
        let merged = merge(&ours, &format!("{b}{c}"));
        assert_eq!(merged, format!("{a}{b}{c}"));
        assert_eq!(
            merge(&merged, &a),
            merged,
            "the same entry is not added twice"
        );
        assert_eq!(merge("", &a), a);
        assert_eq!(parse(&merged).len(), 3);
    }

    #[test]
    fn foreign_documents_are_kept_but_not_parsed() {
        let text = format!("hello\n{}", note(NoteEvent::Failed, "x").to_document());
        assert_eq!(documents(&text).len(), 2);
        assert_eq!(parse(&text).len(), 1);
        assert_eq!(merge(&text, "").matches("hello").count(), 1);
    }

    #[test]
    fn only_a_lost_race_is_retried() {
        assert!(lost_race("cannot push non-fastforward reference"));
        assert!(lost_race("cannot push because a reference that you are trying to update on the remote contains commits that are not present locally."));
        assert!(lost_race("failed to update ref"));
        assert!(lost_race("failed to write reference 'refs/notes/kubemint/prod': a reference with that name already exists."));
        assert!(!lost_race(
            "remote error: access denied or repository not exported: /work"
        ));
        assert!(!lost_race(
            "authentication failed: the remote refused the credentials"
        ));
    }

    #[test]
    fn cluster_names_must_fit_in_a_ref() {
        assert!(valid_cluster_name("prod-eu.1"));
        for bad in ["", "a/b", "a..b", ".x", "x.lock", "a b", "x:y"] {
            assert!(!valid_cluster_name(bad), "{bad}");
        }
        assert_eq!(notes_ref("prod"), "refs/notes/kubemint/prod");
    }

    #[test]
    fn notes_are_written_merged_and_read_back_from_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Repository::init_bare(dir.path()).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        let tree = upstream
            .find_tree(upstream.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let sha = upstream
            .commit(Some("refs/heads/main"), &sig, &sig, "one", &tree, &[])
            .unwrap();
        let url = dir.path().display().to_string();
        let write = |doc: String, cluster: &str| NoteWrite {
            url: url.clone(),
            credentials: GitCredentials::none(),
            cluster: cluster.into(),
            commit: sha.to_string(),
            document: doc,
            attempts: 3,
        };
        let a = note(NoteEvent::Promoted, "prod").to_document();
        let b = note(NoteEvent::Superseded, "prod").to_document();
        assert_eq!(write_note_blocking(&write(a.clone(), "prod")).unwrap(), 1);
        assert_eq!(write_note_blocking(&write(b.clone(), "prod")).unwrap(), 1);
        assert_eq!(write_note_blocking(&write(a.clone(), "prod")).unwrap(), 0);
        let c = note(NoteEvent::Promoted, "dev").to_document();
        write_note_blocking(&write(c, "dev")).unwrap();
        let stored = upstream
            .find_note(Some("refs/notes/kubemint/prod"), sha)
            .unwrap();
        assert_eq!(stored.message().unwrap(), format!("{a}{b}"));
        let mut records = read_notes_blocking(&url, &GitCredentials::none()).unwrap();
        records.sort_by(|x, y| x.cluster_ref.cmp(&y.cluster_ref));
        let clusters: Vec<&str> = records.iter().map(|r| r.cluster_ref.as_str()).collect();
        assert_eq!(clusters, ["dev", "prod", "prod"]);
        assert!(records.iter().all(|r| r.commit == sha.to_string()));
    }

    #[test]
    fn concurrent_writers_lose_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Repository::init_bare(dir.path()).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        let tree = upstream
            .find_tree(upstream.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let sha = upstream
            .commit(Some("refs/heads/main"), &sig, &sig, "one", &tree, &[])
            .unwrap()
            .to_string();
        let url = dir.path().display().to_string();
        let writers: Vec<_> = (0..6)
            .map(|i| {
                let (url, sha) = (url.clone(), sha.clone());
                std::thread::spawn(move || {
                    let mut n = note(NoteEvent::Promoted, "prod");
                    n.channel = format!("ns/ch{i}");
                    write_note_blocking(&NoteWrite {
                        url,
                        credentials: GitCredentials::none(),
                        cluster: "prod".into(),
                        commit: sha,
                        document: n.to_document(),
                        attempts: 20,
                    })
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap().unwrap();
        }
        let records = read_notes_blocking(&url, &GitCredentials::none()).unwrap();
        let mut channels: Vec<String> = records.into_iter().map(|r| r.note.channel).collect();
        channels.sort();
        assert_eq!(
            channels,
            (0..6).map(|i| format!("ns/ch{i}")).collect::<Vec<_>>()
        );
    }
}
