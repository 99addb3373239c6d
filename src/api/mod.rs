//! The `Channel` custom resource and the types its status is made of. Every
//! layer may import this module; it imports no layer.

mod channel;
mod shard;

pub use channel::*;
pub use shard::{Shard, ShardError, MAX_SHARD_KEY, SHARD_LABEL};
