//! The pull request loop: for every channel with `spec.forge`, the open pull
//! requests targeting its branch, each previewed with the engine's pass in
//! preview mode (every gate, as the channel's identity, dry runs only) and
//! answered with one comment per channel and cluster, kept up to date, and a
//! commit status. Its own task: a channel's delivery never waits on a forge.
//!
//! Cost: one list per repository per interval (the shortest `spec.git.interval`
//! of the channels that follow it), conditional where the forge gives an ETag;
//! one preview per (head commit, channel generation); a comment written only
//! when its text changes. A pull request is untrusted: its head is pinned as
//! a commit and fetched through the git layer like any other, nothing of it
//! runs, and its title, branch and file names are escaped in the comment.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};

use super::Context;
use crate::api::{Channel, ForgeType, GitRef};
use crate::cluster::changes::{ChangeAction, ChangeReason, ChangeSet};
use crate::engine::PreviewSource;
use crate::forge::{self, CommitState, ForgeError, ForgeKind, Listed, PullRequest, Status, Token};
use crate::rollout::Phase;
use crate::source::short_sha;

/// How often the loop looks for repositories whose interval has passed.
const TICK: Duration = Duration::from_secs(1);

/// What a preview of one pull request for one channel came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The release merging it would deliver, and its changes.
    Release {
        /// The release id.
        release: String,
        /// Every object, then drains and prunes, with masked diffs.
        changes: ChangeSet,
        /// The prune guard's refusal (reason, message), if it holds the commit.
        held: Option<(&'static str, String)>,
    },
    /// A gate refused it: the controller's reason and message.
    Refused {
        /// The reason, as in the channel's conditions.
        reason: &'static str,
        /// The message.
        message: String,
    },
}

/// The commit status of a previewed pull request.
pub fn preview_status(context: String, outcome: &Outcome) -> Status {
    let (state, description) = match outcome {
        Outcome::Release {
            release,
            changes,
            held: None,
        } => (
            CommitState::Success,
            format!(
                "would deliver release {release}: {} to create, {} to change, {} to prune",
                changes.count(ChangeAction::Created),
                changes.count(ChangeAction::Configured),
                changes.count(ChangeAction::Deleted)
            ),
        ),
        Outcome::Release {
            held: Some((reason, message)),
            ..
        }
        | Outcome::Refused { reason, message } => (
            CommitState::Failure,
            format!("refused ({reason}): {message}"),
        ),
    };
    Status {
        state,
        context,
        description,
        target_url: None,
    }
}

/// The commit status of a delivered commit as its release stands: pending
/// while it rolls out, success once promoted (linking to `link`), failure
/// naming what failed and the revert commit, if one was pushed.
pub fn delivered_status(
    context: String,
    phase: &Phase,
    release: &str,
    revert_commit: Option<&str>,
    link: Option<String>,
) -> Status {
    let (state, description, target_url) = match phase {
        Phase::Progressing { .. } | Phase::Testing { .. } => (
            CommitState::Pending,
            format!("rolling out release {release}"),
            None,
        ),
        Phase::Draining | Phase::Active => (
            CommitState::Success,
            format!("release {release} promoted"),
            link,
        ),
        Phase::Failed { pending, hook, .. } => {
            let what = match (hook, pending.as_slice()) {
                (Some(job), _) => format!("test Job {job} failed"),
                (None, []) => "not ready in time".to_string(),
                (None, pending) => pending
                    .iter()
                    .map(|(w, ready)| format!("{w} not ready ({ready})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let revert = revert_commit
                .map(|c| format!("; reverted by {}", short_sha(c)))
                .unwrap_or_default();
            (
                CommitState::Failure,
                format!("release {release} failed: {what}{revert}"),
                link,
            )
        }
    };
    Status {
        state,
        context,
        description,
        target_url,
    }
}

/// Sets the status of the commit a pass delivered, once per (commit, state),
/// in the background: a forge never holds up or fails a pass.
pub(super) fn report_delivery(
    ctx: &Arc<Context>,
    channel: &Channel,
    delivery: &crate::engine::Delivery,
    status: &crate::api::ChannelStatus,
) {
    let Some(spec) = channel.spec.forge.clone() else {
        return;
    };
    let rendered = &delivery.rendered;
    let sha = rendered.commit.sha.clone();
    if sha == "local" || sha.is_empty() {
        return;
    }
    let namespace = channel.namespace().unwrap_or_default();
    let name = channel.name_any();
    let release = &rendered.desired.id;
    let revert = status
        .auto_revert
        .as_ref()
        .filter(|r| r.release == *release)
        .and_then(|r| r.revert_commit.as_deref());
    let link = spec.ui_url.as_ref().map(|ui| {
        format!(
            "{}/ui/{}/{}/release/{sha}",
            ui.trim_end_matches('/'),
            forge::encode(&namespace),
            forge::encode(&name)
        )
    });
    let commit_status = delivered_status(
        forge::context(&ctx.cluster_name, &namespace, &name),
        &delivery.plan.phase,
        release,
        revert,
        link,
    );
    let once = format!(
        "Status/{:?}/{sha}/{}",
        commit_status.state,
        revert.unwrap_or_default()
    );
    if !ctx.memo(&channel.key(), |m| m.audit_once(once)) {
        return;
    }
    let (ctx, channel) = (ctx.clone(), channel.clone());
    tokio::spawn(async move {
        let sent = async {
            let key = repo_key(&channel, &spec)?;
            let token = read_token(&ctx, &channel, &key.secret).await?;
            let client = forge::Client::new(
                &key.base,
                kind_of(spec.kind).api(&key.repository),
                token,
                forge::Retry::default(),
            );
            client.set_status(&sha, &commit_status).await
        };
        if let Err(e) = sent.await {
            tracing::warn!(channel = %channel.key(), commit = %sha, error = %e, "commit status");
        }
    });
}

/// Escapes untrusted text (a title, a branch or file name) for Markdown and
/// HTML: it renders as the same characters, never as markup, a link or a mention.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '@' => out.push_str("&#64;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if "\\`*_{}[]()#+-.!|~:".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A fence longer than any run of backticks in `text`, so that `text` cannot close it.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

/// The comment on pull request `pull` for one channel (`namespace/name`) in
/// `cluster`: the marker that finds it again, the release, the counts, the
/// changed objects with their folded diffs (Secret values masked by the
/// preview), or the refusal.
pub fn comment(
    cluster: &str,
    namespace: &str,
    name: &str,
    pull: &PullRequest,
    outcome: &Outcome,
) -> String {
    let mut out = forge::marker(cluster, namespace, name);
    let _ = writeln!(
        out,
        "\n### kubemint: channel {}/{} in cluster {}\n",
        escape(namespace),
        escape(name),
        escape(cluster)
    );
    let _ = writeln!(
        out,
        "Pull request #{} {} (branch {}, commit {})\n",
        pull.number,
        escape(&pull.title),
        escape(&pull.head_branch),
        short_sha(&pull.head_sha)
    );
    let (release, changes, held) = match outcome {
        Outcome::Refused { reason, message } => {
            let _ = writeln!(
                out,
                "**Refused** ({reason}): {}\n\nMerging this would not be delivered.",
                escape(message)
            );
            return out;
        }
        Outcome::Release {
            release,
            changes,
            held,
        } => (release, changes, held),
    };
    match held {
        Some((reason, message)) => {
            let _ = writeln!(
                out,
                "**Held** ({reason}): {}\n\nRelease {} would wait for approval.\n",
                escape(message),
                escape(release)
            );
        }
        None => {
            let _ = writeln!(out, "**Release {}** would be delivered.\n", escape(release));
        }
    }
    let count = |action| changes.count(action);
    let _ = writeln!(
        out,
        "{} to create, {} to change, {} to prune, {} to drain, {} unchanged\n",
        count(ChangeAction::Created),
        count(ChangeAction::Configured),
        count(ChangeAction::Deleted),
        count(ChangeAction::ScaledDown),
        count(ChangeAction::Unchanged)
    );
    let minted = changes.minted();
    let drained = changes.drained();
    if !minted.is_empty() || !drained.is_empty() {
        let list = |names: &[&str]| match names {
            [] => "none".to_string(),
            names => names
                .iter()
                .map(|n| escape(n))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "Revisions minted: {}; drained: {}\n",
            list(&minted),
            list(&drained)
        );
    }
    let mut diff = String::new();
    for c in changes
        .entries
        .iter()
        .filter(|c| c.action != ChangeAction::Unchanged)
    {
        let note = match (c.action, &c.reason, &c.file) {
            (ChangeAction::Deleted, ChangeReason::Pruned, _) => {
                " (pruned: no longer declared)".into()
            }
            (ChangeAction::ScaledDown, _, _) => " (scaled to 0 after promotion)".into(),
            (ChangeAction::Deleted, _, _) => " (deleted after the drain)".into(),
            (_, _, Some(file)) => format!(" ({file})"),
            (_, _, None) => String::new(),
        };
        let mark = match c.action {
            ChangeAction::Created => '+',
            ChangeAction::Configured => '~',
            ChangeAction::Unchanged => '=',
            ChangeAction::ScaledDown => 'v',
            ChangeAction::Deleted => '-',
        };
        let _ = writeln!(diff, "{mark} {}{note}", c.object);
        for line in c.diff.lines() {
            let _ = writeln!(diff, "    {line}");
        }
    }
    if !diff.is_empty() {
        let fence = fence(&diff);
        let _ = write!(
            out,
            "<details><summary>What merging changes</summary>\n\n{fence}diff\n{diff}{fence}\n\n</details>\n"
        );
    }
    out
}

/// The API base of a forge: `spec.forge.url`, or from `git_url`'s host.
pub fn api_base(kind: ForgeKind, url: Option<&str>, git_url: &str) -> Option<String> {
    if let Some(url) = url {
        return Some(url.trim_end_matches('/').to_string());
    }
    let (scheme, rest) = git_url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split('/').next()?.rsplit('@').next()?;
    Some(match (kind, host) {
        (ForgeKind::GitHub, "github.com") => "https://api.github.com".to_string(),
        (ForgeKind::GitHub, host) => format!("{scheme}://{host}/api/v3"),
        (_, host) => format!("{scheme}://{host}"),
    })
}

/// One repository's pull requests, shared by the channels that follow one
/// branch of it with one token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RepoKey {
    base: String,
    repository: String,
    branch: String,
    namespace: String,
    secret: String,
}

struct Repo {
    client: Arc<forge::Client>,
    token: Token,
    listed: Option<Instant>,
    etag: Option<String>,
    pulls: Vec<PullRequest>,
}

/// The loop's memory: repositories and what was previewed.
#[derive(Default)]
struct State {
    repos: HashMap<RepoKey, Repo>,
    /// `channel#number` -> `head/generation` last answered.
    answered: HashMap<String, String>,
}

/// Runs the pull request loop over the channels in `channels` until aborted.
pub async fn run(ctx: Arc<Context>, channels: Store<Channel>) {
    let mut state = State::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut groups: BTreeMap<RepoKey, Vec<Arc<Channel>>> = BTreeMap::new();
        for channel in channels.state() {
            let Some(spec) = &channel.spec.forge else {
                continue;
            };
            if channel.spec.suspend || channel.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match repo_key(&channel, spec) {
                Ok(key) => groups.entry(key).or_default().push(channel),
                Err(e) => tracing::debug!(channel = %channel.key(), error = %e, "forge"),
            }
        }
        state.repos.retain(|k, _| groups.contains_key(k));
        for (key, group) in groups {
            if let Err(e) = state.visit(&ctx, &key, &group).await {
                tracing::warn!(repository = %key.repository, error = %e, "pull request previews");
            }
        }
    }
}

fn kind_of(kind: ForgeType) -> ForgeKind {
    match kind {
        ForgeType::Gitea => ForgeKind::Gitea,
        ForgeType::GitHub => ForgeKind::GitHub,
        ForgeType::GitLab => ForgeKind::GitLab,
    }
}

fn repo_key(channel: &Channel, spec: &crate::api::ForgeSpec) -> Result<RepoKey, ForgeError> {
    let kind = kind_of(spec.kind);
    let missing = |message: &str| ForgeError::Spec {
        channel: channel.key(),
        message: message.to_string(),
    };
    let base = api_base(kind, spec.url.as_deref(), &channel.spec.git.url)
        .ok_or_else(|| missing("set url: spec.git.url is not an http(s) URL"))?;
    let repository = match &spec.repository {
        Some(r) => r.clone(),
        None => forge::repository_of(&channel.spec.git.url)
            .ok_or_else(|| missing("set repository: spec.git.url names none"))?,
    };
    Ok(RepoKey {
        base,
        repository,
        branch: channel.spec.git.reference.branch().to_string(),
        namespace: channel.namespace().unwrap_or_default(),
        secret: spec.secret_ref.name.clone(),
    })
}

impl State {
    /// Lists `key`'s pull requests if its interval has passed, and answers
    /// each (head, channel) not answered yet.
    async fn visit(
        &mut self,
        ctx: &Context,
        key: &RepoKey,
        group: &[Arc<Channel>],
    ) -> Result<(), ForgeError> {
        let interval = group
            .iter()
            .filter_map(|c| humantime::parse_duration(&c.spec.git.interval).ok())
            .min()
            .unwrap_or(Duration::from_secs(60));
        if let Some(repo) = self.repos.get(key) {
            if repo.listed.is_some_and(|at| at.elapsed() < interval) {
                return Ok(());
            }
        }
        let first = &group[0];
        let spec = first.spec.forge.as_ref().expect("grouped by spec.forge");
        let token = read_token(ctx, first, &key.secret).await?;
        let kind = kind_of(spec.kind);
        let repo = match self.repos.get_mut(key) {
            Some(repo) if repo.token == token => repo,
            _ => {
                let client = forge::Client::new(
                    &key.base,
                    kind.api(&key.repository),
                    token.clone(),
                    forge::Retry::default(),
                );
                self.repos.insert(
                    key.clone(),
                    Repo {
                        client: Arc::new(client),
                        token,
                        listed: None,
                        etag: None,
                        pulls: Vec::new(),
                    },
                );
                self.repos.get_mut(key).expect("just inserted")
            }
        };
        repo.listed = Some(Instant::now());
        let limit = group
            .iter()
            .filter_map(|c| c.spec.forge.as_ref().map(|f| f.max_pull_requests))
            .max()
            .unwrap_or(10) as usize;
        match repo
            .client
            .list_pulls(&key.branch, limit, repo.etag.as_deref())
            .await?
        {
            Listed::NotModified => {}
            Listed::Pulls(pulls, etag) => {
                repo.pulls = pulls;
                repo.etag = etag;
            }
        }
        let (client, pulls) = (repo.client.clone(), repo.pulls.clone());
        let open: Vec<String> = pulls.iter().map(|p| format!("#{}", p.number)).collect();
        self.answered
            .retain(|k, _| open.iter().any(|n| k.ends_with(n.as_str())));
        for channel in group {
            let max = channel
                .spec
                .forge
                .as_ref()
                .map_or(0, |f| f.max_pull_requests) as usize;
            for pull in pulls.iter().take(max) {
                let answered = format!("{}#{}", channel.key(), pull.number);
                let want = format!(
                    "{}/{}",
                    pull.head_sha,
                    channel.metadata.generation.unwrap_or_default()
                );
                if self.answered.get(&answered) == Some(&want) {
                    continue;
                }
                if answer(ctx, &client, channel, pull).await? {
                    self.answered.insert(answered, want);
                }
            }
        }
        Ok(())
    }
}

/// Previews `pull` for `channel` and writes its comment and status. False
/// when the preview failed for a cause that may pass (to be tried again).
async fn answer(
    ctx: &Context,
    client: &forge::Client,
    channel: &Channel,
    pull: &PullRequest,
) -> Result<bool, ForgeError> {
    // The head, pinned as a commit: fetched through the git layer, under the
    // channel's every gate, with nothing of the channel changed but the ref.
    let mut pinned = channel.clone();
    pinned.spec.git.reference = GitRef {
        commit: Some(pull.head_sha.clone()),
        ..GitRef::default()
    };
    let outcome = match ctx.engine.preview(&pinned, &PreviewSource::Channel).await {
        Ok(preview) => Outcome::Release {
            release: preview.delivery.rendered.desired.id.clone(),
            held: preview
                .delivery
                .held
                .as_ref()
                .map(|e| (e.reason(), e.to_string())),
            changes: preview.delivery.changes,
        },
        Err(e) if e.is_stalled() => Outcome::Refused {
            reason: e.reason(),
            message: e.to_string(),
        },
        Err(e) => {
            tracing::info!(channel = %channel.key(), pull = pull.number, error = %e, "pull request preview failed; tried again at the next list");
            return Ok(false);
        }
    };
    let namespace = channel.namespace().unwrap_or_default();
    let name = channel.name_any();
    let cluster = &ctx.cluster_name;
    let body = comment(cluster, &namespace, &name, pull, &outcome);
    let marker = forge::marker(cluster, &namespace, &name);
    client.upsert_comment(pull.number, &marker, &body).await?;
    let status = preview_status(forge::context(cluster, &namespace, &name), &outcome);
    client.set_status(&pull.head_sha, &status).await?;
    Ok(true)
}

/// The `token` key of Secret `secret` in the channel's namespace.
async fn read_token(ctx: &Context, channel: &Channel, secret: &str) -> Result<Token, ForgeError> {
    let namespace = channel.namespace().unwrap_or_default();
    let failed = |message: String| ForgeError::Token {
        channel: channel.key(),
        secret: format!("{namespace}/{secret}"),
        message,
    };
    let found = Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
        .get(secret)
        .await
        .map_err(|e| failed(crate::cluster::api_message(&e)))?;
    let token = found
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .ok_or_else(|| failed("it has no key 'token'".into()))?;
    Ok(Token::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InventoryEntry;
    use crate::cluster::changes::Change;

    fn pull(title: &str) -> PullRequest {
        PullRequest {
            number: 4,
            title: title.into(),
            head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            head_branch: "bump/web".into(),
            base_branch: "main".into(),
        }
    }

    fn entry(group: &str, kind: &str, name: &str) -> InventoryEntry {
        InventoryEntry {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    #[test]
    fn escaping_turns_markup_links_and_mentions_into_text() {
        for (raw, escaped) in [
            ("Bump web", "Bump web"),
            (
                "<img src=x onerror=alert(1)>",
                "&lt;img src=x onerror=alert\\(1\\)&gt;",
            ),
            (
                "**bold** [x](http://e)",
                "\\*\\*bold\\*\\* \\[x\\]\\(http\\://e\\)",
            ),
            ("@team `code`", "&#64;team \\`code\\`"),
            ("a\nb", "a b"),
        ] {
            assert_eq!(escape(raw), escaped, "{raw}");
        }
    }

    #[test]
    fn a_fence_outlasts_every_backtick_run() {
        assert_eq!(fence("plain"), "```");
        assert_eq!(fence("a ```` b"), "`````");
    }

    #[test]
    fn a_release_comment_names_release_counts_and_folds_the_diff() {
        let mut created = Change::new(
            entry("apps", "ReplicaSet", "web-abc"),
            ChangeAction::Created,
            ChangeReason::Revision,
        )
        .in_file("web/deploy.yaml");
        created.diff = "+ image: web:2".into();
        let changes = ChangeSet {
            entries: vec![
                created,
                Change::new(
                    entry("", "Service", "web"),
                    ChangeAction::Configured,
                    ChangeReason::Declared,
                )
                .in_file("web/svc.yaml"),
                Change::new(
                    entry("", "ConfigMap", "quiet"),
                    ChangeAction::Unchanged,
                    ChangeReason::Declared,
                ),
                Change::new(
                    entry("", "Service", "old"),
                    ChangeAction::Deleted,
                    ChangeReason::Pruned,
                ),
            ],
        };
        let outcome = Outcome::Release {
            release: "r-1234".into(),
            changes,
            held: None,
        };
        let text = comment("prod", "shop", "web", &pull("Bump <b>web</b>"), &outcome);
        assert!(
            text.starts_with("<!-- kubemint:preview kubemint/prod/shop/web -->"),
            "{text}"
        );
        for want in [
            "Pull request #4 Bump &lt;b&gt;web&lt;/b&gt; (branch bump/web, commit 0123456789ab)",
            "**Release r\\-1234** would be delivered.",
            "1 to create, 1 to change, 1 to prune, 0 to drain, 1 unchanged",
            "<details><summary>What merging changes</summary>",
            "+ apps/ReplicaSet/shop/web-abc (web/deploy.yaml)\n    + image: web:2",
            "- Service/shop/old (pruned: no longer declared)",
            "Revisions minted: web\\-abc; drained: none",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        assert!(!text.contains("<b>"), "{text}");
        assert!(
            !text.contains("quiet"),
            "unchanged objects are not listed: {text}"
        );
        let status = preview_status("kubemint/prod/shop/web".into(), &outcome);
        assert_eq!(status.state, CommitState::Success);
        assert_eq!(
            status.description,
            "would deliver release r-1234: 1 to create, 1 to change, 1 to prune"
        );
    }

    #[test]
    fn refused_and_held_previews_fail_with_the_controllers_reason() {
        let refused = Outcome::Refused {
            reason: "UnsignedCommit",
            message: "commit 0123456 is not signed by a trusted key".into(),
        };
        let text = comment("prod", "shop", "web", &pull("x"), &refused);
        assert!(
            text.contains("**Refused** (UnsignedCommit): commit 0123456 is not signed"),
            "{text}"
        );
        let status = preview_status("c".into(), &refused);
        assert_eq!(status.state, CommitState::Failure);
        assert!(status.description.starts_with("refused (UnsignedCommit)"));

        let held = Outcome::Release {
            release: "r2".into(),
            changes: ChangeSet::default(),
            held: Some(("PruneHeld", "would prune 3 of 4 objects".into())),
        };
        let text = comment("prod", "shop", "web", &pull("x"), &held);
        assert!(
            text.contains("**Held** (PruneHeld): would prune 3 of 4 objects"),
            "{text}"
        );
        assert_eq!(
            preview_status("c".into(), &held).state,
            CommitState::Failure
        );
    }

    #[test]
    fn a_delivered_commit_goes_pending_then_success_or_failure_naming_the_revert() {
        let context = || "kubemint/prod/shop/web".to_string();
        let link = || Some("https://ui.example/ui/shop/web/release/abc".to_string());
        // (phase, revert commit, state, description, link)
        type Case<'a> = (Phase, Option<&'a str>, CommitState, &'a str, Option<String>);
        let cases: Vec<Case> = vec![
            (
                Phase::Progressing { pending: vec![] },
                None,
                CommitState::Pending,
                "rolling out release r1",
                None,
            ),
            (
                Phase::Testing {
                    job: "smoke".into(),
                },
                None,
                CommitState::Pending,
                "rolling out release r1",
                None,
            ),
            (
                Phase::Draining,
                None,
                CommitState::Success,
                "release r1 promoted",
                link(),
            ),
            (
                Phase::Active,
                None,
                CommitState::Success,
                "release r1 promoted",
                link(),
            ),
            (
                Phase::Failed {
                    pending: vec![("web".into(), "0/2".into())],
                    now: true,
                    hook: None,
                },
                Some("fedcba9876543210fedcba9876543210fedcba98"),
                CommitState::Failure,
                "release r1 failed: web not ready (0/2); reverted by fedcba987654",
                link(),
            ),
            (
                Phase::Failed {
                    pending: vec![],
                    now: false,
                    hook: Some("smoke".into()),
                },
                None,
                CommitState::Failure,
                "release r1 failed: test Job smoke failed",
                link(),
            ),
        ];
        for (phase, revert, state, description, target_url) in cases {
            let status = delivered_status(context(), &phase, "r1", revert, link());
            assert_eq!(status.state, state, "{phase:?}");
            assert_eq!(status.description, description, "{phase:?}");
            assert_eq!(status.target_url, target_url, "{phase:?}");
            assert_eq!(status.context, context());
        }
    }

    #[test]
    fn api_bases_default_from_the_git_url() {
        for (kind, url, git, base) in [
            (
                ForgeKind::Gitea,
                None,
                "http://127.0.0.1:3000/o/r.git",
                Some("http://127.0.0.1:3000"),
            ),
            (
                ForgeKind::GitLab,
                None,
                "https://gitlab.com/g/s/r.git",
                Some("https://gitlab.com"),
            ),
            (
                ForgeKind::GitHub,
                None,
                "https://github.com/o/r.git",
                Some("https://api.github.com"),
            ),
            (
                ForgeKind::GitHub,
                None,
                "https://ghe.example/o/r",
                Some("https://ghe.example/api/v3"),
            ),
            (
                ForgeKind::Gitea,
                None,
                "https://user:pw@gitea.example/o/r",
                Some("https://gitea.example"),
            ),
            (ForgeKind::Gitea, None, "git@gitea.example:o/r.git", None),
            (
                ForgeKind::Gitea,
                Some("https://api.example/"),
                "git@gitea.example:o/r.git",
                Some("https://api.example"),
            ),
        ] {
            assert_eq!(api_base(kind, url, git).as_deref(), base, "{git}");
        }
    }
}
