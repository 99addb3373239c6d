//! One pass of a channel, below the controller and the CLI, owned here from
//! start to end ([`Engine::pass`]): [`schedule`] (pure: poll, render, wait or
//! back off) -> [`pipeline`] (fetch, render, prepare, the gates, observe) ->
//! [`rollout::plan`](crate::rollout::plan) -> [`execute`], returning one typed
//! [`PassOutcome`]. `kubemint diff` runs the same pipeline in preview mode
//! ([`Engine::preview`]); deleting a channel is [`Engine::delete_channel`].

mod by_channel;
mod delete;
mod error;
pub mod execute;
pub mod observe;
pub mod pass;
pub mod pipeline;
pub mod prepare;
pub mod preview;
pub mod schedule;
pub mod source;
pub mod tenancy;
mod test_logs;
pub mod trigger;

pub use error::{Error, RefusedWatch};
pub use execute::{Executor, FAILPOINT_ENV};
pub use pass::{Delivery, PassOutcome, PassResult, Poll, RenderStep};
pub use pipeline::{Engine, Mode, Observation, Timing};
pub use prepare::Rendered;
pub use preview::{Preview, PreviewSource};
pub use source::Fetched;
