//! What the request path reads and decides with: the snapshot of the running policy (one
//! `ArcSwap`), the pure split of a request between colors, the affinity cookie, and the Pingora
//! peers that reach each color's backends.

pub mod affinity;
pub mod peer;
pub mod snapshot;
pub mod split;
