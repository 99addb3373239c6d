//! `kubemint diff`: what delivering a channel's next commit (or files on disk)
//! would change in the cluster. It runs the engine's pass in preview mode
//! ([`Engine::preview`]), as the channel's identity: the same gates refuse the
//! same commits with the same reason and message, and the same dry-run
//! comparison as the executor's says what each object would become. This
//! module only asks the user's own permission and prints the outcome.

use std::fmt::Write as _;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};

use crate::api::{Channel, APPROVE_PRUNE_ANNOTATION};
use crate::cluster;
use crate::cluster::changes::{ChangeAction, ChangeReason, ChangeSet};
use crate::engine::{self, tenancy, Engine, PreviewSource};
use crate::source::short_sha;

/// What to compare the cluster with (the preview's source).
pub type DiffSource = PreviewSource;

/// Why a diff could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The cluster or the channel could not be read.
    #[error(transparent)]
    Cli(#[from] super::CliError),
    /// A stage of the pipeline failed, or refused the commit as the controller would.
    #[error("{}", engine_message(.0))]
    Engine(#[from] engine::Error),
    /// The channel acts as a ServiceAccount the user may not impersonate: a
    /// diff as the user would show what the user may do, not what the channel may.
    #[error("channel {channel} acts as ServiceAccount {account}, which you may not impersonate: the diff would not show what the channel may do; ask for 'impersonate' on serviceaccounts/{name} in namespace {namespace}, or run the diff with credentials that have it")]
    MayNotImpersonate {
        /// `namespace/name` of the channel.
        channel: String,
        /// `namespace/name` of the ServiceAccount.
        account: String,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// Asking the API server whether the user may impersonate failed.
    #[error("checking whether you may impersonate ServiceAccount {account}: {}", cluster::api_message(.source))]
    AccessReview {
        /// `namespace/name` of the ServiceAccount.
        account: String,
        /// The client error.
        source: kube::Error,
    },
}

impl DiffError {
    /// The controller's reason when it would refuse the same commit for the same cause.
    pub fn reason(&self) -> &'static str {
        match self {
            DiffError::Cli(_) => "ChannelUnreadable",
            DiffError::Engine(e) => e.reason(),
            DiffError::MayNotImpersonate { .. } => "ImpersonationForbidden",
            DiffError::AccessReview { .. } => "AccessReviewFailed",
        }
    }
}

/// An engine error as the diff prints it: a refusal names the controller's reason.
fn engine_message(e: &engine::Error) -> String {
    if e.is_stalled() {
        refusal(e.reason(), &e.to_string())
    } else {
        e.to_string()
    }
}

/// The words of a refusal, with the controller's reason and message.
pub fn refusal(reason: &str, message: &str) -> String {
    format!("the controller would refuse this commit ({reason}): {message}")
}

/// The outcome of `kubemint diff`.
#[derive(Debug, Clone)]
pub struct Report {
    /// `namespace/name` of the channel.
    pub channel: String,
    /// What was compared: a commit and its ref, or a directory.
    pub source: String,
    /// The release the source renders to.
    pub release: String,
    /// What the channel has applied now, if anything.
    pub applied: Option<String>,
    /// Every object of the release, then drains and prunes.
    pub changes: ChangeSet,
    /// Why the controller would hold this source (the prune guard), if it would.
    pub held: Option<String>,
    /// The controller's reason and message when it would refuse this source
    /// but the plan is still worth showing (the prune guard holds it).
    pub refused: Option<(&'static str, String)>,
}

impl Report {
    /// Whether delivering the source would change anything.
    pub fn has_changes(&self) -> bool {
        self.changes.has_changes()
    }
}

/// What `kubemint diff` was asked, besides the channel.
pub struct DiffOptions {
    /// What to compare the cluster with.
    pub source: DiffSource,
    /// The kustomize command (`None`: the default).
    pub kustomize: Option<crate::render::KustomizeCommand>,
    /// The limits of one commit.
    pub limits: crate::render::Limits,
    /// The operator's tenancy settings.
    pub policy: tenancy::TenancyPolicy,
}

/// `kubemint diff`: reads channel `name` (in `namespace`, or the context's)
/// and computes its diff, with a git cache in `cache`.
pub async fn run(
    name: &str,
    namespace: Option<String>,
    options: DiffOptions,
    cache: &std::path::Path,
) -> Result<Report, DiffError> {
    let (config, client) = super::connect().await?;
    let channel = super::read_channel(&client, name, namespace).await?;
    let engine = preview_engine(
        config,
        client,
        options.policy,
        options.kustomize,
        options.limits,
        cache,
    );
    diff(&engine, &channel, options.source).await
}

/// The engine of a diff: the user's client (impersonating the channel's
/// ServiceAccount where it has one), a git cache in `cache`, and the
/// operator's tenancy settings as given on the command line. A local
/// `spec.git.url` is read by the user's own git here, not the operator's,
/// so it is not refused (the operator's `--allow-local-sources` is its own).
pub fn preview_engine(
    config: kube::Config,
    client: Client,
    policy: tenancy::TenancyPolicy,
    kustomize: Option<crate::render::KustomizeCommand>,
    limits: crate::render::Limits,
    cache: &std::path::Path,
) -> Engine {
    let policy = tenancy::TenancyPolicy {
        allow_local_sources: true,
        ..policy
    };
    // Nothing listens to the watches' wake-ups: a diff observes once.
    let (wake, _) = tokio::sync::mpsc::unbounded_channel();
    let user = tenancy::Access {
        observer: engine::observe::Observer::start(client.clone(), wake.clone(), None),
        client: client.clone(),
        service_account: None,
    };
    let tenancy = tenancy::Tenancy::new(
        config,
        crate::cluster::throttle::Throttle::unlimited(),
        policy,
        user,
        wake,
    );
    Engine::new(
        client,
        crate::source::GitCache::new(cache),
        tenancy,
        kustomize,
        limits,
    )
}

/// Computes what delivering `source` to `channel` would change, with the
/// engine's pass in preview mode. Reads the cluster and git; writes nothing.
pub async fn diff(
    engine: &Engine,
    channel: &Channel,
    source: DiffSource,
) -> Result<Report, DiffError> {
    may_impersonate(engine, channel).await?;
    let preview = engine.preview(channel, &source).await?;
    let commit = &preview.commit;
    let described = match &source {
        PreviewSource::Channel => format!(
            "commit {} \"{}\" ({})",
            short_sha(&commit.sha),
            commit.subject,
            commit.reference.as_deref().unwrap_or_default()
        ),
        PreviewSource::Local(dir) => format!("files in {}", dir.display()),
    };
    let delivery = preview.delivery;
    let refused = delivery.held.as_ref().map(|e| (e.reason(), e.to_string()));
    let held = delivery.held.as_ref().and_then(|_| {
        let hold = crate::rollout::channel_prune_hold(
            channel,
            &commit.sha,
            &delivery.rendered.desired.inventory(),
        )?;
        let approve = match commit.sha.as_str() {
            "local" => "once committed, approve that commit".to_string(),
            sha => format!(
                "approve with: kubectl annotate channel {} -n {} {APPROVE_PRUNE_ANNOTATION}={sha}",
                channel.name_any(),
                channel.namespace().unwrap_or_default()
            ),
        };
        Some(format!(
            "by the prune guard: it would prune {}, more than spec.pruneGuard.maxFraction ({:.0}%); {approve}",
            hold.describe(),
            hold.max_fraction * 100.0
        ))
    });
    let status = channel.status.clone().unwrap_or_default();
    let applied = status.last_applied_commit.map(|c| {
        let release = status.active_release.unwrap_or_else(|| "none".into());
        format!(
            "commit {} \"{}\", release {release}",
            short_sha(&c.sha),
            c.subject
        )
    });
    Ok(Report {
        channel: channel.key(),
        source: described,
        release: delivery.rendered.desired.id.clone(),
        applied,
        changes: delivery.changes,
        held,
        refused,
    })
}

/// Gate of the CLI: a channel acting as a ServiceAccount is previewed as that
/// account, so the user must be allowed to impersonate it.
async fn may_impersonate(engine: &Engine, channel: &Channel) -> Result<(), DiffError> {
    let Some(name) = tenancy::service_account(channel, engine.tenancy().policy()) else {
        return Ok(());
    };
    let namespace = channel.namespace().unwrap_or_default();
    let account = format!("{namespace}/{name}");
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.clone()),
                verb: Some("impersonate".into()),
                resource: Some("serviceaccounts".into()),
                name: Some(name.to_string()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(engine.client().clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|source| DiffError::AccessReview {
            account: account.clone(),
            source,
        })?;
    if answer.status.is_some_and(|s| s.allowed) {
        return Ok(());
    }
    Err(DiffError::MayNotImpersonate {
        channel: channel.key(),
        account,
        name: name.to_string(),
        namespace,
    })
}

/// The report as `kubemint diff` prints it.
pub fn describe(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Channel  {}", report.channel);
    let _ = writeln!(
        out,
        "Source   {}, release {}",
        report.source, report.release
    );
    let _ = writeln!(
        out,
        "Applied  {}",
        report.applied.as_deref().unwrap_or("nothing yet")
    );
    if let Some(held) = &report.held {
        let _ = writeln!(out, "Held     {held}");
    }
    out.push('\n');
    for c in report
        .changes
        .entries
        .iter()
        .filter(|c| c.action != ChangeAction::Unchanged)
    {
        let note = match (c.action, &c.reason, &c.file) {
            (ChangeAction::Deleted, ChangeReason::Pruned, _) => {
                " (pruned: no longer declared)".to_string()
            }
            (ChangeAction::ScaledDown, _, _) => " (scaled to 0 after promotion)".to_string(),
            (ChangeAction::Deleted, _, _) => {
                " (deleted after the drain: past keepReleases or no longer declared)".to_string()
            }
            (_, _, Some(file)) => format!(" ({file})"),
            (_, _, None) => String::new(),
        };
        let _ = writeln!(out, "{} {}{note}", marker(c.action), c.object);
        for line in c.diff.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let count = |action| report.changes.count(action);
    if report.has_changes() {
        out.push('\n');
    } else {
        out.push_str("No changes: the cluster already runs this release.\n\n");
    }
    let _ = writeln!(
        out,
        "{} to create, {} to change, {} to prune, {} to drain, {} unchanged",
        count(ChangeAction::Created),
        count(ChangeAction::Configured),
        count(ChangeAction::Deleted),
        count(ChangeAction::ScaledDown),
        count(ChangeAction::Unchanged)
    );
    out
}

/// The mark of a change in the diff's list.
fn marker(action: ChangeAction) -> char {
    match action {
        ChangeAction::Created => '+',
        ChangeAction::Configured => '~',
        ChangeAction::Unchanged => '=',
        ChangeAction::ScaledDown => 'v',
        ChangeAction::Deleted => '-',
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InventoryEntry;
    use crate::cluster::changes::Change;

    #[test]
    fn describe_counts_every_kind_of_change_and_hides_unchanged_objects() {
        let change = |action, reason, object: &str| {
            let mut parts = object.splitn(4, '/').collect::<Vec<_>>();
            if parts.len() == 3 {
                parts.insert(0, "");
            }
            let entry = InventoryEntry {
                group: parts[0].into(),
                version: "v1".into(),
                kind: parts[1].into(),
                namespace: Some(parts[2].into()),
                name: parts[3].into(),
            };
            Change::new(entry, action, reason).in_file("web/x.yaml")
        };
        let set = |changes: Vec<Change>| ChangeSet { entries: changes };
        let report = Report {
            channel: "shop/shop".into(),
            source: "files in deploy".into(),
            release: "abc".into(),
            applied: None,
            changes: set(vec![
                change(
                    ChangeAction::Created,
                    ChangeReason::Revision,
                    "apps/ReplicaSet/shop/web-1",
                ),
                change(
                    ChangeAction::Unchanged,
                    ChangeReason::Declared,
                    "ConfigMap/shop/quiet",
                ),
                change(
                    ChangeAction::Configured,
                    ChangeReason::Declared,
                    "Service/shop/web",
                ),
                change(
                    ChangeAction::ScaledDown,
                    ChangeReason::Drain,
                    "apps/ReplicaSet/shop/web-0",
                ),
                change(
                    ChangeAction::Deleted,
                    ChangeReason::Pruned,
                    "Service/shop/old",
                ),
                change(
                    ChangeAction::Deleted,
                    ChangeReason::Retired,
                    "apps/ReplicaSet/shop/worker-0",
                ),
            ]),
            held: None,
            refused: None,
        };
        let text = describe(&report);
        assert!(
            text.contains("+ apps/ReplicaSet/shop/web-1 (web/x.yaml)"),
            "{text}"
        );
        assert!(text.contains("~ Service/shop/web (web/x.yaml)"), "{text}");
        assert!(
            text.contains("v apps/ReplicaSet/shop/web-0 (scaled to 0"),
            "{text}"
        );
        assert!(text.contains("- Service/shop/old (pruned"), "{text}");
        assert!(
            text.contains("- apps/ReplicaSet/shop/worker-0 (deleted after the drain"),
            "{text}"
        );
        assert!(!text.contains("quiet"), "{text}");
        assert!(
            text.contains("1 to create, 1 to change, 2 to prune, 1 to drain, 1 unchanged"),
            "{text}"
        );
        assert!(report.has_changes());

        let quiet = Report {
            changes: set(vec![change(
                ChangeAction::Unchanged,
                ChangeReason::Declared,
                "ConfigMap/shop/quiet",
            )]),
            ..report
        };
        assert!(!quiet.has_changes());
        assert!(describe(&quiet).contains("No changes"));
        assert!(!describe(&quiet).contains("Held"));
        let held = Report {
            held: Some("by the prune guard: it would prune 3 of 4 objects (75%)".into()),
            ..quiet
        };
        assert!(describe(&held).contains("\nHeld     by the prune guard: it would prune 3 of 4"));
    }
}
