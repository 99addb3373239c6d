//! kubemint: a pull-based GitOps operator that mints immutable releases from git.
//!
//! The layers, from the outside in: [`source`] fetches commits, [`render`] turns a
//! commit into a validated [`render::Release`] without a cluster, [`rollout`]
//! decides what to apply and prune (pure functions), [`cluster`] talks to the API
//! server, and [`controller`] ties them into the `Channel` reconciler.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod engine;
pub mod render;
pub mod revert;
pub mod rollout;
pub mod server;
pub mod source;
pub mod telemetry;
