//! The 8-byte record header, record writing helpers, and the incremental
//! splitter that turns an arbitrarily chunked byte stream into record
//! pieces for both decoders.

use super::{ProtocolError, RecordType, HEADER_LEN, MAX_CONTENT_LEN, VERSION_1};

/// A record header as it came off the wire, before any validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub version: u8,
    pub record_type: u8,
    pub request_id: u16,
    pub content_len: u16,
}

/// Appends a header with arbitrary fields (fault injection needs bad ones).
#[inline(always)]
pub(crate) fn put_header(
    out: &mut Vec<u8>,
    version: u8,
    record_type: u8,
    request_id: u16,
    content_len: u16,
    padding_len: u8,
) {
    let [id_hi, id_lo] = request_id.to_be_bytes();
    let [len_hi, len_lo] = content_len.to_be_bytes();
    out.extend_from_slice(&[version, record_type, id_hi, id_lo, len_hi, len_lo, padding_len, 0]);
}

/// Padding that rounds a record's content up to a multiple of 8 bytes.
fn padding_for(content_len: usize) -> usize {
    content_len.wrapping_neg() & 7
}

/// Appends one padded record. `content` is at most [`MAX_CONTENT_LEN`]
/// bytes: every caller in this module cuts it to size first. Inlined: most
/// records have a fixed size (empty, or 8 bytes), which then folds away.
#[inline(always)]
pub(crate) fn put_record(out: &mut Vec<u8>, t: RecordType, request_id: u16, content: &[u8]) {
    let len = content.len().min(MAX_CONTENT_LEN);
    out.reserve(HEADER_LEN + len + 7);
    let pad = put_content_header(out, t, request_id, len);
    out.extend_from_slice(content.get(..len).unwrap_or(content));
    out.extend_from_slice(&[0; 8][..pad]);
}

/// Appends the header of a padded record of `len` content bytes (at most
/// [`MAX_CONTENT_LEN`]: longer is cut) that the caller sends from its own
/// buffer; returns how many padding bytes must follow them.
#[inline(always)]
pub(crate) fn put_content_header(out: &mut Vec<u8>, t: RecordType, request_id: u16, len: usize) -> usize {
    let len = len.min(MAX_CONTENT_LEN);
    let pad = padding_for(len);
    put_header(out, VERSION_1, t as u8, request_id, len as u16, pad as u8);
    pad
}

/// Appends `data` as a stream's records, as many as its length needs;
/// nothing for empty data (the end of a stream is an explicit empty record).
pub(crate) fn put_stream(out: &mut Vec<u8>, t: RecordType, request_id: u16, data: &[u8]) {
    out.reserve(data.len() + (data.len() / MAX_CONTENT_LEN + 1) * (HEADER_LEN + 7));
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        put_record(out, t, request_id, chunk);
    }
}

/// Starts a record whose content the caller appends next; returns the
/// record's offset for [`close_record`].
pub(crate) fn open_record(out: &mut Vec<u8>, t: RecordType, request_id: u16) -> usize {
    let start = out.len();
    put_header(out, VERSION_1, t as u8, request_id, 0, 0);
    start
}

/// Finishes a record begun by [`open_record`]: fills in the length of what
/// was appended since (the caller keeps it within [`MAX_CONTENT_LEN`]) and
/// pads it.
pub(crate) fn close_record(out: &mut Vec<u8>, start: usize) {
    let len = out.len().saturating_sub(start + HEADER_LEN);
    let pad = padding_for(len);
    if let Some(h) = out.get_mut(start + 4..start + 7) {
        let [hi, lo] = (len.min(MAX_CONTENT_LEN) as u16).to_be_bytes();
        h.copy_from_slice(&[hi, lo, pad as u8]);
    }
    out.extend_from_slice(&[0; 8][..pad]);
}

/// The first 8 bytes of a fixed-size body, zero-filled if shorter (decoders
/// have checked the size already; this keeps the parsing total).
pub(crate) fn body8(body: &[u8]) -> [u8; 8] {
    let mut b = [0; 8];
    for (d, s) in b.iter_mut().zip(body) {
        *d = *s;
    }
    b
}

/// What a decoder wants done with the content of the record just begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Content {
    /// Hand it out piece by piece as slices of the input (zero copy).
    Stream,
    /// Collect it (at most one record, 65535 bytes) for [`Splitter::body`].
    Buffer,
    /// Drop it.
    Skip,
}

/// One step of the splitter's progress through the input.
#[derive(Debug)]
pub(crate) enum Piece<'i> {
    /// Some content of a [`Content::Stream`] record, borrowed from the input.
    Content(Header, &'i [u8]),
    /// The record's content is complete (padding may still follow); a
    /// buffered body is in [`Splitter::body`].
    End(Header),
}

#[derive(Debug)]
enum State {
    Header,
    Content,
    Padding,
}

/// Cuts a byte stream into records, however it is chunked, keeping at most
/// a partial header and one buffered record body. A decoder drives it with
/// a `classify` callback that validates each header and picks its
/// [`Content`] handling; the first error is kept and returned forever.
#[derive(Debug)]
pub(crate) struct Splitter {
    state: State,
    hdr: [u8; HEADER_LEN],
    hdr_len: usize,
    header: Header,
    mode: Content,
    content_left: usize,
    padding_left: usize,
    /// A buffered body of up to 8 bytes (END_REQUEST, UNKNOWN_TYPE: every
    /// request has one), without an allocation.
    small: [u8; 8],
    small_len: usize,
    /// A larger buffered body (GET_VALUES_RESULT).
    body: Vec<u8>,
    error: Option<ProtocolError>,
}

impl Splitter {
    pub fn new() -> Self {
        Splitter {
            state: State::Header,
            hdr: [0; HEADER_LEN],
            hdr_len: 0,
            header: Header::default(),
            mode: Content::Skip,
            content_left: 0,
            padding_left: 0,
            small: [0; 8],
            small_len: 0,
            body: Vec::new(),
            error: None,
        }
    }

    /// Advances through `input` to the next piece. Returns the bytes
    /// consumed and the piece, or `None` once all of `input` is consumed
    /// and more is needed.
    pub fn next<'i>(
        &mut self,
        input: &'i [u8],
        classify: impl Fn(&Header) -> Result<Content, ProtocolError>,
    ) -> Result<(usize, Option<Piece<'i>>), ProtocolError> {
        self.check()?;
        let mut rest = input;
        loop {
            match self.state {
                State::Header => {
                    // A whole header in the input (nearly always) is read
                    // where it is; a split one is gathered in `hdr`.
                    let hdr = match rest.split_first_chunk::<HEADER_LEN>() {
                        Some((hdr, later)) if self.hdr_len == 0 => {
                            rest = later;
                            *hdr
                        }
                        _ => {
                            let take = (HEADER_LEN - self.hdr_len).min(rest.len());
                            let (now, later) = rest.split_at(take);
                            self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(now);
                            self.hdr_len += take;
                            rest = later;
                            if self.hdr_len < HEADER_LEN {
                                return Ok((input.len(), None));
                            }
                            self.hdr_len = 0;
                            self.hdr
                        }
                    };
                    let [version, record_type, id_hi, id_lo, len_hi, len_lo, pad, _] = hdr;
                    self.header = Header {
                        version,
                        record_type,
                        request_id: u16::from_be_bytes([id_hi, id_lo]),
                        content_len: u16::from_be_bytes([len_hi, len_lo]),
                    };
                    self.mode = classify(&self.header).map_err(|e| self.fail(e))?;
                    self.content_left = self.header.content_len.into();
                    self.padding_left = pad.into();
                    self.body.clear();
                    self.small_len = 0;
                    self.state = State::Content;
                }
                State::Content if self.content_left == 0 => {
                    self.state = State::Padding;
                    return Ok((input.len() - rest.len(), Some(Piece::End(self.header))));
                }
                State::Content => {
                    if rest.is_empty() {
                        return Ok((input.len(), None));
                    }
                    let (now, later) = rest.split_at(self.content_left.min(rest.len()));
                    self.content_left -= now.len();
                    rest = later;
                    match self.mode {
                        Content::Stream => {
                            let used = input.len() - rest.len();
                            return Ok((used, Some(Piece::Content(self.header, now))));
                        }
                        Content::Buffer => match self.small.get_mut(self.small_len..self.small_len + now.len()) {
                            Some(room) if self.header.content_len <= 8 => {
                                room.copy_from_slice(now);
                                self.small_len += now.len();
                            }
                            _ => self.body.extend_from_slice(now),
                        },
                        Content::Skip => {}
                    }
                }
                State::Padding => {
                    rest = &rest[self.skip_padding(rest)..];
                    if self.padding_left > 0 {
                        return Ok((input.len(), None));
                    }
                    self.state = State::Header;
                }
            }
        }
    }

    /// Consumes what is left of the current record's padding from the front
    /// of `input`; returns how many bytes that was.
    pub fn skip_padding(&mut self, input: &[u8]) -> usize {
        if !matches!(self.state, State::Padding) {
            return 0;
        }
        let n = self.padding_left.min(input.len());
        self.padding_left -= n;
        n
    }

    /// The content of the last [`Content::Buffer`] record, valid from its
    /// [`Piece::End`] until the next call to `next`.
    pub fn body(&self) -> &[u8] {
        if self.header.content_len <= 8 {
            &self.small[..self.small_len]
        } else {
            &self.body
        }
    }

    /// The sticky error, if any.
    pub fn check(&self) -> Result<(), ProtocolError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records `e` as the sticky error and returns it.
    pub fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        self.error = Some(e.clone());
        e
    }

    /// True between records: the stream may end here without losing data.
    pub fn at_boundary(&self) -> bool {
        match self.state {
            State::Header => self.hdr_len == 0,
            // A record just ended and has no padding left to read.
            State::Padding => self.padding_left == 0,
            State::Content => false,
        }
    }

    /// Bytes held internally: a partial header plus a buffered body.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.hdr_len + self.body.capacity()
    }
}
