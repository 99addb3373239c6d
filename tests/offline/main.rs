//! Tests that need no cluster: the `kubemint` command offline, the docs, git sources
//! against real git servers on loopback, and the tests' own serving checker
//! and audit-log reader.

#[path = "../gitserver/mod.rs"]
mod gitserver;
#[path = "../docs/markdown.rs"]
mod markdown;
#[path = "../support/mod.rs"]
mod support;

mod checker;
mod cli;
mod docs;
mod git_sources;
mod git_verify;
