//! mod_fastcgi_rs: Apache httpd 2.4's FastCGI gateway, a drop-in for the old
//! `mod_fastcgi`, in Rust behind a thin C shim (`c-shim/mod_fastcgi.c`).
//!
//! Layers know only the layers below them (see the README's architecture):
//! `protocol` (FastCGI 1.0 records, sans-IO) and `config` (directives into
//! typed structs) are pure; `transport` owns sockets; `gateway` runs one
//! FastCGI exchange for one request against the [`gateway::Client`] trait;
//! `apache` is the only place that touches httpd through FFI.

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
