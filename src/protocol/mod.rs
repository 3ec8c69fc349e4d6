//! FastCGI 1.0 protocol core, sans I/O: bytes in, events out.
//!
//! Nothing here touches a socket or a clock. Encoders append records to a
//! caller-owned `Vec<u8>`; decoders take whatever bytes a read returned and
//! hand back at most one event per call, borrowing stream content from the
//! input instead of copying it. The layout follows h2's frame/codec split:
//! `record` knows the 8-byte header and how to cut a byte stream into
//! records, `nv` knows name-value pairs, and `client` (the web server's
//! side) and `app` (the application's side, used by the test backends)
//! build the two directions on top.
//!
//! Peer data can never make this code panic, and nothing it buffers grows
//! beyond one record body (65535 bytes) or a caller-given limit.
#![forbid(unsafe_code)]

mod app;
mod client;
mod nv;
mod record;

use std::fmt;

pub use app::{
    encode_get_values_result, encode_raw_record, encode_unknown_type, RequestDecoder, RequestEvent, ResponseEncoder,
};
pub use client::{encode_get_values, ParamsWriter, RequestEncoder, ResponseDecoder, ResponseEvent};
pub use nv::{encode_nv_pair, nv_encoded_len, NvPairs, ParamsDecoder};

/// The only protocol version there is; every record header carries it.
pub const VERSION_1: u8 = 1;
/// Size of a record header, which precedes every record's content.
pub const HEADER_LEN: usize = 8;
/// The most content one record can carry (`contentLength` is 16 bits);
/// longer streams are split into several records.
pub const MAX_CONTENT_LEN: usize = 65535;

/// The record types of FastCGI 1.0, so that code names them instead of
/// using the numbers from the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// Server → app: starts a request (role, flags).
    BeginRequest = 1,
    /// Server → app: the server gives up on a request.
    AbortRequest = 2,
    /// App → server: the request is finished (app and protocol status).
    EndRequest = 3,
    /// Server → app stream: the CGI environment as name-value pairs.
    Params = 4,
    /// Server → app stream: the request body.
    Stdin = 5,
    /// App → server stream: the CGI response.
    Stdout = 6,
    /// App → server stream: error output for the server's log.
    Stderr = 7,
    /// Server → app stream: the file of the Filter role.
    Data = 8,
    /// Server → app management query (request id 0).
    GetValues = 9,
    /// App → server answer to `GetValues`.
    GetValuesResult = 10,
    /// App → server: a management record type the app does not know.
    UnknownType = 11,
}

impl RecordType {
    /// Maps a header's type byte to a known type; `None` for 0 and for
    /// anything above `FCGI_MAXTYPE` (11), which decoders must handle.
    pub fn from_u8(v: u8) -> Option<RecordType> {
        use RecordType::*;
        Some(match v {
            1 => BeginRequest,
            2 => AbortRequest,
            3 => EndRequest,
            4 => Params,
            5 => Stdin,
            6 => Stdout,
            7 => Stderr,
            8 => Data,
            9 => GetValues,
            10 => GetValuesResult,
            11 => UnknownType,
            _ => return None,
        })
    }
}

/// The role a web server asks an application to play in `BEGIN_REQUEST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Role {
    /// Produces the response to an HTTP request, like CGI.
    Responder = 1,
    /// Decides whether a request is allowed.
    Authorizer = 2,
    /// Like Responder, plus a data file (the DATA stream) to transform.
    Filter = 3,
}

impl Role {
    /// Maps the raw role of a `BEGIN_REQUEST` to a known role, so that an
    /// application can answer anything else with [`UNKNOWN_ROLE`].
    pub fn from_u16(v: u16) -> Option<Role> {
        match v {
            1 => Some(Role::Responder),
            2 => Some(Role::Authorizer),
            3 => Some(Role::Filter),
            _ => None,
        }
    }
}

/// `BEGIN_REQUEST` flag: the application keeps the connection open after
/// the request, and the web server decides when it closes.
pub const FLAG_KEEP_CONN: u8 = 1;

/// END_REQUEST protocolStatus values
///
/// `REQUEST_COMPLETE`: the normal end of a request.
pub const REQUEST_COMPLETE: u8 = 0;
/// END_REQUEST protocolStatus: the application does not multiplex and a
/// second request came on a busy connection.
pub const CANT_MPX_CONN: u8 = 1;
/// END_REQUEST protocolStatus: the application is out of some resource.
pub const OVERLOADED: u8 = 2;
/// END_REQUEST protocolStatus: the application does not play the role asked
/// for in `BEGIN_REQUEST`.
pub const UNKNOWN_ROLE: u8 = 3;

/// Why a peer's byte stream was rejected. Decoders return the same error
/// again on every later call (errors are sticky), since the stream cannot be
/// resynchronised. The `Display` texts follow the original mod_fastcgi's log
/// texts where one exists, so that logs read as before after the
/// "protocol error: " prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A record header whose version is not [`VERSION_1`].
    InvalidVersion(u8),
    /// A record type of 0 or above `FCGI_MAXTYPE` (11) where the receiver
    /// cannot skip it (the web server side).
    InvalidType(u8),
    /// A valid type that does not travel in this direction, e.g. `STDIN`
    /// sent by an application.
    UnexpectedType(u8),
    /// A record for a request id other than the one being decoded (or a
    /// management record with a non-zero id).
    UnexpectedRequestId { expected: u16, got: u16 },
    /// A `BEGIN_REQUEST` whose content is not the 8-byte body.
    InvalidBeginRequestSize(u16),
    /// An `END_REQUEST` whose content is not the 8-byte body.
    InvalidEndRequestSize(u16),
    /// An `UNKNOWN_TYPE` whose content is not the 8-byte body.
    InvalidUnknownTypeSize(u16),
    /// A name-value block or stream that ends inside a pair.
    TruncatedNameValue,
    /// A `PARAMS` stream longer than the receiver's limit.
    NameValueTooLarge { limit: usize },
    /// Bytes after the application's `END_REQUEST` for our request.
    DataAfterEnd,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolError::*;
        match self {
            InvalidVersion(v) => write!(f, "invalid version: {v} != FCGI_VERSION({VERSION_1})"),
            InvalidType(0) => write!(f, "invalid type: 0"),
            InvalidType(t) => write!(f, "invalid type: {t} > FCGI_MAXTYPE(11)"),
            UnexpectedType(t) => write!(f, "unexpected record type {t}"),
            UnexpectedRequestId { expected, got } => {
                write!(f, "unexpected request id {got} (expected {expected})")
            }
            InvalidBeginRequestSize(n) => {
                write!(f, "invalid FCGI_BEGIN_REQUEST size: {n} != sizeof(FCGI_BeginRequestBody)(8)")
            }
            InvalidEndRequestSize(n) => {
                write!(f, "invalid FCGI_END_REQUEST size: {n} != sizeof(FCGI_EndRequestBody)(8)")
            }
            InvalidUnknownTypeSize(n) => {
                write!(f, "invalid FCGI_UNKNOWN_TYPE size: {n} != sizeof(FCGI_UnknownTypeBody)(8)")
            }
            TruncatedNameValue => write!(f, "truncated name-value pair"),
            NameValueTooLarge { limit } => write!(f, "name-value pairs exceed {limit} bytes"),
            DataAfterEnd => write!(f, "data after FCGI_END_REQUEST"),
        }
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests;
