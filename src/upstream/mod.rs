//! Which connection a request gets, and whether it may have one now
//! ([`admission`], `-max-in-flight`): the balancing policy and the shared
//! health of endpoints ([`balance`], [`health`]), connecting with failover
//! ([`connect`]), the connections kept for reuse ([`pool`]), and starting a
//! dynamic application through the process manager ([`dynamic`]).
//!
//! `gateway` asks here for a connection and reports how the attempt went;
//! this room never looks at a request (nginx's split of
//! `ngx_http_upstream_round_robin.c` from `ngx_http_upstream.c`).

mod admission;
mod balance;
mod connect;
mod dynamic;
mod health;
pub mod pool;

pub use admission::{admit, Refused};
pub use balance::{balanced, candidates, Candidate};
pub use connect::{connect, endpoint_answered, endpoint_silent, open, Connected};
pub use dynamic::{target, OnDemand};
pub use pool::{checkout, may_keep, may_pool, starve_wait, starving};
