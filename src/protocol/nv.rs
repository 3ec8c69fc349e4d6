//! Name-value pairs, the payload of `PARAMS`, `GET_VALUES` and
//! `GET_VALUES_RESULT`: `nameLen valueLen name value`, where a length below
//! 128 takes one byte and any other takes four with the top bit set.

use super::record::{close_record, open_record};
use super::{ProtocolError, RecordType, MAX_CONTENT_LEN};

/// The longest name or value a 31-bit length can express.
const MAX_NV_LEN: usize = 0x7fff_ffff;

/// The encoded `nameLen valueLen` of a pair: its bytes and how many of
/// them are used (2 to 8).
pub(crate) fn pair_head(name_len: usize, value_len: usize) -> ([u8; 8], usize) {
    let mut head = [0; 8];
    let mut used = 0;
    for n in [name_len, value_len] {
        if n < 128 {
            head[used] = n as u8;
            used += 1;
        } else {
            head[used..used + 4].copy_from_slice(&(n as u32 | 0x8000_0000).to_be_bytes());
            used += 4;
        }
    }
    (head, used)
}

/// Bytes [`encode_nv_pair`] appends for this pair (1-byte lengths below
/// 128, else 4-byte with the high bit), so callers can size buffers and
/// records up front. 0 for a pair it skips (see there).
pub fn nv_encoded_len(name: &[u8], value: &[u8]) -> usize {
    if name.len() > MAX_NV_LEN || value.len() > MAX_NV_LEN {
        return 0;
    }
    let size = |n: usize| if n < 128 { 1 } else { 4 };
    size(name.len()) + size(value.len()) + name.len() + value.len()
}

/// Appends one encoded pair to `out`. FastCGI lengths have 31 bits, so a
/// name or value of 2 GiB or more cannot be sent: such a pair is skipped
/// whole (nothing is appended) rather than sent corrupted. No web server
/// environment comes near that.
pub fn encode_nv_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let len = nv_encoded_len(name, value);
    if len == 0 {
        return;
    }
    out.reserve(len);
    if name.len() < 128 && value.len() < 128 {
        // Nearly every CGI variable: two one-byte lengths.
        out.extend_from_slice(&[name.len() as u8, value.len() as u8]);
    } else {
        let (head, head_len) = pair_head(name.len(), value.len());
        out.extend_from_slice(&head[..head_len]);
    }
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Appends one management record (request id 0) of `pairs`. A record
/// cannot span records, so a pair that would take the content past 65535
/// bytes is left out; the few short names of the spec never come close.
pub(crate) fn put_nv_record<'p>(out: &mut Vec<u8>, t: RecordType, pairs: impl Iterator<Item = (&'p [u8], &'p [u8])>) {
    let start = open_record(out, t, 0);
    let mut content = 0;
    for (name, value) in pairs {
        let len = nv_encoded_len(name, value);
        if content + len <= MAX_CONTENT_LEN {
            encode_nv_pair(out, name, value);
            content += len;
        }
    }
    close_record(out, start);
}

/// Reads one length; `None` if `b` ends first.
fn parse_len(b: &[u8]) -> Option<(usize, &[u8])> {
    match *b {
        [n, ref rest @ ..] if n < 128 => Some((n.into(), rest)),
        [b3, b2, b1, b0, ref rest @ ..] => {
            let n = u32::from_be_bytes([b3 & 0x7f, b2, b1, b0]);
            Some((usize::try_from(n).ok()?, rest))
        }
        _ => None,
    }
}

/// Splits one complete pair off the front of `b`: `(name, value, rest)`,
/// or `None` if `b` ends inside the pair.
fn parse_pair(b: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (name_len, b) = parse_len(b)?;
    let (value_len, b) = parse_len(b)?;
    if b.len() < name_len.checked_add(value_len)? {
        return None;
    }
    let (name, b) = b.split_at(name_len);
    let (value, rest) = b.split_at(value_len);
    Some((name, value, rest))
}

/// Iterates over pairs of a complete name-value block (GET_VALUES /
/// GET_VALUES_RESULT content), borrowing names and values from the block.
/// A block that ends inside a pair yields one
/// [`ProtocolError::TruncatedNameValue`] and then stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvPairs<'a> {
    rest: &'a [u8],
}

impl<'a> NvPairs<'a> {
    /// Starts at the first pair of `block`.
    pub fn new(block: &'a [u8]) -> Self {
        NvPairs { rest: block }
    }
}

impl<'a> Iterator for NvPairs<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match parse_pair(self.rest) {
            Some((name, value, rest)) => {
                self.rest = rest;
                Some(Ok((name, value)))
            }
            None => {
                self.rest = &[];
                Some(Err(ProtocolError::TruncatedNameValue))
            }
        }
    }
}

/// Incremental decoder for a PARAMS stream split arbitrarily across
/// records and reads (an application receives it that way). Pairs come out
/// owned. `max_total` bounds the stream's encoded length, and with it the
/// memory the peer can make this allocate (linear in it: the bytes, plus
/// two `Vec`s per pair of at least 2 bytes); going over it is
/// [`ProtocolError::NameValueTooLarge`]. Errors are sticky.
#[derive(Debug)]
pub struct ParamsDecoder {
    max_total: usize,
    total: usize,
    /// The start of a pair whose end has not arrived yet.
    pending: Vec<u8>,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    error: Option<ProtocolError>,
}

impl ParamsDecoder {
    /// A decoder that accepts at most `max_total` bytes of encoded pairs.
    pub fn new(max_total: usize) -> Self {
        ParamsDecoder { max_total, total: 0, pending: Vec::new(), pairs: Vec::new(), error: None }
    }

    /// Takes the next piece of the stream, keeping every pair it completes.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.total = self.total.saturating_add(data.len());
        if self.total > self.max_total {
            let e = ProtocolError::NameValueTooLarge { limit: self.max_total };
            self.error = Some(e.clone());
            return Err(e);
        }
        if self.pending.is_empty() {
            let rest = take_pairs(&mut self.pairs, data);
            self.pending.extend_from_slice(rest);
        } else {
            self.pending.extend_from_slice(data);
            let used = self.pending.len() - take_pairs(&mut self.pairs, &self.pending).len();
            self.pending.drain(..used);
        }
        Ok(())
    }

    /// Ends the stream: all pairs in order, or
    /// [`ProtocolError::TruncatedNameValue`] if it stopped inside a pair.
    #[allow(clippy::type_complexity)] // spelled out: it is the published signature
    pub fn finish(self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ProtocolError> {
        match self.error {
            Some(e) => Err(e),
            None if !self.pending.is_empty() => Err(ProtocolError::TruncatedNameValue),
            None => Ok(self.pairs),
        }
    }

    /// Bytes held for an incomplete pair.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Moves the complete pairs at the front of `b` into `pairs`; returns the
/// incomplete rest.
fn take_pairs<'b>(pairs: &mut Vec<(Vec<u8>, Vec<u8>)>, mut b: &'b [u8]) -> &'b [u8] {
    while let Some((name, value, rest)) = parse_pair(b) {
        pairs.push((name.to_vec(), value.to_vec()));
        b = rest;
    }
    b
}
