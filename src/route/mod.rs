//! What the request path reads and decides with: which route takes a request, the snapshot of
//! the running policy (one `ArcSwap`), the pure split of a request between a route's colors,
//! the affinity cookie, and the Pingora peers that reach each color's backends.

pub mod affinity;
pub mod matcher;
pub mod peer;
pub mod snapshot;
pub mod split;
