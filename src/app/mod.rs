//! The process: the Pingora server with the proxy, admin and supervisor services, the demo,
//! the log, and the global allocator.

pub mod allocator;
pub mod demo;
pub mod logs;
pub mod server;
