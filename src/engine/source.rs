//! The channel's git side: from `spec.git` (and its Secrets) to a fetched,
//! verified commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Client, ResourceExt};

use super::Error;
use crate::api::Channel;
use crate::cluster::{self, secret_data, ClusterError};
use crate::render::{self, KustomizeCommand, Limits, Release, RenderOptions};
use crate::source::verify::Policy;
use crate::source::{
    CommitMeta, FetchRequest, GitCache, GitCredentials, RefRequest, SourceError, TransferStats,
    TrustedKeys,
};

/// A commit fetched for a channel.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The commit to deliver.
    pub commit: CommitMeta,
    /// The ref it was resolved from, e.g. `refs/heads/main`, `refs/tags/v1.2.0`
    /// (for a semver range, the tag it chose), or the commit id when pinned.
    pub reference: String,
    /// The commit this ref pointed to at the previous poll of this process (the
    /// cache), if any. Equal to `commit.sha` when the ref did not move.
    pub previous: Option<String>,
    /// Set when the ref was force-pushed: the new tip does not descend from
    /// this previous tip. The new tip is delivered anyway; emit an event.
    pub rewritten_from: Option<String>,
    /// Who signed the delivered commits, when `spec.git.verify` is set.
    pub signers: Vec<String>,
    /// Network cost of this poll (nothing when it was another channel's).
    pub stats: TransferStats,
    /// Whether the poll was another channel's (no network used by this one).
    pub shared: bool,
    /// When the poll started (another channel's, when shared): the next poll
    /// is due an interval after it.
    pub polled_at: Instant,
    /// The credentials it was fetched with: the cache serves its tree to
    /// these only (see [`crate::source::cache_key`]).
    pub credentials: GitCredentials,
}

/// Fetches the commit that `spec.git.ref` points to into the cache, with the
/// credentials of `spec.git.secretRef`, and verifies its signatures when
/// `spec.git.verify` asks for it. A poll of the same ref that another channel
/// started at or after `not_before` is used instead of a new one (`None`: any).
pub async fn fetch(
    git: &GitCache,
    client: &Client,
    secrets: &CredentialsCache,
    channel: &Channel,
    not_before: Option<Instant>,
) -> Result<Fetched, Error> {
    let spec = &channel.spec.git;
    let ns = channel.namespace().unwrap_or_default();
    let reference = RefRequest::from_spec(&spec.reference)?;
    let credentials = secrets.credentials(client, channel, Instant::now()).await?;
    let policy = spec.verify.as_ref().map(Policy::from);
    let request = FetchRequest {
        url: spec.url.clone(),
        reference,
        credentials: credentials.clone(),
        shallow: !policy.as_ref().is_some_and(Policy::needs_history),
    };
    let polled = git.poll(&request, not_before).await?;
    let outcome = polled.outcome;
    let mut signers = Vec::new();
    if let (Some(verify), Some(policy)) = (&spec.verify, &policy) {
        let data = secret_data(client, &ns, &verify.secret_ref.name)
            .await
            .map_err(|e| secret_error(e, |message| SourceError::InvalidKeys { message }))?;
        let keys = TrustedKeys::from_secret_data(&data)?;
        let last_applied = channel
            .status
            .as_ref()
            .and_then(|s| s.last_applied_commit.as_ref())
            .map(|c| c.sha.clone());
        let verified = git
            .verify(
                &spec.url,
                &credentials,
                policy,
                last_applied.as_deref(),
                &outcome.commit.sha,
                &keys,
            )
            .await?;
        signers = verified.into_iter().map(|v| v.signer).collect();
        signers.dedup();
    }
    Ok(Fetched {
        commit: outcome.commit,
        reference: outcome.reference,
        previous: outcome.previous,
        rewritten_from: outcome.rewritten_from,
        signers,
        stats: if polled.shared {
            TransferStats::default()
        } else {
            outcome.stats
        },
        polled_at: polled.started,
        shared: polled.shared,
        credentials,
    })
}

/// The channel's git credentials, from `spec.git.secretRef` (none without one).
///
/// The one reader of them: the engine's polls (through [`CredentialsCache`]),
/// the deployment notes and the automatic revert, the UI's reads of git and
/// its revert, and `kubemint revert` all call it, so that they read the same
/// keys and fail with the same messages.
///
/// # Errors
///
/// [`SourceError::Credentials`] when the Secret is missing, refused or holds
/// no usable credentials (the message names `spec.git.secretRef` and the key,
/// never a value); the cluster's error when the API server may answer later.
pub async fn credentials(client: &Client, channel: &Channel) -> Result<GitCredentials, Error> {
    let ns = channel.namespace().unwrap_or_default();
    Ok(match &channel.spec.git.secret_ref {
        Some(r) => GitCredentials::from_secret(
            &ns,
            &r.name,
            &secret_data(client, &ns, &r.name)
                .await
                .map_err(|e| secret_error(e, |message| SourceError::Credentials { message }))?,
        )?,
        None => GitCredentials::none(),
    })
}

/// How long git credentials read from a Secret are reused.
pub const CREDENTIALS_TTL: Duration = Duration::from_secs(10);

/// Git credentials read from channels' Secrets, reused for
/// [`CREDENTIALS_TTL`]: the channels of a namespace that poll a repository
/// together (a monorepo's apps) read their Secret once, not once each. A
/// rotated Secret takes effect within the TTL. Unreadable Secrets are not
/// kept: each channel reports its own error.
#[derive(Clone, Default)]
pub struct CredentialsCache {
    entries: Arc<Mutex<HashMap<String, (Instant, GitCredentials)>>>,
}

impl CredentialsCache {
    /// The credentials of `channel` (see [`credentials`]), from the cache when fresh at `now`.
    pub async fn credentials(
        &self,
        client: &Client,
        channel: &Channel,
        now: Instant,
    ) -> Result<GitCredentials, Error> {
        let Some(secret) = &channel.spec.git.secret_ref else {
            return Ok(GitCredentials::none());
        };
        let key = format!(
            "{}/{}",
            channel.namespace().unwrap_or_default(),
            secret.name
        );
        if let Some(fresh) = self.fresh(&key, now) {
            return Ok(fresh);
        }
        let read = credentials(client, channel).await?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < CREDENTIALS_TTL);
        entries.insert(key, (now, read.clone()));
        Ok(read)
    }

    fn fresh(&self, key: &str, now: Instant) -> Option<GitCredentials> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, credentials) = entries.get(key)?;
        (now.saturating_duration_since(*at) < CREDENTIALS_TTL).then(|| credentials.clone())
    }
}

/// A Secret that could not be read: retried when the API server may answer
/// later (a restart, throttling), a problem with the channel's spec otherwise.
fn secret_error(err: ClusterError, permanent: impl FnOnce(String) -> SourceError) -> Error {
    match &err {
        ClusterError::Observe { source, .. } if cluster::is_transient(source) => err.into(),
        _ => permanent(err.to_string()).into(),
    }
}

/// Renders the commit of `fetched` (fetched into `git`) at the channel's `spec.git.path`,
/// building kustomizations with `kustomize` (`None`: the default command).
pub async fn render_commit(
    git: &GitCache,
    channel: &Channel,
    fetched: &Fetched,
    kustomize: Option<&KustomizeCommand>,
    limits: &Limits,
) -> Result<Release, Error> {
    let (url, sha) = (&channel.spec.git.url, &fetched.commit.sha);
    let path = &channel.spec.git.path;
    let tree = git
        .tree(url, &fetched.credentials, sha, limits, path)
        .await?;
    let options = RenderOptions {
        path: channel.spec.git.path.clone(),
        namespace: Some(channel.target_namespace()),
        kustomize: kustomize.cloned(),
        limits: *limits,
    };
    // Rendering is CPU work on possibly large trees: keep it off the async workers.
    let release = tokio::task::spawn_blocking(move || render::render(&tree, &options))
        .await
        .map_err(|e| SourceError::Task(e.to_string()))??;
    Ok(release)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::api::ChannelSpec;

    fn channel(ns: &str, secret: Option<&str>) -> Channel {
        let mut git = serde_json::json!({"url": "https://example.com/mono.git"});
        if let Some(name) = secret {
            git["secretRef"] = serde_json::json!({"name": name});
        }
        let spec: ChannelSpec = serde_json::from_value(serde_json::json!({"git": git})).unwrap();
        let mut c = Channel::new("web", spec);
        c.metadata.namespace = Some(ns.into());
        c
    }

    #[tokio::test]
    async fn a_namespace_s_channels_read_their_git_secret_once_per_ttl() {
        // Nothing listens here: every read of a Secret fails.
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let cache = CredentialsCache::default();
        let t0 = Instant::now();
        let none = cache
            .credentials(&client, &channel("shop", None), t0)
            .await
            .unwrap();
        assert_eq!(
            none.cache_identity(),
            GitCredentials::none().cache_identity()
        );

        let creds = GitCredentials::from_secret(
            "shop",
            "git",
            &[
                ("username".to_string(), b"bot".to_vec()),
                ("password".to_string(), b"s3cret".to_vec()),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap();
        cache
            .entries
            .lock()
            .unwrap()
            .insert("shop/git".into(), (t0, creds.clone()));
        let within = t0 + CREDENTIALS_TTL - Duration::from_millis(1);
        let reused = cache
            .credentials(&client, &channel("shop", Some("git")), within)
            .await;
        assert_eq!(
            reused.unwrap().cache_identity(),
            creds.cache_identity(),
            "read once, reused by the namespace's other channels"
        );
        // Another namespace's Secret of the same name is its own.
        assert!(cache
            .credentials(&client, &channel("blog", Some("git")), within)
            .await
            .is_err());
        // Past the TTL the Secret is read again (and here fails).
        let after = t0 + CREDENTIALS_TTL;
        assert!(cache
            .credentials(&client, &channel("shop", Some("git")), after)
            .await
            .is_err());
    }
}
