//! The web server's side: encoding a request, decoding the response.

use super::nv::{encode_nv_pair, nv_encoded_len, pair_head, put_nv_record, NvPairs};
use super::record::{
    body8, close_record, open_record, put_content_header, put_record, put_stream, Content, Header, Piece, Splitter,
};
use super::{ProtocolError, RecordType, Role, FLAG_KEEP_CONN, HEADER_LEN, MAX_CONTENT_LEN};

/// Encodes the records a web server sends for one request id. All methods
/// append to a caller-owned Vec; content > 65535 is split into several
/// records; every record is padded to a multiple of 8.
#[derive(Clone, Copy, Debug)]
pub struct RequestEncoder {
    /// The request id every record carries.
    pub request_id: u16,
}

impl RequestEncoder {
    /// An encoder for `request_id` (1 for a non-multiplexed connection).
    pub fn new(request_id: u16) -> Self {
        RequestEncoder { request_id }
    }

    /// The `BEGIN_REQUEST` record that opens the request.
    pub fn begin_request(&self, out: &mut Vec<u8>, role: Role, keep_conn: bool) {
        let [hi, lo] = (role as u16).to_be_bytes();
        let flags = if keep_conn { FLAG_KEEP_CONN } else { 0 };
        let body = [hi, lo, flags, 0, 0, 0, 0, 0];
        put_record(out, RecordType::BeginRequest, self.request_id, &body);
    }

    /// A streaming PARAMS writer: pairs go into `out`, records are closed
    /// when they reach 65535 bytes of content (pairs may span records); call
    /// [`ParamsWriter::finish`] to close the last record and write the empty
    /// PARAMS record that ends the stream. No allocation per pair beyond
    /// `out` growing.
    pub fn params<'o>(&self, out: &'o mut Vec<u8>) -> ParamsWriter<'o> {
        // The first record is opened now, so that every short pair takes
        // the fast path; an empty one is taken back by `flush`.
        let start = open_record(out, RecordType::Params, self.request_id);
        ParamsWriter { out, request_id: self.request_id, open: Some(start), room: MAX_CONTENT_LEN, written: 0 }
    }

    /// STDIN data (split into records as needed). Empty `data` writes
    /// nothing (use [`stdin_end`](Self::stdin_end)).
    pub fn stdin(&self, out: &mut Vec<u8>, data: &[u8]) {
        put_stream(out, RecordType::Stdin, self.request_id, data);
    }

    /// The header of one STDIN record of `len` bytes (at most 65535), for
    /// a caller that writes the content from its own buffer; returns the
    /// padding that must follow the content.
    pub fn stdin_header(&self, out: &mut Vec<u8>, len: usize) -> usize {
        put_content_header(out, RecordType::Stdin, self.request_id, len)
    }

    /// The empty STDIN record that ends the request body.
    pub fn stdin_end(&self, out: &mut Vec<u8>) {
        put_record(out, RecordType::Stdin, self.request_id, &[]);
    }

    /// DATA stream content for the Filter role (the file to filter); split
    /// and empty input handled as for [`stdin`](Self::stdin).
    pub fn data(&self, out: &mut Vec<u8>, data: &[u8]) {
        put_stream(out, RecordType::Data, self.request_id, data);
    }

    /// The empty DATA record that ends the Filter role's file.
    pub fn data_end(&self, out: &mut Vec<u8>) {
        put_record(out, RecordType::Data, self.request_id, &[]);
    }

    /// `ABORT_REQUEST`: asks the application to stop the request and answer
    /// with `END_REQUEST`, so a kept-alive connection survives a client abort.
    pub fn abort_request(&self, out: &mut Vec<u8>) {
        put_record(out, RecordType::AbortRequest, self.request_id, &[]);
    }
}

/// Writes the PARAMS stream into the caller's buffer, one pair at a time,
/// from [`RequestEncoder::params`].
///
/// To produce a huge environment in pieces rather than in one big buffer,
/// call [`flush`](Self::flush) whenever [`written`](Self::written) has grown
/// by as much as you want to buffer: it closes the open record and hands
/// back `out`, which then holds only complete records that may be sent and
/// drained before more pairs are added.
#[must_use = "call finish() to end the PARAMS stream"]
#[derive(Debug)]
pub struct ParamsWriter<'o> {
    out: &'o mut Vec<u8>,
    request_id: u16,
    /// Offset in `out` of the PARAMS record being filled, if one is open.
    open: Option<usize>,
    /// Content bytes the open record can still take (0 when none is open),
    /// kept so that the common pair is one comparison.
    room: usize,
    written: usize,
}

impl ParamsWriter<'_> {
    /// Appends one pair (skipped if a length reaches 2 GiB, see
    /// [`encode_nv_pair`]).
    #[inline(always)]
    pub fn pair(&mut self, name: &[u8], value: &[u8]) {
        // Nearly every CGI variable: short name and value, room left in the
        // open record.
        let len = 2 + name.len() + value.len();
        if name.len() < 128 && value.len() < 128 && len <= self.room {
            self.room -= len;
            self.written += len;
            self.out.extend_from_slice(&[name.len() as u8, value.len() as u8]);
            self.out.extend_from_slice(name);
            self.out.extend_from_slice(value);
            return;
        }
        self.pair_anywhere(name, value);
    }

    /// [`pair`](Self::pair) for the rest: long lengths, a pair that crosses
    /// into the next record, the first pair after a [`flush`](Self::flush).
    #[inline(never)]
    fn pair_anywhere(&mut self, name: &[u8], value: &[u8]) {
        let len = nv_encoded_len(name, value);
        if len == 0 {
            return;
        }
        self.written += len;
        let start = match self.open {
            Some(start) => start,
            None => open_record(self.out, RecordType::Params, self.request_id),
        };
        self.open = Some(start);
        if self.out.len() - start - HEADER_LEN + len <= MAX_CONTENT_LEN {
            encode_nv_pair(self.out, name, value);
        } else {
            // The pair crosses a record boundary: write its parts piecewise.
            let (head, head_len) = pair_head(name.len(), value.len());
            self.put(&head[..head_len]);
            self.put(name);
            self.put(value);
        }
        self.room = match self.open {
            Some(start) => MAX_CONTENT_LEN - (self.out.len() - start - HEADER_LEN),
            None => 0,
        };
    }

    /// Appends content to the PARAMS stream, starting records as they fill.
    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let start = match self.open {
                Some(start) => start,
                None => open_record(self.out, RecordType::Params, self.request_id),
            };
            let room = MAX_CONTENT_LEN - (self.out.len() - start - HEADER_LEN);
            if room == 0 {
                close_record(self.out, start);
                self.open = None;
                continue;
            }
            self.open = Some(start);
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.out.extend_from_slice(now);
            bytes = later;
        }
    }

    /// Encoded pair bytes written so far, so that a caller can bound the
    /// environment's size and decide when to [`flush`](Self::flush).
    pub fn written(&self) -> usize {
        self.written
    }

    /// Closes the open record, so that `out` holds only complete records,
    /// and returns `out`: the caller may send and drain any of it, then go
    /// on adding pairs (they start a new record at the end of `out`).
    pub fn flush(&mut self) -> &mut Vec<u8> {
        match self.open.take() {
            Some(start) if self.out.len() == start + HEADER_LEN => self.out.truncate(start),
            Some(start) => close_record(self.out, start),
            None => {}
        }
        self.room = 0;
        self.out
    }

    /// Closes the last record and writes the empty PARAMS record that ends
    /// the stream.
    pub fn finish(mut self) {
        let request_id = self.request_id;
        put_record(self.flush(), RecordType::Params, request_id, &[]);
    }
}

/// GET_VALUES management record (request id 0) asking for the given
/// variable names (e.g. FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS),
/// empty values, so a server can learn an application's limits. Names that
/// would not fit in one record are left out.
///
/// The record always ends with padding, 8 bytes when its content is
/// already a multiple of 8: libfcgi acts on a management record only once
/// it has read a byte past its content (it reads ahead for the next
/// header), so a question without padding on an otherwise idle connection
/// is never answered.
pub fn encode_get_values(out: &mut Vec<u8>, names: &[&[u8]]) {
    let start = out.len();
    let pairs = names.iter().map(|name| (*name, &[][..]));
    put_nv_record(out, RecordType::GetValues, pairs);
    let padding = start + 6;
    if out.get(padding) == Some(&0) {
        out[padding] = 8;
        out.extend_from_slice(&[0; 8]);
    }
}

/// What a web server gets from the application's byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseEvent<'a> {
    /// STDOUT content, a slice of the caller's input (zero copy); may be
    /// any part of a record. An empty STDOUT record (end of stream) is
    /// reported as StdoutEnd.
    Stdout(&'a [u8]),
    /// The empty STDOUT record that ends the stream.
    StdoutEnd,
    /// STDERR content, zero copy like `Stdout`.
    Stderr(&'a [u8]),
    /// The empty STDERR record that ends the stream.
    StderrEnd,
    /// The application is done with the request.
    EndRequest { app_status: u32, protocol_status: u8 },
    /// management record with request id 0, content buffered internally
    /// (bounded by 65535)
    GetValuesResult(NvPairs<'a>),
    /// FCGI_UNKNOWN_TYPE from the app: the type it did not understand
    UnknownType(u8),
}

/// Incremental decoder of the application's records for ONE request id,
/// for the web server.
///
/// Accepts input split anywhere (one byte at a time gives the same
/// concatenated events as one big read); keeps only the 8-byte header and
/// small management/END_REQUEST bodies internally; STDOUT/STDERR content is
/// never copied. Padding is skipped. Errors are sticky (returned again on
/// every later call). Once `END_REQUEST` has been decoded, [`is_done`]
/// is true, the rest of that record's padding is still accepted, and any
/// further byte is [`ProtocolError::DataAfterEnd`]. Records for request id 0
/// of type GET_VALUES_RESULT / UNKNOWN_TYPE are management; other records
/// whose id differs from ours are [`ProtocolError::UnexpectedRequestId`].
///
/// [`is_done`]: Self::is_done
#[derive(Debug)]
pub struct ResponseDecoder {
    request_id: u16,
    split: Splitter,
    done: bool,
}

impl ResponseDecoder {
    /// A decoder for the response to `request_id`.
    pub fn new(request_id: u16) -> Self {
        ResponseDecoder { request_id, split: Splitter::new(), done: false }
    }

    /// Decodes at most one event from the front of `input`. Returns (bytes
    /// consumed, event). `(n, None)` with n == input.len() means all input
    /// was absorbed (header bytes/padding/management body buffered) and
    /// more is needed. The caller loops: `while !input.is_empty() { let (n,
    /// ev) = dec.decode(input)?; input = &input[n..]; handle(ev) }`. Never
    /// returns (0, None) for non-empty input: it returns an error instead.
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Result<(usize, Option<ResponseEvent<'a>>), ProtocolError> {
        if self.done {
            self.split.check()?;
            let n = self.split.skip_padding(input);
            if n < input.len() {
                return Err(self.split.fail(ProtocolError::DataAfterEnd));
            }
            return Ok((n, None));
        }
        let ours = self.request_id;
        let mut used = 0;
        loop {
            let (n, piece) = self.split.next(&input[used..], |h| classify_response(h, ours))?;
            used += n;
            let h = match piece {
                None => return Ok((used, None)),
                Some(Piece::Content(h, data)) if h.record_type == RecordType::Stdout as u8 => {
                    return Ok((used, Some(ResponseEvent::Stdout(data))));
                }
                Some(Piece::Content(_, data)) => {
                    return Ok((used, Some(ResponseEvent::Stderr(data))));
                }
                Some(Piece::End(h)) => h,
            };
            let event = match RecordType::from_u8(h.record_type) {
                Some(RecordType::Stdout) if h.content_len == 0 => ResponseEvent::StdoutEnd,
                Some(RecordType::Stderr) if h.content_len == 0 => ResponseEvent::StderrEnd,
                Some(RecordType::EndRequest) => {
                    let [a, b, c, d, protocol_status, ..] = body8(self.split.body());
                    self.done = true;
                    ResponseEvent::EndRequest { app_status: u32::from_be_bytes([a, b, c, d]), protocol_status }
                }
                Some(RecordType::GetValuesResult) => ResponseEvent::GetValuesResult(NvPairs::new(self.split.body())),
                Some(RecordType::UnknownType) => ResponseEvent::UnknownType(body8(self.split.body())[0]),
                // The end of a STDOUT or STDERR record with content.
                _ => continue,
            };
            return Ok((used, Some(event)));
        }
    }

    /// True once `END_REQUEST` for our request has been decoded.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// True when the input so far stopped inside a record (header, content
    /// or padding): an end of stream here means the application died
    /// mid-record, and output may be missing.
    pub fn in_record(&self) -> bool {
        !self.split.at_boundary()
    }

    /// Bytes held internally, for the robustness tests.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.split.buffered()
    }
}

/// Validates a header from the application and says how to read its body.
fn classify_response(h: &Header, ours: u16) -> Result<Content, ProtocolError> {
    if h.version != super::VERSION_1 {
        return Err(ProtocolError::InvalidVersion(h.version));
    }
    let t = RecordType::from_u8(h.record_type).ok_or(ProtocolError::InvalidType(h.record_type))?;
    let (expected, content) = match t {
        RecordType::Stdout | RecordType::Stderr => (ours, Content::Stream),
        RecordType::EndRequest => (ours, Content::Buffer),
        RecordType::GetValuesResult | RecordType::UnknownType => (0, Content::Buffer),
        _ => return Err(ProtocolError::UnexpectedType(h.record_type)),
    };
    if h.request_id != expected {
        return Err(ProtocolError::UnexpectedRequestId { expected, got: h.request_id });
    }
    match t {
        RecordType::EndRequest if h.content_len != 8 => Err(ProtocolError::InvalidEndRequestSize(h.content_len)),
        RecordType::UnknownType if h.content_len != 8 => Err(ProtocolError::InvalidUnknownTypeSize(h.content_len)),
        _ => Ok(content),
    }
}
