//! The one builder of a channel's revert: `kubemint revert`, the UI and the
//! automatic revert each say what differs (author, message, where to clone,
//! whether to push and sign) and it assembles the same [`RevertRequest`] from
//! the channel, so that the three cannot drift apart.

use std::path::PathBuf;

use super::{
    branch_of, pick_change, revert, InMemoryKey, RevertError, RevertRange, RevertRequest, Reverted,
    SigningRequest, Target,
};
use crate::api::{Channel, ChannelStatus};
use crate::source::GitCredentials;

/// Where a revert's clone is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workdir {
    /// In this directory, or a new one under the system temp dir when `None`;
    /// kept afterwards, so that an unpushed commit can be pushed by hand.
    Kept(Option<PathBuf>),
    /// In a scratch directory whose name starts with this prefix, removed
    /// once the revert is made (or failed).
    Scratch(&'static str),
}

/// The revert of one of a channel's releases (or commits), before it is made.
#[derive(Debug)]
pub struct ChannelRevert {
    /// The branch the channel follows, where the revert is committed.
    pub branch: String,
    /// What it undoes.
    pub range: RevertRange,
    url: String,
    path: String,
    whole_repository: bool,
    message: Option<String>,
    author: Option<(String, String)>,
    workdir: Workdir,
    push: bool,
    automatic: Option<String>,
    signing: Option<SigningRequest>,
    signing_key: Option<InMemoryKey>,
}

/// A revert made by [`ChannelRevert::run`].
#[derive(Debug, Clone)]
pub struct ChannelReverted {
    /// The commit.
    pub reverted: Reverted,
    /// The branch it is on.
    pub branch: String,
    /// What it reverted, for messages (see [`RevertRange::what`]).
    pub what: String,
}

impl ChannelRevert {
    /// The revert of `target` of `channel`, whose releases are `status`'s:
    /// committed on the channel's branch, only under `spec.git.path`, not
    /// pushed, with git config's author, in a kept clone (change these with
    /// the methods below).
    ///
    /// # Errors
    ///
    /// [`RevertError::NotABranch`] when the channel does not follow a branch;
    /// [`RevertError::UnknownRelease`] or [`RevertError::NoActiveRelease`]
    /// when `target` names no release of `status`.
    pub fn of(
        channel: &Channel,
        status: &ChannelStatus,
        target: &Target,
    ) -> Result<Self, RevertError> {
        let branch = branch_of(channel)?;
        let range = pick_change(&channel.key(), status, target)?;
        Ok(ChannelRevert {
            branch,
            range,
            url: channel.spec.git.url.clone(),
            path: channel.spec.git.path.clone(),
            whole_repository: false,
            message: None,
            author: None,
            workdir: Workdir::Kept(None),
            push: false,
            automatic: None,
            signing: None,
            signing_key: None,
        })
    }

    /// The subject line of the commit instead of the default one.
    pub fn message(mut self, message: Option<String>) -> Self {
        self.message = message;
        self
    }

    /// Author and committer (`None`: git config's).
    pub fn author(mut self, author: Option<(String, String)>) -> Self {
        self.author = author;
        self
    }

    /// Where to clone.
    pub fn workdir(mut self, workdir: Workdir) -> Self {
        self.workdir = workdir;
        self
    }

    /// Whether to push the commit to the branch.
    pub fn push(mut self, push: bool) -> Self {
        self.push = push;
        self
    }

    /// Reverts everywhere in the repository, not only under `spec.git.path`.
    pub fn whole_repository(mut self, whole: bool) -> Self {
        self.whole_repository = whole;
        self
    }

    /// The automatic revert of release `release`: the loop guard applies.
    pub fn automatic(mut self, release: String) -> Self {
        self.automatic = Some(release);
        self
    }

    /// Signs the commit as `git commit -S` would.
    pub fn signing(mut self, signing: Option<SigningRequest>) -> Self {
        self.signing = signing;
        self
    }

    /// Signs the commit in-process with this key.
    pub fn signing_key(mut self, key: Option<InMemoryKey>) -> Self {
        self.signing_key = key;
        self
    }

    /// The request that makes it with `credentials`, cloning into `workdir`
    /// (`None`: a new kept directory).
    pub fn request(self, credentials: GitCredentials, workdir: Option<PathBuf>) -> RevertRequest {
        RevertRequest {
            url: self.url,
            branch: self.branch,
            credentials,
            change: self.range,
            message: self.message,
            author: self.author,
            workdir,
            push: self.push,
            automatic: self.automatic,
            path: (!self.whole_repository).then_some(self.path),
            signing: self.signing,
            signing_key: self.signing_key,
        }
    }

    /// Clones with `credentials`, commits the revert and pushes it when asked.
    ///
    /// # Errors
    ///
    /// Those of [`revert`]; [`RevertError::Task`] when a scratch directory
    /// cannot be made.
    pub async fn run(self, credentials: GitCredentials) -> Result<ChannelReverted, RevertError> {
        let scratch = match &self.workdir {
            Workdir::Scratch(prefix) => Some(
                tempfile::Builder::new()
                    .prefix(prefix)
                    .tempdir()
                    .map_err(|e| RevertError::Task(e.to_string()))?,
            ),
            Workdir::Kept(_) => None,
        };
        let dir = match (&scratch, &self.workdir) {
            (Some(s), _) => Some(s.path().join("clone")),
            (None, Workdir::Kept(dir)) => dir.clone(),
            (None, Workdir::Scratch(_)) => None,
        };
        let branch = self.branch.clone();
        let what = self.range.what.clone();
        let reverted = revert(self.request(credentials, dir)).await;
        // The clone goes only once git is done with it.
        drop(scratch);
        Ok(ChannelReverted {
            reverted: reverted?,
            branch,
            what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CommitInfo, ReleasePhase, ReleaseRecord};

    fn channel(reference: serde_json::Value) -> Channel {
        let spec = serde_json::from_value(serde_json::json!({
            "git": {"url": "https://git.example.com/shop.git", "path": "deploy", "ref": reference},
        }))
        .unwrap();
        let mut c = Channel::new("web", spec);
        c.metadata.namespace = Some("shop".into());
        c
    }

    fn status() -> ChannelStatus {
        let record = |id: &str, sha: &str, phase| ReleaseRecord {
            id: id.into(),
            phase,
            commit: CommitInfo {
                sha: sha.into(),
                subject: format!("subject of {sha}"),
                ..Default::default()
            },
            ..Default::default()
        };
        ChannelStatus {
            active_release: Some("r2".into()),
            releases: vec![
                record("r2", "b2", ReleasePhase::Active),
                record("r1", "a1", ReleasePhase::Superseded),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_request_is_assembled_from_the_channel_and_what_each_caller_says() {
        let ch = channel(serde_json::json!({"branch": "main"}));
        let plain = ChannelRevert::of(&ch, &status(), &Target::Active)
            .unwrap()
            .request(GitCredentials::none(), None);
        assert_eq!(
            (
                plain.url.as_str(),
                plain.branch.as_str(),
                plain.change.to.as_str(),
                plain.change.base.as_deref(),
                plain.path.as_deref(),
                plain.push,
                plain.automatic.as_deref(),
                plain.author.is_none(),
                plain.message.is_none(),
            ),
            (
                "https://git.example.com/shop.git",
                "main",
                "b2",
                Some("a1"),
                Some("deploy"),
                false,
                None,
                true,
                true,
            )
        );
        let dir = PathBuf::from("/tmp/somewhere");
        let told = ChannelRevert::of(&ch, &status(), &Target::Release("r2".into()))
            .unwrap()
            .message(Some("Roll back".into()))
            .author(Some(("Ada".into(), "ada@example.com".into())))
            .push(true)
            .whole_repository(true)
            .automatic("r2".into())
            .request(GitCredentials::none(), Some(dir.clone()));
        assert_eq!(told.message.as_deref(), Some("Roll back"));
        assert_eq!(told.author.as_ref().map(|a| a.0.as_str()), Some("Ada"));
        assert_eq!(
            (
                told.push,
                told.path,
                told.automatic.as_deref(),
                told.workdir
            ),
            (true, None, Some("r2"), Some(dir))
        );
    }

    #[test]
    fn a_channel_that_follows_no_branch_or_names_no_release_is_refused() {
        let tag = channel(serde_json::json!({"tag": "v1"}));
        let err = ChannelRevert::of(&tag, &status(), &Target::Active).unwrap_err();
        assert_eq!(err.reason(), "NotABranch", "{err}");
        let main = channel(serde_json::json!({"branch": "main"}));
        let err = ChannelRevert::of(&main, &status(), &Target::Release("zz".into())).unwrap_err();
        assert_eq!(err.reason(), "UnknownRelease", "{err}");
    }
}
