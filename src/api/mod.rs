//! The `Channel` custom resource and the types its status is made of. Every
//! layer may import this module; it imports no layer.

mod channel;

pub use channel::*;
