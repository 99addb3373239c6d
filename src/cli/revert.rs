//! `kubemint revert`: commits the revert of a channel's release or commit in
//! a clone of its repository, and pushes it when asked, so that a rollback is
//! itself audited in git.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::revert::{
    self, ChannelRevert, ChannelReverted, RevertError, SigningRequest, Target, Workdir,
};
use crate::source::{redact_url, SourceError};

/// What `kubemint revert` was asked, besides the channel.
pub struct RevertOptions {
    /// The release or commit to revert.
    pub target: Target,
    /// The subject line of the revert commit.
    pub message: Option<String>,
    /// Author name and email (default: git config).
    pub author: Option<(String, String)>,
    /// Push to the channel's branch with its credentials.
    pub push: bool,
    /// Where to clone (default: a new directory under `$TMPDIR`, kept).
    pub workdir: Option<PathBuf>,
    /// How to sign the commit, if at all.
    pub signing: Option<SigningRequest>,
    /// Revert everywhere in the repository, not only under `spec.git.path`.
    pub all_paths: bool,
}

/// Why `kubemint revert` did not revert.
#[derive(Debug, thiserror::Error)]
pub enum RevertCommandError {
    /// The cluster or the channel could not be read.
    #[error(transparent)]
    Cli(#[from] super::CliError),
    /// The channel's git credentials could not be read.
    #[error("git credentials (spec.git.secretRef): {0}")]
    Credentials(String),
    /// The credentials Secret does not hold usable credentials.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The revert itself failed.
    #[error(transparent)]
    Revert(#[from] RevertError),
}

/// Reverts what `options` names for channel `name` (in `namespace`, or the
/// context's); returns what `kubemint revert` prints.
pub async fn run(
    name: &str,
    namespace: Option<String>,
    options: RevertOptions,
) -> Result<String, RevertCommandError> {
    let (_, client) = super::connect().await?;
    let channel = super::read_channel(&client, name, namespace).await?;
    let status = channel.status.clone().unwrap_or_default();
    let revert = ChannelRevert::of(&channel, &status, &options.target)?
        .message(options.message)
        .author(options.author)
        .workdir(Workdir::Kept(options.workdir))
        .push(options.push)
        .whole_repository(options.all_paths)
        .signing(options.signing);
    let credentials = crate::engine::source::credentials(&client, &channel)
        .await
        .map_err(|e| match e {
            crate::engine::Error::Source(e) => RevertCommandError::Source(e),
            other => RevertCommandError::Credentials(other.to_string()),
        })?;
    let ChannelReverted {
        reverted,
        branch,
        what,
    } = revert.run(credentials).await?;
    let mut out = String::new();
    let _ = writeln!(out, "Reverted {what} on branch {branch}");
    let _ = writeln!(out, "  commit {} {}", reverted.sha, reverted.subject);
    if reverted.pushed {
        let _ = writeln!(out, "  pushed to {}", redact_url(&channel.spec.git.url));
    } else {
        let _ = writeln!(
            out,
            "  in {} (not pushed); push it with:",
            reverted.clone.display()
        );
        let _ = writeln!(out, "  {}", revert::push_hint(&reverted.clone, &branch));
    }
    Ok(out)
}
