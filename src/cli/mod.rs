//! Commands a user runs against a cluster or a checkout: `diff` (the
//! pipeline in preview mode), `status` and `history` (`inspect`), and the
//! offline render behind `kubemint plan` (`offline`).

pub mod diff;
pub mod inspect;
pub mod offline;
