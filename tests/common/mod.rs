//! Shared harness for the integration tests: a real Apache httpd with
//! mod_fastcgi_rs loaded, a raw HTTP/1.1 client, and FastCGI backends (the
//! tutorial's flup app, a libfcgi C program, php-fpm, and an in-process
//! fault-injecting backend built on `mod_fastcgi_rs::protocol`).
//!
//! Each test file says `mod common;`; not every file uses every helper.
#![allow(dead_code, unused_imports)]

pub mod apache;
pub mod backends;
pub mod fault;
pub mod http;
pub mod json;
pub mod netns;
pub mod procs;
pub mod sha256;
pub mod util;

pub use apache::{Apache, ApacheBuilder, Mpm};
pub use backends::{CApp, FlupApp, PhpFpm};
pub use fault::FaultServer;
pub use http::{Body, Request, Response};
pub use netns::{Host, NetError, NsProcess, TestHosts};
pub use util::TestDir;
