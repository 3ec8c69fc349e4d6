//! A million random and mutated inputs through each decoder: none may
//! panic, each call must keep the decode contract, and internal buffers
//! must stay bounded. Inputs are short (< 64 bytes) so that a million of
//! them run in a few seconds in a debug build; the fuzz targets in `fuzz/`
//! cover long inputs.

#[cfg(test)] // test code only, like the whole `tests` module
use super::support::*;
use crate::protocol::*;

const INPUTS: usize = 1_000_000;
const MAX_INPUT: usize = 64;

/// Random record headers, biased towards valid fields so that decoding
/// gets past the version check, with short random content.
fn records_ish(rng: &mut Rng, out: &mut Vec<u8>) {
    let target = rng.below(MAX_INPUT);
    while out.len() < target {
        let version = if rng.chance(16) { rng.byte() } else { 1 };
        let t = if rng.chance(16) { rng.byte() } else { rng.below(13) as u8 };
        let id = match rng.below(4) {
            0 => 0,
            1 | 2 => 1,
            _ => rng.next_u64() as u16,
        };
        let len = match rng.below(8) {
            0 => 8,
            1 => rng.next_u64() as u16 as usize,
            2 => 65535,
            _ => rng.below(12),
        };
        let pad = if rng.chance(4) { rng.byte() } else { rng.below(8) as u8 };
        let content = if t == 4 || t == 9 || t == 10 { nv_ish(rng) } else { rng.bytes(len.min(MAX_INPUT)) };
        // The header may claim more (or less) than what follows.
        out.extend_from_slice(&[version, t]);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&[pad, rng.byte()]);
        out.extend_from_slice(&content);
        out.resize(out.len() + usize::from(pad).min(8), 0);
    }
}

/// Name-value bytes: valid pairs with short or 4-byte lengths, or junk.
fn nv_ish(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(4) {
        match rng.below(4) {
            0 => out.extend(rng.bytes_below(8)),
            1 => out.extend_from_slice(&[0x80, 0, 0, rng.byte(), rng.below(3) as u8]),
            _ => {
                let (n, v) = (rng.below(6), rng.below(6));
                encode_nv_pair(&mut out, &rng.bytes(n), &rng.bytes(v));
            }
        }
    }
    out
}

/// Valid streams from the encoders, for mutation.
fn valid(rng: &mut Rng, out: &mut Vec<u8>) {
    let id = if rng.chance(2) { 1 } else { rng.byte().into() };
    let (req, resp) = (RequestEncoder::new(id), ResponseEncoder::new(id));
    for _ in 0..rng.below(4) {
        let data = rng.bytes_below(12);
        match rng.below(12) {
            0 => req.begin_request(out, Role::Responder, rng.chance(2)),
            1 => {
                let mut w = req.params(out);
                w.pair(b"A", &data);
                w.finish();
            }
            2 => req.stdin(out, &data),
            3 => req.stdin_end(out),
            4 => req.abort_request(out),
            5 => encode_get_values(out, &[b"FCGI_MAX_REQS"]),
            6 => resp.stdout(out, &data),
            7 => resp.stderr_end(out),
            8 => resp.end_request(out, 0, rng.below(4) as u8),
            9 => encode_get_values_result(out, &[(b"X", &data)]),
            10 => encode_unknown_type(out, rng.byte()),
            _ => req.data(out, &data),
        }
    }
}

fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if at < b.len() => b[at] ^= 1 << rng.below(8),
            1 if at < b.len() => b[at] = rng.byte(),
            2 => b.insert(at, rng.byte()),
            3 if at < b.len() => {
                b.remove(at);
            }
            _ => b.truncate(at),
        }
    }
}

fn input(rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    match rng.below(8) {
        0 => {
            let n = rng.below(MAX_INPUT);
            out.extend(rng.bytes(n));
        }
        1..=3 => records_ish(rng, out),
        4 => valid(rng, out),
        _ => {
            valid(rng, out);
            mutate(rng, out);
        }
    }
    out.truncate(MAX_INPUT);
}

/// Up to three read boundaries.
fn chunks<'b>(rng: &mut Rng, b: &'b [u8]) -> [&'b [u8]; 3] {
    let mut x = rng.below(b.len() + 1);
    let mut y = rng.below(b.len() + 1);
    if x > y {
        std::mem::swap(&mut x, &mut y);
    }
    [&b[..x], &b[x..y], &b[y..]]
}

/// The bound a decoder's buffers may reach: a header and one record body,
/// and never much more than the input itself (no allocation on a length
/// the peer merely claims).
fn assert_bounded(buffered: usize, input_len: usize) {
    assert!(buffered <= HEADER_LEN + MAX_CONTENT_LEN);
    assert!(buffered <= HEADER_LEN + 2 * input_len + 8, "{buffered} > {input_len}");
}

/// Feeds `buf`, cut in three random pieces, to `dec` through `step` (one
/// decode call: the bytes it used and whether it gave an event, draining
/// any borrowed pairs): checks the decode contract on every call, that the
/// first error is sticky, and that buffering stays bounded.
fn feed<D>(
    rng: &mut Rng,
    buf: &[u8],
    dec: &mut D,
    step: impl Fn(&mut D, &[u8]) -> Result<(usize, bool), ProtocolError>,
    buffered: impl Fn(&D) -> usize,
) {
    for mut chunk in chunks(rng, buf) {
        while !chunk.is_empty() {
            let (n, event) = match step(dec, chunk) {
                Ok(r) => r,
                Err(e) => {
                    assert_eq!(step(dec, buf), Err(e));
                    return;
                }
            };
            assert!(n <= chunk.len() && (n > 0 || event));
            chunk = &chunk[n..];
        }
        assert_bounded(buffered(dec), buf.len());
    }
}

/// 1,000,000 inputs to [`ResponseDecoder`].
#[test]
fn response_decoder_survives_junk() {
    let mut rng = Rng::new(1);
    let mut buf = Vec::new();
    for _ in 0..INPUTS {
        input(&mut rng, &mut buf);
        let mut dec = ResponseDecoder::new(if rng.chance(4) { rng.byte().into() } else { 1 });
        let step = |dec: &mut ResponseDecoder, chunk: &[u8]| {
            let (n, ev) = dec.decode(chunk)?;
            let event = ev.is_some();
            if let Some(ResponseEvent::GetValuesResult(pairs)) = ev {
                pairs.for_each(drop);
            }
            Ok((n, event))
        };
        feed(&mut rng, &buf, &mut dec, step, ResponseDecoder::buffered);
    }
}

/// 1,000,000 inputs to [`RequestDecoder`].
#[test]
fn request_decoder_survives_junk() {
    let mut rng = Rng::new(2);
    let mut buf = Vec::new();
    for _ in 0..INPUTS {
        input(&mut rng, &mut buf);
        let mut dec = RequestDecoder::new();
        let step = |dec: &mut RequestDecoder, chunk: &[u8]| {
            let (n, ev) = dec.decode(chunk)?;
            let event = ev.is_some();
            if let Some(RequestEvent::GetValues(pairs)) = ev {
                pairs.for_each(drop);
            }
            Ok((n, event))
        };
        feed(&mut rng, &buf, &mut dec, step, RequestDecoder::buffered);
    }
}

/// 1,000,000 blocks through [`NvPairs`].
#[test]
fn nv_pairs_survive_junk() {
    let mut rng = Rng::new(3);
    let mut buf = Vec::new();
    for _ in 0..INPUTS {
        buf.clear();
        buf.extend(nv_ish(&mut rng));
        if rng.chance(2) {
            mutate(&mut rng, &mut buf);
        }
        let mut pairs = NvPairs::new(&buf);
        let mut seen = 0;
        while let Some(pair) = pairs.next() {
            match pair {
                Ok((name, value)) => seen += name.len() + value.len() + 2,
                Err(ProtocolError::TruncatedNameValue) => {
                    assert_eq!(pairs.next(), None);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(seen <= buf.len());
    }
}

/// 1,000,000 streams through [`ParamsDecoder`] with small limits.
#[test]
fn params_decoder_survives_junk() {
    let mut rng = Rng::new(4);
    let mut buf = Vec::new();
    for _ in 0..INPUTS {
        buf.clear();
        buf.extend(nv_ish(&mut rng));
        if rng.chance(2) {
            mutate(&mut rng, &mut buf);
        }
        let limit = rng.below(MAX_INPUT);
        let mut dec = ParamsDecoder::new(limit);
        let mut fed = 0;
        let mut failed = false;
        for chunk in chunks(&mut rng, &buf) {
            fed += chunk.len();
            match dec.feed(chunk) {
                Ok(()) => assert!(fed <= limit),
                Err(e) => {
                    assert_eq!(e, ProtocolError::NameValueTooLarge { limit });
                    failed = true;
                    break;
                }
            }
            assert!(dec.pending() <= limit);
        }
        match dec.finish() {
            Ok(pairs) => {
                assert!(!failed);
                let total: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
                assert!(total <= buf.len());
            }
            Err(ProtocolError::TruncatedNameValue) => assert!(!failed),
            Err(e) => assert!(failed && e == ProtocolError::NameValueTooLarge { limit }),
        }
    }
}
