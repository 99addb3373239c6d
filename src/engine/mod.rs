//! One pass of a channel, below the controller and the CLI:
//! [`schedule`] (pure: poll, render, wait or back off) -> [`pipeline`] (fetch,
//! render, prepare, the gates, observe) -> [`rollout::plan`](crate::rollout::plan)
//! -> [`execute`]. The controller runs it on every channel; `kubemint diff`
//! runs the pipeline in preview mode.

mod by_channel;
mod error;
pub mod execute;
pub mod observe;
pub mod pipeline;
pub mod prepare;
pub mod schedule;
pub mod source;
pub mod tenancy;

pub use error::{Error, RefusedWatch};
pub use execute::{Executed, Executor, FAILPOINT_ENV};
pub use pipeline::{Engine, Mode, Observation, Timing};
pub use prepare::Rendered;
pub use source::Fetched;
