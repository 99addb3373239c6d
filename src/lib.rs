//! kubemint: a pull-based GitOps operator that mints immutable releases from git.
//!
//! The layers, from the top down; each imports only layers below it:
//!
//! - `main.rs`: argument parsing and dispatch only.
//! - [`cli`]: commands a user runs (`diff`, `status`/`history`, the offline render of `plan`, `ui`).
//! - [`server`]: health, metrics, webhook receivers and the web UI.
//! - [`controller`]: the kube-runtime shell: finalizer, status, events, the
//!   audit driver (notes, automatic reverts), leader election.
//! - [`engine`]: one pass: [`engine::schedule`] (pure) -> [`engine::pipeline`]
//!   (fetch, render, prepare, gates, observe) -> plan -> [`engine::execute`].
//! - [`cluster`]: kube-rs at the edge: server-side apply, discovery, prune.
//! - [`rollout`]: the plan of a pass and the minting of releases; pure.
//! - [`revert`]: revert commits: choose what to revert, write, sign, push.
//! - [`forge`]: the forges' REST APIs (pull requests, comments, commit statuses); beside `source`.
//! - [`source`]: git: fetch, cache, auth, signatures, notes, local watches, webhooks.
//! - [`render`]: repository tree -> validated [`render::Release`]; no cluster.
//! - [`api`]: the Channel CRD types; every layer may import them, they import none.
//!
//! [`telemetry`] (logging set-up) stands apart and imports no layer.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod engine;
pub mod forge;
pub mod render;
pub mod revert;
pub mod rollout;
pub mod server;
pub mod source;
pub mod telemetry;
