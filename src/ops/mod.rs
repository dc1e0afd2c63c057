//! The operator's surfaces: the admin API (and the rollout page it serves), the last minutes of
//! history, and the command line's `check`, `status` and actions.

pub mod admin;
pub mod cli;
pub mod history;
pub mod status;
