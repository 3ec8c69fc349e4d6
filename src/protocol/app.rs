//! The application's side: decoding a web server's requests, encoding the
//! response. The module itself only talks to applications, but its test
//! suite's FastCGI backends (including the fault-injecting one) use this.

use super::nv::{put_nv_record, NvPairs};
use super::record::{body8, put_header, put_record, put_stream, Content, Header, Piece, Splitter};
use super::{ProtocolError, RecordType, FLAG_KEEP_CONN, MAX_CONTENT_LEN};

/// What an application gets from the web server's byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestEvent<'a> {
    /// A new request; `role` is raw so that an app can answer an unknown
    /// one with `UNKNOWN_ROLE`.
    BeginRequest { request_id: u16, role: u16, keep_conn: bool },
    /// raw PARAMS stream bytes (feed into a ParamsDecoder); end of stream
    /// is ParamsEnd
    Params { request_id: u16, data: &'a [u8] },
    /// The empty PARAMS record that ends the stream.
    ParamsEnd { request_id: u16 },
    /// Request body bytes, a slice of the caller's input.
    Stdin { request_id: u16, data: &'a [u8] },
    /// The empty STDIN record that ends the body.
    StdinEnd { request_id: u16 },
    /// Filter-role file bytes, a slice of the caller's input.
    Data { request_id: u16, data: &'a [u8] },
    /// The empty DATA record that ends the file.
    DataEnd { request_id: u16 },
    /// The server gives up on this request.
    AbortRequest { request_id: u16 },
    /// A management query for the app's limits; answer with
    /// [`encode_get_values_result`].
    GetValues(NvPairs<'a>),
    /// a record type this side does not know (from_u8 None) or a management
    /// type it does not handle: the app should answer with
    /// [`encode_unknown_type`]
    UnknownType(u8),
}

/// Incremental decoder of the web server's records (application side).
/// Same contract as [`ResponseDecoder`](super::ResponseDecoder): decode
/// returns at most one event, zero copy for stream content, sticky errors,
/// bounded buffering. Handles multiple request ids (multiplexed); it does
/// not police ids. Version != 1 is an error, and so are the types only an
/// application sends (END_REQUEST, STDOUT, STDERR).
#[derive(Debug)]
pub struct RequestDecoder {
    split: Splitter,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestDecoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Self {
        RequestDecoder { split: Splitter::new() }
    }

    /// Decodes at most one event from the front of `input`; see
    /// [`ResponseDecoder::decode`](super::ResponseDecoder::decode).
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Result<(usize, Option<RequestEvent<'a>>), ProtocolError> {
        let mut used = 0;
        loop {
            let (n, piece) = self.split.next(&input[used..], classify_request)?;
            used += n;
            let h = match piece {
                None => return Ok((used, None)),
                Some(Piece::Content(h, data)) => {
                    let request_id = h.request_id;
                    let event = match RecordType::from_u8(h.record_type) {
                        Some(RecordType::Params) => RequestEvent::Params { request_id, data },
                        Some(RecordType::Stdin) => RequestEvent::Stdin { request_id, data },
                        _ => RequestEvent::Data { request_id, data },
                    };
                    return Ok((used, Some(event)));
                }
                Some(Piece::End(h)) => h,
            };
            let request_id = h.request_id;
            let empty = h.content_len == 0;
            let event = match RecordType::from_u8(h.record_type) {
                Some(RecordType::BeginRequest) => {
                    let [hi, lo, flags, ..] = body8(self.split.body());
                    RequestEvent::BeginRequest {
                        request_id,
                        role: u16::from_be_bytes([hi, lo]),
                        keep_conn: flags & FLAG_KEEP_CONN != 0,
                    }
                }
                Some(RecordType::AbortRequest) => RequestEvent::AbortRequest { request_id },
                Some(RecordType::Params) if empty => RequestEvent::ParamsEnd { request_id },
                Some(RecordType::Stdin) if empty => RequestEvent::StdinEnd { request_id },
                Some(RecordType::Data) if empty => RequestEvent::DataEnd { request_id },
                Some(RecordType::GetValues) => RequestEvent::GetValues(NvPairs::new(self.split.body())),
                Some(RecordType::Params | RecordType::Stdin | RecordType::Data) => continue,
                _ => RequestEvent::UnknownType(h.record_type),
            };
            return Ok((used, Some(event)));
        }
    }

    /// Bytes held internally, for the robustness tests.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.split.buffered()
    }
}

/// Validates a header from the web server and says how to read its body.
fn classify_request(h: &Header) -> Result<Content, ProtocolError> {
    if h.version != super::VERSION_1 {
        return Err(ProtocolError::InvalidVersion(h.version));
    }
    match RecordType::from_u8(h.record_type) {
        Some(RecordType::BeginRequest) if h.content_len != 8 => {
            Err(ProtocolError::InvalidBeginRequestSize(h.content_len))
        }
        Some(RecordType::BeginRequest | RecordType::GetValues) => Ok(Content::Buffer),
        Some(RecordType::Params | RecordType::Stdin | RecordType::Data) => Ok(Content::Stream),
        Some(RecordType::EndRequest | RecordType::Stdout | RecordType::Stderr) => {
            Err(ProtocolError::UnexpectedType(h.record_type))
        }
        // ABORT_REQUEST has no body; the rest become UnknownType events.
        _ => Ok(Content::Skip),
    }
}

/// Encodes what an application sends for one request id.
#[derive(Clone, Copy, Debug)]
pub struct ResponseEncoder {
    /// The request id every record carries.
    pub request_id: u16,
}

impl ResponseEncoder {
    /// An encoder for the request the server opened with `request_id`.
    pub fn new(request_id: u16) -> Self {
        ResponseEncoder { request_id }
    }

    /// STDOUT data, split into records as needed; empty `data` writes
    /// nothing (use [`stdout_end`](Self::stdout_end)).
    pub fn stdout(&self, out: &mut Vec<u8>, data: &[u8]) {
        put_stream(out, RecordType::Stdout, self.request_id, data);
    }

    /// The empty STDOUT record that ends the response body.
    pub fn stdout_end(&self, out: &mut Vec<u8>) {
        put_record(out, RecordType::Stdout, self.request_id, &[]);
    }

    /// STDERR data, split into records as needed; empty `data` writes
    /// nothing (use [`stderr_end`](Self::stderr_end)).
    pub fn stderr(&self, out: &mut Vec<u8>, data: &[u8]) {
        put_stream(out, RecordType::Stderr, self.request_id, data);
    }

    /// The empty STDERR record that ends the error stream.
    pub fn stderr_end(&self, out: &mut Vec<u8>) {
        put_record(out, RecordType::Stderr, self.request_id, &[]);
    }

    /// The `END_REQUEST` record that completes the request.
    pub fn end_request(&self, out: &mut Vec<u8>, app_status: u32, protocol_status: u8) {
        let [a, b, c, d] = app_status.to_be_bytes();
        let body = [a, b, c, d, protocol_status, 0, 0, 0];
        put_record(out, RecordType::EndRequest, self.request_id, &body);
    }
}

/// The application's answer to GET_VALUES: one management record with the
/// values it knows. Pairs that would not fit in one record are left out.
pub fn encode_get_values_result(out: &mut Vec<u8>, pairs: &[(&[u8], &[u8])]) {
    put_nv_record(out, RecordType::GetValuesResult, pairs.iter().copied());
}

/// The application's answer to a record type it does not understand.
pub fn encode_unknown_type(out: &mut Vec<u8>, record_type: u8) {
    let body = [record_type, 0, 0, 0, 0, 0, 0, 0];
    put_record(out, RecordType::UnknownType, 0, &body);
}

/// Low-level: one record with arbitrary header fields (for fault injection
/// in tests: bad versions, wrong ids, odd padding), followed by `padding`
/// zero bytes. A header cannot say more than 65535, so only the first
/// 65535 bytes of a longer `content` are written.
pub fn encode_raw_record(
    out: &mut Vec<u8>,
    version: u8,
    record_type: u8,
    request_id: u16,
    content: &[u8],
    padding: u8,
) {
    let content = content.get(..MAX_CONTENT_LEN).unwrap_or(content);
    put_header(out, version, record_type, request_id, content.len() as u16, padding);
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(padding), 0);
}
