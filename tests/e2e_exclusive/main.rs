//! End-to-end tests that at times need the control plane to themselves: two
//! stop or restart the API server, others run an operator watching every namespace
//! (which would reconcile other tests' channels too: the shard tests), one
//! counts every request of kubemint's user agent in the audit log, and the
//! fleet tests time deliveries of hundreds of objects. Such a test holds
//! [`CONTROL_PLANE`] for writing; every other test here that uses the cluster
//! holds it for reading. The control plane is this process's own, apart from
//! that of `tests/e2e/`.

#[path = "../ui/browser.rs"]
mod browser;
#[path = "../fixture/mod.rs"]
mod fixture;
#[path = "../gitserver/mod.rs"]
mod gitserver;
#[path = "../support/mod.rs"]
mod support;

mod chaos;
mod chart;
mod engine;
mod fleet;
mod git_isolation;
mod shapes;
mod shards;
mod ui_auth;

/// Held for writing by a test that needs the control plane to itself, for
/// reading by the others that use it.
static CONTROL_PLANE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
