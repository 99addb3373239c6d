//! End-to-end tests on one local control plane (`support::cluster()`), shared
//! by every test of this process: each test works in namespaces of its own and
//! runs an operator limited to them (`kubemint run --namespace`), so tests
//! running side by side do not see each other's channels.
//!
//! A test that needs the control plane to itself (restarting the API server,
//! an operator watching every namespace, counting every request kubemint
//! makes: the reflectors of an operator limited to namespaces still watch
//! all of them) belongs in `tests/e2e_exclusive/`.

#[path = "../ui/browser.rs"]
mod browser;
#[path = "../fixture/mod.rs"]
mod fixture;
#[path = "../gitserver/mod.rs"]
mod gitserver;
#[path = "../docs/markdown.rs"]
mod markdown;
#[path = "../support/mod.rs"]
mod support;

mod autoscale;
mod channel;
mod cluster;
mod crash;
mod diff;
mod diff_refusals;
mod docs;
mod executor;
mod forge;
mod git_policy;
mod git_ssh;
mod install;
mod kustomize;
mod leader;
mod limits;
mod notes;
mod preview;
mod refused_watch;
mod revert;
mod rollout;
mod sources;
mod tenancy;
mod ui;
