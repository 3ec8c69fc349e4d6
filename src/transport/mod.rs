//! Sockets to FastCGI applications: where they are ([`Endpoint`]), connecting
//! with the original's `-appConnTimeout` semantics, and waiting for readiness
//! with an idle timeout. No FastCGI framing here.

mod conn;
mod endpoint;

pub use conn::{connect, peer_closed, unix_sockaddr, writable_now, Conn, Ready};
pub use endpoint::{hashed_name, is_literal, resolve, split_host_port, Endpoint, EndpointError};
