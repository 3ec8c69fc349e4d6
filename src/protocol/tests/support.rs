//! Shared helpers: a seeded PRNG and owned copies of decoder events, so
//! that results of differently split inputs can be compared.

#[cfg(test)] // test code only, like the whole `tests` module
use crate::protocol::*;

/// xorshift64*: deterministic, dependency-free randomness for the tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// Random bytes, fewer than `max` of them.
    pub fn bytes_below(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }

    /// Cuts `len` bytes into random piece lengths: one byte at a time,
    /// tiny, medium or large pieces, chosen per call.
    pub fn splits(&mut self, len: usize) -> Vec<usize> {
        let max = match self.below(4) {
            0 => 1,
            1 => 16,
            2 => 8192,
            _ => 200_000,
        };
        let mut cuts = Vec::new();
        let mut left = len;
        while left > 0 {
            let n = (1 + self.below(max)).min(left);
            cuts.push(n);
            left -= n;
        }
        cuts
    }
}

/// An owned [`ResponseEvent`], with stream pieces merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    Stdout(Vec<u8>),
    StdoutEnd,
    Stderr(Vec<u8>),
    StderrEnd,
    End(u32, u8),
    Values(Vec<(Vec<u8>, Vec<u8>)>),
    Unknown(u8),
}

fn push_resp(events: &mut Vec<Resp>, ev: ResponseEvent<'_>) {
    let ev = match ev {
        ResponseEvent::Stdout(d) => {
            if let Some(Resp::Stdout(prev)) = events.last_mut() {
                prev.extend_from_slice(d);
                return;
            }
            Resp::Stdout(d.to_vec())
        }
        ResponseEvent::Stderr(d) => {
            if let Some(Resp::Stderr(prev)) = events.last_mut() {
                prev.extend_from_slice(d);
                return;
            }
            Resp::Stderr(d.to_vec())
        }
        ResponseEvent::StdoutEnd => Resp::StdoutEnd,
        ResponseEvent::StderrEnd => Resp::StderrEnd,
        ResponseEvent::EndRequest { app_status, protocol_status } => Resp::End(app_status, protocol_status),
        ResponseEvent::GetValuesResult(pairs) => {
            Resp::Values(pairs.map(|p| p.map(|(n, v)| (n.to_vec(), v.to_vec()))).collect::<Result<_, _>>().unwrap())
        }
        ResponseEvent::UnknownType(t) => Resp::Unknown(t),
    };
    events.push(ev);
}

/// Decodes `input` fed in pieces of the given lengths, checking the
/// decoder's contract on every call.
pub fn decode_response(dec: &mut ResponseDecoder, input: &[u8], cuts: &[usize]) -> Result<Vec<Resp>, ProtocolError> {
    let mut events = Vec::new();
    let mut at = 0;
    for &cut in cuts {
        let mut chunk = &input[at..at + cut];
        at += cut;
        while !chunk.is_empty() {
            let (n, ev) = dec.decode(chunk)?;
            assert!(n <= chunk.len());
            assert!(n > 0 || ev.is_some(), "(0, None) for non-empty input");
            if let Some(ev) = ev {
                if let ResponseEvent::Stdout(d) | ResponseEvent::Stderr(d) = ev {
                    // Zero copy: the slice lies inside the consumed input.
                    let range = chunk[..n].as_ptr_range();
                    assert!(d.is_empty() || range.contains(&d.as_ptr()));
                }
                push_resp(&mut events, ev);
            } else {
                assert_eq!(n, chunk.len());
            }
            chunk = &chunk[n..];
        }
    }
    Ok(events)
}

/// An owned [`RequestEvent`], with stream pieces merged; PARAMS come out
/// decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Req {
    Begin(u16, u16, bool),
    Params(u16, Vec<(Vec<u8>, Vec<u8>)>),
    Stdin(u16, Vec<u8>),
    StdinEnd(u16),
    Data(u16, Vec<u8>),
    DataEnd(u16),
    Abort(u16),
    Values(Vec<(Vec<u8>, Vec<u8>)>),
    Unknown(u8),
}

/// Decodes a web server's stream the way an application would: PARAMS
/// bytes go through a [`ParamsDecoder`] until ParamsEnd.
pub fn decode_request(
    dec: &mut RequestDecoder,
    input: &[u8],
    cuts: &[usize],
    params_limit: usize,
) -> Result<Vec<Req>, ProtocolError> {
    let mut events = Vec::new();
    let mut params: Option<ParamsDecoder> = None;
    let mut at = 0;
    for &cut in cuts {
        let mut chunk = &input[at..at + cut];
        at += cut;
        while !chunk.is_empty() {
            let (n, ev) = dec.decode(chunk)?;
            assert!(n <= chunk.len());
            assert!(n > 0 || ev.is_some(), "(0, None) for non-empty input");
            if ev.is_none() {
                assert_eq!(n, chunk.len());
            }
            let last = events.last_mut();
            let ev = match ev {
                None => None,
                Some(RequestEvent::BeginRequest { request_id, role, keep_conn }) => {
                    Some(Req::Begin(request_id, role, keep_conn))
                }
                Some(RequestEvent::Params { data, .. }) => {
                    params.get_or_insert_with(|| ParamsDecoder::new(params_limit)).feed(data)?;
                    None
                }
                Some(RequestEvent::ParamsEnd { request_id }) => {
                    let p = params.take().unwrap_or_else(|| ParamsDecoder::new(0));
                    Some(Req::Params(request_id, p.finish()?))
                }
                Some(RequestEvent::Stdin { request_id, data }) => match last {
                    Some(Req::Stdin(id, prev)) if *id == request_id => {
                        prev.extend_from_slice(data);
                        None
                    }
                    _ => Some(Req::Stdin(request_id, data.to_vec())),
                },
                Some(RequestEvent::StdinEnd { request_id }) => Some(Req::StdinEnd(request_id)),
                Some(RequestEvent::Data { request_id, data }) => match last {
                    Some(Req::Data(id, prev)) if *id == request_id => {
                        prev.extend_from_slice(data);
                        None
                    }
                    _ => Some(Req::Data(request_id, data.to_vec())),
                },
                Some(RequestEvent::DataEnd { request_id }) => Some(Req::DataEnd(request_id)),
                Some(RequestEvent::AbortRequest { request_id }) => Some(Req::Abort(request_id)),
                Some(RequestEvent::GetValues(pairs)) => Some(Req::Values(
                    pairs.map(|p| p.map(|(n, v)| (n.to_vec(), v.to_vec()))).collect::<Result<_, _>>()?,
                )),
                Some(RequestEvent::UnknownType(t)) => Some(Req::Unknown(t)),
            };
            events.extend(ev);
            chunk = &chunk[n..];
        }
    }
    Ok(events)
}

/// Walks records with an independent, non-incremental parser, checking
/// what every encoder promises: version 1, content at most 65535, total
/// record length a multiple of 8. Returns (type, id, content) per record.
pub fn records(mut b: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 8, "partial header");
        assert_eq!(b[0], 1);
        let id = u16::from_be_bytes([b[2], b[3]]);
        let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
        let pad = usize::from(b[6]);
        assert_eq!((len + pad) % 8, 0, "record not aligned");
        assert!(pad < 8);
        out.push((b[1], id, b[8..8 + len].to_vec()));
        b = &b[8 + len + pad..];
    }
    out
}
