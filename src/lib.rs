//! mod_fastcgi_rs: Apache httpd 2.4's FastCGI gateway, a drop-in for the old
//! `mod_fastcgi`, in Rust behind a thin C shim (`c-shim/mod_fastcgi.c`).
//!
//! One room per concern, and a room knows only the rooms below it
//! (docs/development.md has the map; `tests/rooms.rs` keeps it):
//! `protocol` (FastCGI 1.0 records, sans-IO) and `config` (directives into
//! typed structs) are pure; `transport` owns sockets; `metrics` the shared
//! scoreboard; `pm` the process manager; `upstream` which connection a
//! request gets; `gateway` one FastCGI exchange for one request against
//! the [`gateway::Client`] trait; `status` the pages; `apache` is the only
//! place that touches httpd through FFI.

pub mod config;
pub mod gateway;
pub mod log;
pub mod metrics;
pub mod pm;
pub mod protocol;
pub mod status;
pub mod transport;
pub mod upstream;

#[cfg(feature = "apache")]
mod apache;
